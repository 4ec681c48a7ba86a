"""pycaffe's io helpers and Caffe's legacy-shape rule, against hand-built protos."""
import numpy as np
import pytest

from caffe_torch import io
from caffe_torch.proto import caffe_pb2


def test_blobproto_to_array_legacy_4d():
    """A blob with num/channels/height/width comes back in that 4-D shape."""
    blob = caffe_pb2.BlobProto(num=1, channels=2, height=3, width=4,
                               data=np.arange(24, dtype=np.float32))
    arr = io.blobproto_to_array(blob)
    assert arr.shape == (1, 2, 3, 4) and arr[0, 1, 2, 3] == 23


def test_blobproto_to_array_shape_and_diff():
    """A blob with `shape` comes back in it; return_diff reads the diff."""
    blob = caffe_pb2.BlobProto(shape=caffe_pb2.BlobShape(dim=[2, 3]), data=range(6),
                               diff=[-x for x in range(6)])
    np.testing.assert_array_equal(io.blobproto_to_array(blob), np.arange(6).reshape(2, 3))
    np.testing.assert_array_equal(io.blobproto_to_array(blob, return_diff=True),
                                  -np.arange(6).reshape(2, 3))


def test_blobproto_double_data():
    """double_data is read (as float64) when a blob carries no float data."""
    blob = caffe_pb2.BlobProto(shape=caffe_pb2.BlobShape(dim=[2]), double_data=[0.1, 1e-300])
    arr = io.blobproto_to_array(blob)
    assert arr.dtype == np.float64 and arr[1] == 1e-300


def test_blobproto_scalar():
    """A blob with an empty shape holds one value, a 0-d array (pycaffe's test_scalar)."""
    blob = caffe_pb2.BlobProto(data=[7.0])
    blob.shape.SetInParent()
    arr = io.blobproto_to_array(blob)
    assert arr.shape == () and arr == 7


def test_catch_blob_without_shape():
    """Values without a fitting shape are a ValueError (pycaffe's test_no_shape)."""
    blob = caffe_pb2.BlobProto(data=[1, 2, 3])
    with pytest.raises(ValueError, match=r'declares shape \(\) \(1 values\) but holds 3'):
        io.blobproto_to_array(blob)


def test_array_to_blobproto_round_trip():
    """array_to_blobproto writes the current shape format, data and diff."""
    rng = np.random.RandomState(0)
    arr, diff = rng.randn(2, 3, 4).astype(np.float32), rng.randn(2, 3, 4).astype(np.float32)
    blob = io.array_to_blobproto(arr, diff)
    assert list(blob.shape.dim) == [2, 3, 4] and not io.is_legacy(blob)
    np.testing.assert_array_equal(io.blobproto_to_array(blob), arr)
    np.testing.assert_array_equal(io.blobproto_to_array(blob, return_diff=True), diff)


def test_blobprotovector_round_trip():
    """A list of arrays survives BlobProtoVector serialization."""
    arrays = [np.ones((2, 2), np.float32), np.arange(5, dtype=np.float32)]
    back = io.blobprotovector_str_to_arraylist(io.arraylist_to_blobprotovector_str(arrays))
    assert len(back) == 2 and all(np.array_equal(a, b) for a, b in zip(arrays, back))


def test_datum_uint8_and_float():
    """uint8 arrays go to the data bytes, float arrays to float_data; both come back."""
    img = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    datum = io.array_to_datum(img, label=3)
    assert datum.data == img.tobytes() and not datum.float_data and datum.label == 3
    np.testing.assert_array_equal(io.datum_to_array(datum), img)
    floats = io.array_to_datum(img.astype(np.float32) / 2)
    back = io.datum_to_array(floats)
    assert back.dtype == np.float64  # pycaffe's astype(float)
    np.testing.assert_array_equal(back, img / 2)


def test_datum_without_label_is_smaller():
    """Leaving the label out makes the serialized Datum smaller (pycaffe's test)."""
    img = np.zeros((1, 2, 2), np.uint8)
    assert len(io.array_to_datum(img).SerializeToString()) < \
        len(io.array_to_datum(img, 5).SerializeToString())


def test_catch_datum_needs_three_axes():
    """array_to_datum refuses arrays that are not CxHxW."""
    with pytest.raises(ValueError, match=r'3-D CxHxW array, got shape \(2, 2\)'):
        io.array_to_datum(np.zeros((2, 2)))


