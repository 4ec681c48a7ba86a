"""Blob memory in channels-last order (SyncedMemory.adopt of an NHWC result): every reader
still sees Caffe's N, C, H, W indexing, and one reading it through another shape sees
Caffe's flat NCHW order."""
import numpy as np
import torch

from caffe_torch.blob import Blob


def _adopted(shape=(1, 3, 4, 5), seed=0):
    """A transient blob holding a channels-last result, and the values as NCHW NumPy."""
    values = np.random.RandomState(seed).standard_normal(shape).astype(np.float32)
    blob = Blob(shape)
    blob.transient = True
    blob._data.adopt(torch.from_numpy(values).contiguous(memory_format=torch.channels_last))
    return blob, values


def test_channels_last_data_reads_and_writes_as_nchw():
    """data and data_tensor index N, C, H, W; a write through the NumPy view is what the
    next reader gets; the buffer itself is in NHWC order (no copy was made)."""
    blob, values = _adopted()
    assert blob._data._nhwc == (1, 3, 4, 5)
    assert np.array_equal(blob.data, values)
    assert np.array_equal(blob.data_tensor.numpy(), values)
    blob.data[0, 2, 3, 1] = 7.0
    assert blob.data_tensor[0, 2, 3, 1].item() == 7.0
    assert blob._data.host()[(3 * 5 + 1) * 3 + 2].item() == 7.0  # NHWC position


def test_another_shape_reads_caffes_flat_order():
    """A blob sharing the memory with another shape (Flatten, Reshape, a Python layer's
    view) reads the values in NCHW order, after which the buffer is plain NCHW."""
    blob, values = _adopted((1, 4, 3, 2), seed=1)
    flat = Blob((1, 24))
    flat.share_data(blob)
    assert np.array_equal(flat.data, values.reshape(1, 24))
    assert blob._data._nhwc is None
    assert np.array_equal(blob.data, values) and blob.data.flags['C_CONTIGUOUS']


def test_release_forgets_the_order():
    """A freed buffer comes back zeroed and NCHW."""
    blob, _ = _adopted()
    blob._data.release()
    assert blob._data._nhwc is None
    assert np.array_equal(blob.data, np.zeros((1, 3, 4, 5), np.float32))
