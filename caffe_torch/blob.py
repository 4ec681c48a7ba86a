"""Blob: Caffe's N-d array with data and diff, held as torch tensors on the mode's device.

pycaffe hands out `blob.data` and `blob.diff` as NumPy arrays that alias the blob's memory:
writing into them changes what the next forward or backward reads, and a view taken before
a forward shows that forward's result. Layers therefore write into the blob's storage
(`copy_`, `out=`) instead of rebinding it, and storage is kept while the element count fits
its capacity, as Caffe's Blob::Reshape does. The one exception are blobs a memory plan frees
every pass (`Net.keep_blobs`, Blob.transient): no view of theirs outlives a pass in use, so
convolutions hand them their fresh result instead of copying it in.

On a GPU the memory follows Caffe's SyncedMemory: a host copy and a device copy, each marked
current or stale; `data`/`diff` bring the host copy up to date and mark it as the one that
may change, `data_tensor`/`diff_tensor` do the same for the device copy. On the CPU both are
one tensor and nothing is copied.

Sizes are checked when a blob grows, before anything is allocated: more than INT_MAX
elements is refused as Caffe's Blob::Reshape refuses it, and so is a buffer larger than the
device's memory (or the process's address-space limit); an allocation that still fails
raises the same BlobSizeError, which the layer setting the blob up names itself in.
"""
import contextlib
import math
import os
import resource

import numpy as np
import torch

from caffe_torch import mode
from caffe_torch.errors import BlobSizeError

_HOST, _DEVICE, _SYNCED = 'host', 'device', 'synced'
INT_MAX = 2 ** 31 - 1  # Blob::Reshape: CHECK_LE(shape[i], INT_MAX / count_)


def check_size(blob, shape, count):
    """Refuse a blob of `shape` that Caffe refuses or that `blob`'s device cannot hold."""
    if count > INT_MAX:
        reason = (f'more than the INT_MAX ({INT_MAX}) elements a Caffe blob may hold '
                  f'(Caffe aborts too: "blob size exceeds INT_MAX")')
    else:
        limit, what = memory_limit(blob.device)
        if limit is None or count * 4 <= limit:
            return
        reason = f'more than {what} ({limit} bytes)'
    raise BlobSizeError(f'needs {count} floats ({count * 4} bytes), {reason}', blob, shape)


def memory_limit(device):
    """(bytes, what): the most one buffer on `device` could take, or (None, '')."""
    if device.type == 'cuda':
        return torch.cuda.get_device_properties(device).total_memory, f'the memory of {device}'
    try:
        limit = os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    except (ValueError, OSError, AttributeError):
        return None, ''
    if soft != resource.RLIM_INFINITY and soft < limit:
        return soft, 'this process\'s address-space limit (ulimit -v)'
    return limit, 'the machine\'s physical memory'


@contextlib.contextmanager
def _allocating(memory):
    """Turn torch's failure to allocate `memory`'s buffer into a BlobSizeError."""
    try:
        yield
    except (MemoryError, RuntimeError) as e:
        if isinstance(e, RuntimeError) and not isinstance(e, torch.OutOfMemoryError) \
                and 'allocate' not in str(e):
            raise
        raise BlobSizeError(
            f'needs {memory.capacity} floats ({memory.capacity * 4} bytes), which could not '
            f'be allocated on {memory.device} ({str(e).splitlines()[0]})', memory) from None


