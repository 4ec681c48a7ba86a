"""pycaffe's `caffe.io` conversions between NumPy arrays and Caffe's BlobProto / Datum.

BlobProto carries its shape in one of two ways: the current `shape { dim }`, or the legacy
4-D `num/channels/height/width` that V1-era caffemodels (ILSVRC VGG16 among them) use.
Caffe compares a legacy shape against a blob from the right, padding with 1s, so a
1x1x1xN bias or 1x1xMxN InnerProduct weight fits an N-vector or MxN matrix; `shape_equals`
is that rule.

resize_image follows the scikit-image that pycaffe users install today (>= 0.19), not the
< 0.15 one Caffe 1.0 was written against: pycaffe calls `skimage.transform.resize(im,
dims, order=1, mode='constant')`, which now low-passes every shrinking axis with a Gaussian
of sigma = max(0, (in / out - 1) / 2) (zeros beyond the border, so edge pixels lean
toward the image's minimum) before sampling, so a mean or image resized here matches
today's pycaffe. It makes the same two scipy.ndimage
calls skimage makes, so scikit-image is not a dependency.
"""
import numpy as np

from caffe_torch.proto import caffe_pb2

LEGACY_DIMS = ('num', 'channels', 'height', 'width')


def is_legacy(blob):
    """True when `blob` states its shape with the deprecated 4-D fields."""
    return any(blob.HasField(d) for d in LEGACY_DIMS)


def blob_shape(blob):
    """The shape a BlobProto declares, legacy 4-D or current."""
    if is_legacy(blob):
        return tuple(int(getattr(blob, d)) for d in LEGACY_DIMS)
    return tuple(int(d) for d in blob.shape.dim)


def legacy_shape(shape, axis):
    """Caffe's Blob::LegacyShape: the size at `axis` (from -4 to 3), 1 beyond the axes."""
    if axis >= len(shape) or axis < -len(shape):
        return 1
    return shape[axis]


def shape_equals(shape, blob):
    """Caffe's Blob::ShapeEquals: may `blob`'s values fill an array of `shape`?"""
    shape = tuple(shape)
    if is_legacy(blob):
        return len(shape) <= 4 and all(
            legacy_shape(shape, axis) == getattr(blob, name)
            for axis, name in zip(range(-4, 0), LEGACY_DIMS))
    return shape == blob_shape(blob)


def blobproto_to_array(blob, return_diff=False):
    """The data (or diff) of `blob` as an array of its declared shape.

    float32 values come from data/diff, float64 ones from double_data/double_diff when
    only those are present. A value count that does not fit the shape is a ValueError.
    """
    single, double = (blob.diff, blob.double_diff) if return_diff else \
        (blob.data, blob.double_data)
    values = np.array(double, dtype=np.float64) if len(double) and not len(single) \
        else np.array(single, dtype=np.float32)
    shape = blob_shape(blob)
    if values.size != int(np.prod(shape, dtype=np.int64)):
        kind = 'diff' if return_diff else 'data'
        raise ValueError(
            f'BlobProto declares shape {shape} ({int(np.prod(shape))} values) but holds '
            f'{values.size} {kind} values; the blob is incomplete or its shape unset.')
    return values.reshape(shape)


def array_to_blobproto(arr, diff=None):
    """A BlobProto with `arr`'s shape (current format) and values; `diff` optional."""
    arr = np.asarray(arr)
    packed = [packed_floats(5, arr)]  # BlobProto.data
    if diff is not None:
        diff = np.asarray(diff)
        if diff.shape != arr.shape:
            raise ValueError(f'diff shape {diff.shape} differs from data shape '
                             f'{arr.shape}; pass a diff of the same shape.')
        packed.append(packed_floats(6, diff))  # BlobProto.diff
    blob = caffe_pb2.BlobProto.FromString(b''.join(packed))
    blob.shape.dim.extend(arr.shape)
    return blob


def packed_floats(field, array):
    """Protobuf's wire format of a packed repeated float field holding `array` (float32,
    little-endian), made from the array's buffer. Parsing it fills a BlobProto in one
    step, where `extend` converts one Python float at a time (minutes for VGG16)."""
    raw = np.ascontiguousarray(array, dtype='<f4').tobytes()
    return _varint(field << 3 | 2) + _varint(len(raw)) + raw