@pytest.mark.parametrize('shape, legacy, fits', [
    ((4096,), (1, 1, 1, 4096), True),          # V1 bias into a 1-D bias
    ((10, 4096), (1, 1, 10, 4096), True),       # V1 InnerProduct weight
    ((64, 3, 3, 3), (64, 3, 3, 3), True),
    ((4096,), (1, 1, 4096, 1), False),
    ((2, 1, 1, 4096), (1, 1, 1, 4096), False),
    ((1, 1, 1, 1, 5), (1, 1, 1, 5), False),     # more than 4 axes never match legacy
])
def test_shape_equals_legacy_rule(shape, legacy, fits):
    """Legacy dims compare from the right, padded with 1s, as Blob::ShapeEquals."""
    blob = caffe_pb2.BlobProto(num=legacy[0], channels=legacy[1], height=legacy[2],
                               width=legacy[3])
    assert io.shape_equals(shape, blob) is fits


# -- pycaffe's Transformer, load_image, resize_image, oversample -----------------------------
def _transformer():
    t = io.Transformer({'data': (1, 3, 4, 5)})
    t.set_transpose('data', (2, 0, 1))
    t.set_channel_swap('data', (2, 1, 0))
    t.set_raw_scale('data', 255)
    t.set_mean('data', np.array([10.0, 20.0, 30.0]))
    t.set_input_scale('data', 0.5)
    return t


def test_transformer_preprocess_order():
    """HxWxK -> KxHxW, channels swapped, * raw_scale, - mean, * input_scale."""
    image = np.random.RandomState(1).rand(4, 5, 3).astype(np.float32)
    kept = image.copy()
    out = _transformer().preprocess('data', image)
    expected = np.empty((3, 4, 5))
    for k, source in enumerate((2, 1, 0)):
        expected[k] = (image[:, :, source].astype(np.float64) * 255 - [10, 20, 30][k]) * 0.5
    assert out.dtype == np.float32 and out.shape == (3, 4, 5)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(image, kept)  # the caller's array is left alone


def test_transformer_deprocess_inverts_preprocess():
    image = np.random.RandomState(2).rand(4, 5, 3).astype(np.float32)
    t = _transformer()
    back = t.deprocess('data', t.preprocess('data', image)[np.newaxis])
    np.testing.assert_allclose(back, image, atol=1e-5)


def test_transformer_resizes_to_the_input_and_elementwise_mean():
    t = io.Transformer({'data': [2, 1, 3, 3]})
    t.set_transpose('data', (2, 0, 1))
    mean = np.arange(9, dtype=np.float32).reshape(3, 3)
    t.set_mean('data', mean)  # H x W, broadcast over the one channel
    image = np.full((6, 6, 1), 0.25, np.float32)
    out = t.preprocess('data', image)
    np.testing.assert_allclose(out, 0.25 - mean[np.newaxis], rtol=1e-6)


def test_catch_transformer_misuse():
    t = io.Transformer({'data': (1, 3, 4, 5)})
    with pytest.raises(ValueError, match='is not one of the net inputs'):
        t.set_raw_scale('label', 255)
    with pytest.raises(ValueError, match='Transpose order needs to have the same number'):
        t.set_transpose('data', (1, 0))
    with pytest.raises(ValueError, match='Channel swap needs to have the same number'):
        t.set_channel_swap('data', (1, 0))
    with pytest.raises(ValueError, match='Mean channels incompatible'):
        t.set_mean('data', np.zeros(4))
    with pytest.raises(ValueError, match='Mean channels incompatible'):
        t.set_mean('data', np.zeros((4, 2, 2)))
    with pytest.raises(ValueError, match='Mean shape invalid'):
        t.set_mean('data', np.zeros((1, 3, 4, 5)))


def test_set_mean_vector_broadcasts_over_pixels():
    """A K-vector mean is subtracted from every pixel of its channel."""
    t = io.Transformer({'data': (1, 3, 2, 2)})
    t.set_transpose('data', (2, 0, 1))
    t.set_mean('data', np.array([1.0, 2.0, 3.0]))
    out = t.preprocess('data', np.zeros((2, 2, 3), np.float32))
    np.testing.assert_array_equal(out, -np.array([1.0, 2.0, 3.0])[:, None, None]
                                  * np.ones((3, 2, 2)))