class SyncedMemory:
    """A flat float32 buffer with a host and a device copy, synced on use.

    Nothing is allocated until first use, as in Caffe, so diffs that no backward reaches
    (a TEST net's, or those of blobs below the loss's reach) cost no memory.
    """

    def __init__(self, capacity, device):
        self.capacity = capacity
        self.device = device
        self._device = self._host = None
        self._head = None
        self._view = None  # (base tensor, shape, the shaped view of it) last handed out
        self._nhwc = None  # the 4-D shape whose data the buffer holds channels-last (adopt)

    def host(self):
        """The host tensor, current; the caller may write into it."""
        if self._head is None:
            self._allocate()
        if self._host is None:
            with _allocating(self):
                self._host = torch.empty(self.capacity, dtype=torch.float32,
                                         pin_memory=torch.cuda.is_available())
            self._host.copy_(self._device)
        elif self._head == _DEVICE:
            self._host.copy_(self._device)
        if self._host is not self._device:
            self._head = _HOST
        return self._host

    def device_tensor(self):
        """The device tensor, current; the caller may write into it."""
        if self._head is None:
            self._allocate()
        if self._head == _HOST:
            self._device.copy_(self._host)
        if self._host is not self._device:
            self._head = _DEVICE
        return self._device

    def device_view(self, shape):
        """device_tensor()[:count] shaped `shape`; the same view object while neither the
        buffer nor the shape changes (layers ask for it several times a pass)."""
        base = self.device_tensor()
        cached = self._view
        if cached is not None and cached[0] is base and cached[1] == shape:
            return cached[2]
        view = self._shaped(base, shape)
        self._view = (base, shape, view)
        return view

    def host_view(self, shape):
        """host()[:count] shaped `shape` (logically NCHW whatever the buffer's order)."""
        host = self.host()
        if host is self._device:
            return self.device_view(shape)
        return self._shaped(host, shape)

    def _shaped(self, base, shape):
        """base's first elements as a tensor of `shape`: a channels-last buffer (adopt) read
        through the same 4-D shape is handed out as the NCHW-indexed view torch and NumPy
        both understand; read through any other shape (Reshape, Flatten, a Python layer's
        reshape), it is first rewritten in NCHW order, so a flat reader sees Caffe's."""
        if self._nhwc is not None:
            if shape == self._nhwc:
                n, c, h, w = shape
                return base[:math.prod(shape)].view(n, h, w, c).permute(0, 3, 1, 2)
            self._to_nchw(base)
        return base[:math.prod(shape)].view(shape)

    def _to_nchw(self, base):
        n, c, h, w = self._nhwc
        count = n * c * h * w
        base[:count].copy_(base[:count].view(n, h, w, c).permute(0, 3, 1, 2).contiguous()
                           .view(-1))
        self._nhwc, self._view = None, None

    def adopt(self, result):
        """Take `result` (a fresh float32 tensor on the device, of at most `capacity`
        elements) as the buffer instead of copying it in: for blobs a memory plan frees
        every pass (Blob.transient), whose old buffer no NumPy view can outlive in use. The
        capacity becomes the result's size (a later, larger reshape allocates afresh, as
        any growth does). A 4-D result in channels-last order stays in that order
        (Blob.channels_last)."""
        shape = tuple(result.shape)
        self.capacity = math.prod(shape)
        nhwc = (result.dim() == 4 and not result.is_contiguous()
                and result.is_contiguous(memory_format=torch.channels_last))
        flat = result.permute(0, 2, 3, 1).reshape(-1) if nhwc else result.reshape(-1)
        self._device, self._nhwc = flat, shape if nhwc else None
        self._view = (flat, shape, result) if nhwc else None
        if self.device.type == 'cpu':
            self._host, self._head = flat, _SYNCED
        else:
            self._head = _DEVICE

    def release(self):
        """Drop both copies (net_memory.py); the next use allocates them again, zeroed as
        at first use: a diff no layer writes (a Split top feeding a Crop's reference
        bottom) must read as zeros, as in Caffe, where it stays zero forever."""
        self._device = self._host = self._head = self._view = self._nhwc = None

    def _allocate(self):
        with _allocating(self):
            self._device = torch.zeros(self.capacity, dtype=torch.float32,
                                       device=self.device)
        if self.device.type == 'cpu':
            self._host, self._head = self._device, _SYNCED
        else:
            self._head = _DEVICE


