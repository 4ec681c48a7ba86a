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
    np.testing.assert_array_equal(io.datum_to_array(floats), img / 2)


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