def test_set_mean_resizes_to_the_input():
    """A 1 x 1 x 2 mean [0, 4] on a 1 x 1 x 4 input is resized as pycaffe does: scaled to
    [0, 1], sampled at src = (j + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25 with zeros
    outside (0, 0.25, 0.75, 0.75), scaled back: 0, 1, 3, 3."""
    t = io.Transformer({'data': (1, 1, 1, 4)})
    t.set_transpose('data', (2, 0, 1))
    t.set_mean('data', np.array([[[0.0, 4.0]]]))
    out = t.preprocess('data', np.zeros((1, 4, 1), np.float32))
    np.testing.assert_allclose(out, -np.array([[[0.0, 1.0, 3.0, 3.0]]]), atol=1e-6)


def test_set_mean_resize_shrinks_with_resize_image():
    """A larger K x H' x W' mean goes through resize_image on its H' x W' x K transpose."""
    mean = np.random.RandomState(6).rand(3, 8, 10) * 100 + 50
    t = io.Transformer({'data': (1, 3, 4, 5)})
    t.set_mean('data', mean)
    expected = io.resize_image(mean.transpose(1, 2, 0), (4, 5)).transpose(2, 0, 1)
    np.testing.assert_allclose(t.mean['data'], expected, rtol=1e-6)


def test_set_mean_constant_and_two_axes():
    """An H' x W' mean counts as one channel; a constant mean resizes to the constant
    (pycaffe's min-max scaling would divide 0 by 0 and store NaNs)."""
    t = io.Transformer({'data': (1, 3, 4, 4)})
    t.set_transpose('data', (2, 0, 1))
    t.set_mean('data', np.full((2, 2), 7.0))
    assert t.mean['data'].shape == (1, 4, 4) and (t.mean['data'] == 7).all()
    out = t.preprocess('data', np.full((4, 4, 3), 9.0, np.float32))
    np.testing.assert_array_equal(out, np.full((3, 4, 4), 2.0))


def _gaussian_kernel(sigma):
    """scipy.ndimage's 1-D Gaussian: radius int(4 sigma + 0.5), normalised to sum 1."""
    radius = int(4.0 * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * x * x / (sigma * sigma))
    return kernel / kernel.sum()


def _smooth_zero_border(im, sigma, axis):
    """Convolve one axis with the Gaussian, zeros beyond the border (mode constant)."""
    if sigma <= 0:
        return im
    kernel = _gaussian_kernel(sigma)
    radius = len(kernel) // 2
    moved = np.moveaxis(im, axis, 0)
    padded = np.concatenate([np.zeros((radius,) + moved.shape[1:]), moved,
                             np.zeros((radius,) + moved.shape[1:])])
    out = sum(w * padded[i:i + moved.shape[0]] for i, w in enumerate(kernel))
    return np.moveaxis(out, 0, axis)