class Blob:
    """A named N-d array with `data` and `diff`, as Caffe's Blob<float>."""

    def __init__(self, shape=(), device=None):
        self.device = torch.device(device) if device is not None else mode.device()
        self._shape = ()
        self._count = 0
        self._data = SyncedMemory(0, self.device)
        self._diff = SyncedMemory(0, self.device)
        self.transient = False  # its data is freed every pass (net_memory.MemoryPlan)
        self.channels_last = False  # and its producer may hand it channels-last data
        self.reshape(*shape)

    # -- shape ---------------------------------------------------------------------------
    def reshape(self, *shape):
        """Change the shape; storage is reallocated (zeroed) only when it must grow, after
        check_size (BlobSizeError for a blob Caffe refuses or the device cannot hold)."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list, torch.Size)):
            shape = tuple(shape[0])
        shape = tuple(int(d) for d in shape)
        if any(d < 0 for d in shape):
            raise ValueError(f'blob dimensions must be non-negative, got {shape}')
        count = math.prod(shape)
        if count > self._data.capacity:
            check_size(self, shape, count)
            self._data = SyncedMemory(count, self.device)
            self._diff = SyncedMemory(count, self.device)
        self._shape, self._count = shape, count

    def reshape_like(self, other):
        self.reshape(*other.shape)

    @property
    def shape(self):
        return self._shape

    @property
    def count(self):
        return self._count

    @property
    def num_axes(self):
        return len(self._shape)

    def legacy_shape(self, index):
        """Caffe's LegacyShape: axis `index` (-4..3), or 1 beyond the blob's axes."""
        if index >= self.num_axes or index < -self.num_axes:
            return 1
        return self._shape[index]

    num = property(lambda self: self.legacy_shape(0))
    channels = property(lambda self: self.legacy_shape(1))
    height = property(lambda self: self.legacy_shape(2))
    width = property(lambda self: self.legacy_shape(3))

    def canonical_axis(self, axis):
        """Map a possibly negative axis into [0, num_axes), as CanonicalAxisIndex."""
        if not -self.num_axes <= axis < max(self.num_axes, 1):
            raise IndexError(f'axis {axis} out of range for a {self.num_axes}-D blob '
                             f'of shape {self._shape}')
        return axis + self.num_axes if axis < 0 else axis

    def count_range(self, start, end=None):
        """Product of the dimensions in [start, end)."""
        return math.prod(self._shape[start:end])

    # -- memory --------------------------------------------------------------------------
    @property
    def data(self):
        """Host view of the data as float32 NumPy; writes go to the blob."""
        return self._data.host_view(self._shape).numpy()

    @property
    def diff(self):
        """Host view of the diff as float32 NumPy; writes go to the blob."""
        return self._diff.host_view(self._shape).numpy()

    @property
    def data_tensor(self):
        """The data on the mode's device as a torch tensor that aliases the blob."""
        return self._data.device_view(self._shape)

    @property
    def diff_tensor(self):
        """The diff on the mode's device as a torch tensor that aliases the blob."""
        return self._diff.device_view(self._shape)

    def share_data(self, other):
        """Use `other`'s data memory (Caffe's ShareData); counts must agree."""
        self._check_count(other, 'ShareData')
        self._data = other._data

    def share_diff(self, other):
        """Use `other`'s diff memory (Caffe's ShareDiff); counts must agree."""
        self._check_count(other, 'ShareDiff')
        self._diff = other._diff

    @property
    def adoptable(self):
        """Whether a layer may hand this blob a fresh result as its buffer: transient, and
        its capacity at least the blob's count (after a larger input, a smaller one's blobs
        keep the larger capacity until a fresh result replaces it; blobs sharing the memory,
        Split tops, have the same count)."""
        return self.transient and self._data.capacity >= self._count

    def owns(self, memory):
        """Whether `memory` (a BlobSizeError's owner) is this blob or its data or diff."""
        return memory is self or memory is self._data or memory is self._diff

    def shares_data_with(self, other):
        return self._data is other._data

    def _check_count(self, other, what):
        if self._count != other._count:
            raise ValueError(f'{what}: blob of shape {self._shape} cannot share memory '
                             f'with one of shape {other._shape} (counts differ)')

    def __repr__(self):
        return f'Blob(shape={self._shape})'
