"""Freeing blob memory no one will read: an engine extra, opt-in (`Net.keep_blobs`).

Caffe, and so pycaffe, keeps every blob's data after a forward and every diff after a
backward, and pycaffe users read any of them; the engine does the same by default. The
toolkit's own inference, scoring and training read a few blobs only, so they ask to keep
those and let the rest go as soon as no later layer reads them, which is what plain PyTorch
does with its intermediate tensors:

  forward only (for_backward=False)   a blob's data is freed after the last layer that
                                      reads or writes it in forward; a backward through
                                      such a net is refused, its inputs are gone
  training (for_backward=True)        all data stays for backward; a blob's diff and data
                                      are freed after the backward of the first layer that
                                      touches the blob (its producer), the last to read them

A forward-only plan lets the layers take faster forms where no one can see the
difference but float32 rounding (mark_transient): channels-last blobs, im2col + gemm
convolutions, Winograd's F(2x2, 3x3) for many-channel 3 x 3 ones (winograd.py), the
in-place ReLU applied by the convolution before it (when both run in one forward call and
no hook is set: nothing sees the top in between). A plan on the CPU also has glibc keep
freed memory for the next pass (host_memory.py).

Never freed: the named blobs, the net's inputs and outputs, loss tops, tops of layers
without bottoms (data layers may fill them once), and memory shared with a parameter
(a Parameter layer's top). Memory is tracked per buffer, so blobs sharing one (in place,
Flatten, Reshape) go together. A freed buffer is allocated again, zeroed, by its next
user, as Caffe's SyncedMemory allocates on first use: a diff no layer writes (a Split top
that feeds a Crop's reference bottom) reads as zeros, as it always does in Caffe.
"""
from caffe_torch import host_memory
from caffe_torch.errors import CaffeError


class FreedBlobError(CaffeError):
    """Backward through a net whose forward freed the data backward needs."""


# Layers whose forward takes a bottom in any memory order (torch's kernels read strides):
# a transient blob read only by these may hold channels-last data (Blob.channels_last).
CHANNELS_LAST_READERS = frozenset(
    {'Convolution', 'Pooling', 'ReLU', 'Crop', 'Eltwise', 'Dropout', 'Split'})


def mark_transient(net, blobs, forward_only=False):
    """Blob.transient: a layer may hand these blobs a fresh buffer instead of writing into
    theirs (convolutions: oneDNN computes into its own and copies into an `out=`, one
    output-sized temporary more); every other blob of `net` keeps its buffer. In a
    forward-only plan, those of them that are 4-D and read only by CHANNELS_LAST_READERS
    are also Blob.channels_last: their producer may leave them in that order, which no one
    sees (a NumPy view of one is still indexed N, C, H, W; a flat reader gets NCHW)."""
    chosen = {id(blob) for blob in blobs}
    readers = {}
    for i, layer in enumerate(net.layers):
        for blob in net.bottom_vecs[i]:
            readers.setdefault(id(blob._data), set()).add(layer.type)
    for blob in net._blob_list:
        blob.transient = id(blob) in chosen
        blob.channels_last = (forward_only and blob.transient and blob.num_axes == 4
                              and readers.get(id(blob._data), set()) <= CHANNELS_LAST_READERS)
    for i, layer in enumerate(net.layers):
        if hasattr(layer, 'fuse_relu'):
            layer.fuse_relu = _relu_follows(net, i)


def _relu_follows(net, i):
    """Whether layer i's only top is transient and rectified in place by the next layer
    (Convolution + ReLU, VGG's pattern): the convolution may apply it (fuse_relu)."""
    tops = net.top_vecs[i]
    if len(tops) != 1 or not tops[0].transient or i + 1 >= len(net.layers):
        return False
    relu = net.layers[i + 1]
    return (relu.type == 'ReLU' and relu.layer_param.relu_param.negative_slope == 0
            and list(net.bottom_vecs[i + 1]) == list(net.top_vecs[i + 1]) == [tops[0]])