def _bilinear_zero_border(im, out_h, out_w):
    """Pixel-centre bilinear sampling, zero outside (skimage, mode constant)."""
    h, w = im.shape
    out = np.zeros((out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            r, c = (i + 0.5) * h / out_h - 0.5, (j + 0.5) * w / out_w - 0.5
            r0, c0 = int(np.floor(r)), int(np.floor(c))
            value = 0.0
            for rr, wr in ((r0, 1 - (r - r0)), (r0 + 1, r - r0)):
                for cc, wc in ((c0, 1 - (c - c0)), (c0 + 1, c - c0)):
                    if 0 <= rr < h and 0 <= cc < w:
                        value += wr * wc * im[rr, cc]
            out[i, j] = value
    return out


def _skimage_resize_reference(im, size):
    """pycaffe's resize_image on scikit-image >= 0.19, in float64 NumPy: scale to [0, 1];
    when shrinking an axis by factor s = in / out, pre-filter it with a Gaussian of
    sigma = max(0, (s - 1) / 2) and zeros beyond the border; bilinear pixel-centre
    sampling with zeros outside; clip to [0, 1]; scale back."""
    lo, hi = im.min(), im.max()
    std = (im.astype(np.float64) - lo) / (hi - lo)
    for axis in (0, 1):
        std = _smooth_zero_border(std, max(0.0, (im.shape[axis] / size[axis] - 1) / 2), axis)
    out = np.stack([_bilinear_zero_border(std[:, :, k], *size)
                    for k in range(im.shape[2])], axis=-1)
    return np.clip(out, 0, 1) * (hi - lo) + lo


@pytest.mark.parametrize('size', [(7, 5), (2, 3), (4, 4), (3, 9), (1, 2)])
@pytest.mark.parametrize('channels', [1, 3])
def test_resize_image_matches_skimage_algorithm(size, channels):
    """1- and 3-channel images follow current scikit-image's resize, anti-aliasing
    included when an axis shrinks."""
    im = np.random.RandomState(3).rand(4 if size != (3, 9) else 12, 4, channels) * 200 + 10
    out = io.resize_image(im, size)
    assert out.shape == size + (channels,) and out.dtype == np.float32
    np.testing.assert_allclose(out, _skimage_resize_reference(im, size), rtol=1e-5)


def test_resize_image_shrinking_antialiases():
    """Shrinking a 9 x 9 checkerboard to 3 x 3 samples the centre output at source pixel
    (4, 4) after a Gaussian of sigma (3 - 1) / 2 = 1 (radius 4, inside the image): the
    board 0.5 - 0.5 (-1)^(y + x) keeps 0.5 - 0.5 a^2 there, a = sum_k w_k (-1)^k, where
    sampling without the filter would read the pixel's 0."""
    board = (np.indices((9, 9)).sum(axis=0) % 2).astype(np.float64)[:, :, None]
    kernel = _gaussian_kernel(1.0)
    a = np.sum(kernel * (-1.0) ** np.arange(len(kernel)))  # radius 4: the centre is even
    out = io.resize_image(board, (3, 3))
    np.testing.assert_allclose(out[1, 1, 0], 0.5 - 0.5 * a * a, rtol=1e-6)


@pytest.mark.parametrize('size', [(3, 5), (9, 4), (2, 2)])
def test_resize_image_equals_installed_skimage(size):
    """Where scikit-image is importable, resize_image equals pycaffe's call of it."""
    transform = pytest.importorskip('skimage.transform')
    im = np.random.RandomState(8).rand(6, 7, 3).astype(np.float32) * 100
    lo, hi = im.min(), im.max()
    std = transform.resize((im - lo) / (hi - lo), size, order=1, mode='constant')
    np.testing.assert_allclose(io.resize_image(im, size), std * (hi - lo) + lo, rtol=1e-6,
                               atol=1e-5)


def test_resize_image_constant_and_many_channels():
    out = io.resize_image(np.full((3, 3, 1), 7.0), (5, 2))
    assert out.shape == (5, 2, 1) and (out == 7).all()
    im = np.random.RandomState(4).rand(4, 6, 5)
    out = io.resize_image(im, (8, 12))  # not 1 or 3 channels: scipy.ndimage.zoom
    from scipy import ndimage
    np.testing.assert_allclose(out, ndimage.zoom(im, (2.0, 2.0, 1), order=1), rtol=1e-6)


def test_load_image_color_gray_alpha(tmp_path):
    from PIL import Image
    rgb = np.random.RandomState(5).randint(0, 256, (4, 6, 3)).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / 'rgb.png')
    Image.fromarray(rgb[:, :, 0]).save(tmp_path / 'gray.png')
    rgba = np.dstack([rgb, np.full((4, 6), 9, np.uint8)])
    Image.fromarray(rgba).save(tmp_path / 'rgba.png')
    img = io.load_image(str(tmp_path / 'rgb.png'))
    assert img.dtype == np.float32 and img.shape == (4, 6, 3)
    np.testing.assert_allclose(img, rgb / 255.0, rtol=1e-6)
    gray = io.load_image(str(tmp_path / 'gray.png'))  # grey tiled to 3 channels
    np.testing.assert_allclose(gray, np.repeat(rgb[:, :, :1] / 255.0, 3, axis=2), rtol=1e-6)
    assert io.load_image(str(tmp_path / 'gray.png'), color=False).shape == (4, 6, 1)
    np.testing.assert_allclose(io.load_image(str(tmp_path / 'rgba.png')), rgb / 255.0,
                               rtol=1e-6)
    luma = io.load_image(str(tmp_path / 'rgb.png'), color=False)
    np.testing.assert_allclose(luma[:, :, 0], rgb / 255.0 @ [0.2125, 0.7154, 0.0721],
                               rtol=1e-5)


def test_oversample_corners_center_mirrors():
    image = np.arange(6 * 8 * 2, dtype=np.float32).reshape(6, 8, 2)
    crops = io.oversample([image, image + 1000], (4, 5))
    assert crops.shape == (20, 4, 5, 2) and crops.dtype == np.float32
    corners = [(0, 0), (0, 3), (2, 0), (2, 3), (1, 1)]  # centre: (3 - 2, 4 - 2.5) -> (1, 1)
    for n, offset in enumerate((0, 1000)):
        for i, (r, c) in enumerate(corners):
            crop = image[r:r + 4, c:c + 5] + offset
            np.testing.assert_array_equal(crops[10 * n + i], crop)
            np.testing.assert_array_equal(crops[10 * n + 5 + i], crop[:, ::-1])