def _varint(value):
    out = bytearray()
    while value > 0x7f:
        out.append(value & 0x7f | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def arraylist_to_blobprotovector_str(arraylist):
    """Serialize a list of arrays as a binary BlobProtoVector."""
    vec = caffe_pb2.BlobProtoVector()
    vec.blobs.extend(array_to_blobproto(arr) for arr in arraylist)
    return vec.SerializeToString()


def blobprotovector_str_to_arraylist(data):
    """Parse a binary BlobProtoVector into a list of arrays."""
    vec = caffe_pb2.BlobProtoVector()
    vec.ParseFromString(data)
    return [blobproto_to_array(blob) for blob in vec.blobs]


def array_to_datum(arr, label=None):
    """A Datum from a CxHxW array: uint8 arrays go to `data` bytes, others to float_data."""
    arr = np.asarray(arr)
    if arr.ndim != 3:
        raise ValueError(f'array_to_datum needs a 3-D CxHxW array, got shape '
                         f'{arr.shape}; add or remove axes first.')
    datum = caffe_pb2.Datum()
    datum.channels, datum.height, datum.width = arr.shape
    if arr.dtype == np.uint8:
        datum.data = arr.tobytes()
    else:
        datum.float_data.extend(arr.astype(np.float32).ravel())
    if label is not None:
        datum.label = int(label)
    return datum


def datum_to_array(datum):
    """The CxHxW array a Datum holds: uint8 from `data`, else float64 from float_data
    (pycaffe's `astype(float)`)."""
    shape = (datum.channels, datum.height, datum.width)
    if len(datum.data):
        return np.frombuffer(datum.data, dtype=np.uint8).reshape(shape).copy()
    return np.array(datum.float_data, dtype=np.float64).reshape(shape)


# -- pre-processing (pycaffe's Transformer) -------------------------------------------------
class Transformer:
    """pycaffe's Transformer: turn H x W x K images into an input blob's K x H x W arrays.

    `inputs` maps each input name to its blob shape (net.blobs[name].data.shape).
    preprocess: to float32, resize to the input's H x W (resize_image), transpose, swap
    channels, multiply by raw_scale, subtract the mean, multiply by input_scale.
    deprocess undoes these in reverse order as pycaffe does: it applies the channel swap
    and the transpose order's square (the inverse for 2- and 3-element orders such as
    (2, 1, 0) and (2, 0, 1)), and drops singleton axes. Unlike pycaffe, preprocess never
    scales the caller's array in place (pycaffe does when it gets float32 data that needs
    neither resizing nor a channel swap).
    """

    def __init__(self, inputs):
        self.inputs = {name: tuple(shape) for name, shape in inputs.items()}
        self.transpose, self.channel_swap = {}, {}
        self.raw_scale, self.mean, self.input_scale = {}, {}, {}

    def _check_input(self, in_):
        if in_ not in self.inputs:
            raise ValueError(f'{in_} is not one of the net inputs: {self.inputs}')

    def preprocess(self, in_, data):
        """An image (H' x W' x K) as input `in_`'s K x H x W float32 array."""
        self._check_input(in_)
        caffe_in = np.array(data, dtype=np.float32)
        in_dims = self.inputs[in_][2:]
        if caffe_in.shape[:2] != in_dims:
            caffe_in = resize_image(caffe_in, in_dims)
        if in_ in self.transpose:
            caffe_in = caffe_in.transpose(self.transpose[in_])
        if in_ in self.channel_swap:
            caffe_in = caffe_in[list(self.channel_swap[in_]), :, :]
        if self.raw_scale.get(in_) is not None:
            caffe_in *= self.raw_scale[in_]
        if self.mean.get(in_) is not None:
            caffe_in -= self.mean[in_]
        if self.input_scale.get(in_) is not None:
            caffe_in *= self.input_scale[in_]
        return caffe_in

    def deprocess(self, in_, data):
        """Undo preprocess (see the class docstring for pycaffe's order quirks)."""
        self._check_input(in_)
        decaf_in = np.array(data).squeeze()
        if self.input_scale.get(in_) is not None:
            decaf_in = decaf_in / self.input_scale[in_]
        if self.mean.get(in_) is not None:
            decaf_in = decaf_in + self.mean[in_]
        if self.raw_scale.get(in_) is not None:
            decaf_in = decaf_in / self.raw_scale[in_]
        if in_ in self.channel_swap:
            decaf_in = decaf_in[list(self.channel_swap[in_]), :, :]
        if in_ in self.transpose:
            order = self.transpose[in_]
            decaf_in = decaf_in.transpose([order[t] for t in order])
        return decaf_in

    def set_transpose(self, in_, order):
        """Axis order taking the image's H x W x K to the blob's K x H x W: (2, 0, 1)."""
        self._check_input(in_)
        if len(order) != len(self.inputs[in_]) - 1:
            raise ValueError('Transpose order needs to have the same number of dimensions '
                             f'as the input: got {tuple(order)} for input shape '
                             f'{self.inputs[in_]}.')
        self.transpose[in_] = order

    def set_channel_swap(self, in_, order):
        """Channel order after the transpose: (2, 1, 0) turns RGB into Caffe's BGR."""
        self._check_input(in_)
        if len(order) != self.inputs[in_][1]:
            raise ValueError('Channel swap needs to have the same number of dimensions as '
                             f'the input channels: got {tuple(order)} for '
                             f'{self.inputs[in_][1]} channels.')
        self.channel_swap[in_] = order

    def set_raw_scale(self, in_, scale):
        """Scale applied before the mean: 255 for models trained on [0, 255] pixels."""
        self._check_input(in_)
        self.raw_scale[in_] = scale

    def set_mean(self, in_, mean):
        """Mean to subtract: per channel (K,), or per pixel (K x H' x W', 1 x H' x W' or
        H' x W'). A per-pixel mean of another size is resized to the input's H x W with
        resize_image, as pycaffe does (the ILSVRC 256 x 256 mean on a 227 x 227 input).

        Unlike pycaffe, a constant mean resizes to itself (pycaffe's min-max scaling
        divides 0 by 0), an H' x W' mean of another size resizes (pycaffe fails to
        transpose it), and a per-pixel mean whose channels are neither 1 nor K is refused
        here rather than at preprocess.
        """
        self._check_input(in_)
        mean = np.asarray(mean)
        channels, in_dims = self.inputs[in_][1], self.inputs[in_][2:]
        if mean.ndim not in (1, 2, 3):
            raise ValueError(f'Mean shape invalid: {mean.shape}; give (K,), (H, W) or '
                             f'(K, H, W).')
        shape = (1,) + mean.shape if mean.ndim == 2 else mean.shape
        if shape[0] not in ((channels,) if mean.ndim == 1 else (1, channels)):
            raise ValueError(f'Mean channels incompatible with input: mean shape '
                             f'{mean.shape} for {channels} channels.')
        if mean.ndim == 1:
            mean = mean[:, np.newaxis, np.newaxis]
        elif shape[1:] != in_dims:
            hwk = mean.reshape(shape).transpose(1, 2, 0)
            mean = resize_image(hwk, in_dims).transpose(2, 0, 1)
        self.mean[in_] = mean

    def set_input_scale(self, in_, scale):
        """Scale applied after the mean is subtracted."""
        self._check_input(in_)
        self.input_scale[in_] = scale


# -- image IO --------------------------------------------------------------------------------
def load_image(filename, color=True):
    """An image as float32 in [0, 1], H x W x 3 RGB (color) or H x W x 1 (not color:
    color images are converted to gray as skimage's rgb2gray, 0.2125 R + 0.7154 G +
    0.0721 B); an alpha channel is dropped."""
    from PIL import Image
    with Image.open(filename) as pil:
        if pil.mode == 'P':
            pil = pil.convert('RGBA' if 'transparency' in pil.info else 'RGB')
        elif pil.mode in ('CMYK', 'YCbCr'):
            pil = pil.convert('RGB')
        img = np.asarray(pil)
    img = _as_float(img)
    if not color and img.ndim == 3:
        img = img[:, :, :3] @ np.array([0.2125, 0.7154, 0.0721])
    img = img.astype(np.float32)
    if img.ndim == 2:
        img = img[:, :, np.newaxis]
        if color:
            img = np.tile(img, (1, 1, 3))
    elif img.shape[2] == 4:
        img = img[:, :, :3]
    return img


def _as_float(img):
    """skimage's img_as_float: integers scaled by their type's maximum, bool to 0/1."""
    if img.dtype == bool:
        return img.astype(np.float64)
    if np.issubdtype(img.dtype, np.unsignedinteger):
        return img / float(np.iinfo(img.dtype).max)
    if np.issubdtype(img.dtype, np.signedinteger):
        return np.maximum(img / float(np.iinfo(img.dtype).max), -1.0)
    return img.astype(np.float64)


def resize_image(im, new_dims, interp_order=1):
    """Resize H x W x K to new_dims[0] x new_dims[1] x K (float32), as pycaffe.

    1- and 3-channel images are scaled to [0, 1], resized as scikit-image's resize (see
    the module docstring), and scaled back; a constant image stays constant. Other
    channel counts use scipy.ndimage.zoom, as pycaffe does.
    """
    from scipy import ndimage
    im = np.asarray(im)
    new_dims = tuple(int(d) for d in new_dims)
    if im.shape[-1] not in (1, 3):
        scale = tuple(np.array(new_dims, dtype=float) / np.array(im.shape[:2]))
        return ndimage.zoom(im, scale + (1,), order=interp_order).astype(np.float32)
    im_min, im_max = im.min(), im.max()
    if not im_max > im_min:
        return np.full(new_dims + (im.shape[-1],), im_min, dtype=np.float32)
    resized_std = _skimage_resize((im - im_min) / (im_max - im_min), new_dims, interp_order)
    return (resized_std * (im_max - im_min) + im_min).astype(np.float32)


def _skimage_resize(image, new_dims, order):
    """skimage.transform.resize(image, new_dims, order=order, mode='constant') (>= 0.19)
    of a float image: mode 'constant' is ndimage's 'grid-constant' (zeros beyond the
    border) for both the anti-aliasing filter and the pixel-centre (grid_mode) zoom."""
    from scipy import ndimage
    if image.dtype not in (np.float32, np.float64):  # skimage's img_as_float
        image = image.astype(np.float32 if image.dtype == np.float16 else np.float64)
    factors = np.divide(image.shape, new_dims + image.shape[len(new_dims):])
    low, high = image.min(), image.max()
    if np.any(factors > 1):
        image = ndimage.gaussian_filter(image, np.maximum(0, (factors - 1) / 2),
                                        mode='grid-constant', cval=0)
    out = ndimage.zoom(image, 1 / factors, order=order, mode='grid-constant', cval=0,
                       grid_mode=True)
    return np.clip(out, low, high, out=out)


def oversample(images, crop_dims):
    """The four corner crops and the centre crop of each H x W x K image, then the same
    five mirrored left-right: a (10 N) x h x w x K float32 array."""
    im_shape = np.array(images[0].shape)
    crop_dims = np.array(crop_dims)
    im_center = im_shape[:2] / 2.0
    crops_ix = np.empty((5, 4), dtype=int)
    curr = 0
    for i in (0, im_shape[0] - crop_dims[0]):
        for j in (0, im_shape[1] - crop_dims[1]):
            crops_ix[curr] = (i, j, i + crop_dims[0], j + crop_dims[1])
            curr += 1
    crops_ix[4] = np.tile(im_center, (1, 2)) + np.concatenate([-crop_dims / 2.0,
                                                                crop_dims / 2.0])
    crops_ix = np.tile(crops_ix, (2, 1))
    crops = np.empty((10 * len(images), crop_dims[0], crop_dims[1], im_shape[-1]),
                     dtype=np.float32)
    ix = 0
    for im in images:
        for crop in crops_ix:
            crops[ix] = im[crop[0]:crop[2], crop[1]:crop[3], :]
            ix += 1
        crops[ix - 5:ix] = crops[ix - 5:ix, :, ::-1, :]
    return crops