class MemoryPlan:
    """Which blobs to free after which layer, for one Net and one set of kept names.

    Blobs are grouped by the buffer they share when the plan is made (after set-up, when
    Split, Flatten, Reshape and in-place layers have shared theirs); the groups are
    structural, so they hold when a larger input makes the blobs reallocate. A group goes
    after the last layer (forward) or first layer (backward) that touches any member.
    """

    def __init__(self, net, keep=(), for_backward=False):
        unknown = sorted(set(keep) - set(net.blobs))
        if unknown:
            raise KeyError(f'keep_blobs: no blob named {", ".join(unknown)} in net '
                           f'"{net.name}"; blobs: {", ".join(net.blobs)}')
        self.net, self.for_backward = net, for_backward
        if all(blob.device.type == 'cpu' for blob in net._blob_list):
            host_memory.reuse_freed_memory()  # the freed blobs come back every pass
        self.data_freed = False
        kept = self._protected(net, set(keep))
        self.after_forward = {} if for_backward else self._plan(kept, '_data', max)
        self.after_backward = self._plan(kept, '_diff', min)
        if for_backward:
            for i, groups in self._plan(kept, '_data', min).items():
                self.after_backward.setdefault(i, []).extend(groups)
        mark_transient(net, [blob for plan in (self.after_forward, self.after_backward)
                             for groups in plan.values() for field, blobs in groups
                             if field == '_data' for blob in blobs], not for_backward)

    @staticmethod
    def _protected(net, keep):
        """ids of the buffers never freed (see the module docstring)."""
        names = keep | set(net.inputs) | set(net.outputs)
        blobs = [blob for name, blob in zip(net._blob_names, net._blob_list)
                 if name in names]
        blobs += [net._blob_list[b] for b, weight in enumerate(net.blob_loss_weight_list)
                  if weight]
        for i in range(len(net.layers)):
            if not net.bottom_vecs[i]:
                blobs += net.top_vecs[i]
        blobs += net.params_list
        return {id(m) for blob in blobs for m in (blob._data, blob._diff)}

    def _plan(self, protected, field, pick):
        """{layer index: [(field, blobs sharing that memory), ...] to free after it}."""
        net = self.net
        groups = {}
        for blob in net._blob_list:
            groups.setdefault(id(getattr(blob, field)), []).append(blob)
        users = {}
        for i in range(len(net.layers)):
            for blob in list(net.bottom_vecs[i]) + list(net.top_vecs[i]):
                users.setdefault(id(getattr(blob, field)), set()).add(i)
        plan = {}
        for key, blobs in groups.items():
            if key not in protected and key in users:
                plan.setdefault(pick(users[key]), []).append((field, blobs))
        return plan

    @staticmethod
    def _free(groups):
        for field, blobs in groups:
            for blob in blobs:
                getattr(blob, field).release()

    def runs(self, i, start, end):
        """Whether layer i runs in forward_from_to(start, end): not the in-place ReLU that
        the convolution just before it applied in this same call (Convolution.fuse_relu).
        A convolution may apply it only when that ReLU runs next in this call and no hook
        could look at its top in between (it then holds what Caffe's would)."""
        layer, net = self.net.layers[i], self.net
        if getattr(layer, 'fuse_relu', False):
            layer.relu_next = i < end and not (net._before_forward or net._after_forward)
            return True
        before = net.layers[i - 1] if i > start else None
        return not (getattr(before, 'fuse_relu', False) and before.applied_relu)

    def forward_done(self, i):
        groups = self.after_forward.get(i)
        if groups:
            self._free(groups)
            self.data_freed = True

    def backward_done(self, i):
        self._free(self.after_backward.get(i, ()))

    def check_backward(self):
        if self.data_freed:
            raise FreedBlobError(
                f'net "{self.net.name}": this net frees blob data after forward '
                f'(keep_blobs(..., for_backward=False)), so backward would read freed '
                f'memory; call net.keep_blobs(names, for_backward=True) to train it, or '
                f'net.keep_blobs(None) to keep every blob, as Caffe does')
