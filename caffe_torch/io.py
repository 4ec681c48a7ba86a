"""pycaffe's `caffe.io` conversions between NumPy arrays and Caffe's BlobProto / Datum.

BlobProto carries its shape in one of two ways: the current `shape { dim }`, or the legacy
4-D `num/channels/height/width` that V1-era caffemodels (ILSVRC VGG16 among them) use.
Caffe compares a legacy shape against a blob from the right, padding with 1s, so a
1x1x1xN bias or 1x1xMxN InnerProduct weight fits an N-vector or MxN matrix; `shape_equals`
is that rule.
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
    """The CxHxW array a Datum holds (uint8 from `data`, float from float_data)."""
    shape = (datum.channels, datum.height, datum.width)
    if len(datum.data):
        return np.frombuffer(datum.data, dtype=np.uint8).reshape(shape).copy()
    return np.array(datum.float_data, dtype=np.float32).reshape(shape)
