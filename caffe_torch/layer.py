"""Layer: Caffe's layer contract, for built-in layers and pycaffe Python layers alike.

Lifecycle (driven by Net, as in caffe/layer.hpp):
  set_up:      check bottom/top counts -> setup() -> reshape() -> loss weights into top diffs
  run_forward: reshape() -> forward() -> loss = sum over loss tops of dot(top data, top diff)
  run_backward: backward(top, propagate_down, bottom)
Subclasses override `setup`, `reshape`, `forward`, `backward` (pycaffe's names). Built-in
layers work on torch tensors (`blob.data_tensor`), Python layers on NumPy (`blob.data`).

Diff conventions that ports get wrong: a layer *overwrites* its bottom diffs and *adds* to
its parameter diffs, which accumulate across backward calls until the solver clears them.
A loss top's diff holds its loss_weight, set once at set-up; backward reads it from there.
"""
import numbers

import torch

from caffe_torch.blob import Blob
from caffe_torch.errors import BackwardNotImplementedError, BlobSizeError, LayerSetupError
from caffe_torch.proto import caffe_pb2


class BlobVec(list):
    """A layer's parameter blobs; `add_blob(*shape)` is pycaffe's way to append one."""

    def add_blob(self, *shape):
        try:
            self.append(Blob(shape))
        except BlobSizeError as e:
            e.where = f'param {len(self)}'
            raise
        return self[-1]


class RawBlobVec:
    """A Python layer's `bottom` or `top` as pycaffe hands them over: Boost's vector of
    Blob* (pycaffe's RawBlobVec), which has len() and integer indexing, negative included,
    and nothing else. Iterating, slicing or `in` raise TypeError, as on pycaffe, so layers
    tested here do not break there."""
    __slots__ = ('_blobs',)

    def __init__(self, blobs):
        self._blobs = blobs

    def __len__(self):
        return len(self._blobs)

    def __getitem__(self, index):
        if isinstance(index, bool) or not isinstance(index, numbers.Integral):
            self._refuse(f'indexing with {type(index).__name__}')
        if not -len(self._blobs) <= index < len(self._blobs):
            raise IndexError(f'Index out of range: {index} of {len(self._blobs)} blob(s)')
        return self._blobs[index]

    def __iter__(self):
        self._refuse('iterating')

    def __contains__(self, item):
        self._refuse('`in`')

    @staticmethod
    def _refuse(what):
        raise TypeError(f'No to_python (by-value) converter found for C++ type: '
                        f'caffe::Blob<float>* ({what} a Python layer\'s bottom or top: pycaffe '
                        f'allows len() and integer indexing only; write '
                        f'`for i in range(len(top)): top[i]`)')


class Layer:
    """Base of every layer. Count rules are class attributes (None: not checked)."""
    exact_bottoms = min_bottoms = max_bottoms = None
    exact_tops = min_tops = max_tops = None
    equal_bottom_top = False
    is_loss = False  # loss layers default to loss_weight 1 on their first top
    pycaffe_vectors = False  # Python layers get bottom/top as RawBlobVec, as on pycaffe
    # False in a net that will run no backward (Net.keep_blobs without for_backward):
    # layers may then drop what only their backward reads (Pooling's argmax mask)
    backward_state = True

    def __init__(self, layer_param=None, phase=None):
        self.layer_param = caffe_pb2.LayerParameter()
        if layer_param is not None:
            self.layer_param.CopyFrom(layer_param)
        self.phase = int(self.layer_param.phase if phase is None else phase)
        self.blobs = BlobVec()
        self.param_propagate_down = []
        self.loss_weights = []

    @property
    def name(self):
        return self.layer_param.name

    @property
    def type(self):
        return self.layer_param.type

    # -- pycaffe overridables --------------------------------------------------------------
    def setup(self, bottom, top):
        """One-time set-up: read parameters, create and fill parameter blobs."""

    def reshape(self, bottom, top):
        """Shape the tops (and buffers) from the bottoms; runs before every forward."""
        raise NotImplementedError(f'layer "{self.name}" ({self.type}) defines no reshape')

    def forward(self, bottom, top):
        raise NotImplementedError(f'layer "{self.name}" ({self.type}) defines no forward')

    def backward(self, top, propagate_down, bottom):
        """Default: nothing to propagate (data layers, Silence of no-needed bottoms)."""

    def refuse_backward(self, propagate_down, why):
        """What a layer Caffe has no backward for does (ArgMax, Threshold): Caffe aborts with
        NOT_IMPLEMENTED where a diff is asked of it; this raises."""
        if any(propagate_down):
            raise BackwardNotImplementedError(
                f'layer "{self.name}" ({self.type}): backward is not implemented, {why} '
                f'(Caffe aborts with NOT_IMPLEMENTED); drop force_backward, or put '
                f'propagate_down: false on the layer or stop gradients before it')

    def auto_tops(self):
        """How many tops the Net makes when the prototxt names fewer (AutoTopBlobs): a loss
        layer always has its loss top, named or not."""
        return 1 if self.is_loss else 0

    def allow_force_backward(self, bottom_index):
        """Whether force_backward may ask for this bottom's diff (not for labels)."""
        return not (self.is_loss and bottom_index == 1)

    # -- driven by Net ---------------------------------------------------------------------
    def set_up(self, bottom, top):
        self.check_blob_counts(bottom, top)
        if self.is_loss and not self.layer_param.loss_weight:
            self.layer_param.loss_weight.append(1.0)
        try:
            self.setup(*self._vectors(bottom, top))
            self.reshape(*self._vectors(bottom, top))
            self._set_loss_weights(top)
        except BlobSizeError as e:
            raise self.locate_size_error(e, top) from None

    def run_reshape(self, bottom, top):
        try:
            self.reshape(*self._vectors(bottom, top))
        except BlobSizeError as e:
            raise self.locate_size_error(e, top) from None

    def run_forward(self, bottom, top):
        bottom_vec, top_vec = self._vectors(bottom, top)
        try:
            self.reshape(bottom_vec, top_vec)
            self.forward(bottom_vec, top_vec)
        except BlobSizeError as e:
            raise self.locate_size_error(e, top) from None
        loss = 0.0
        for blob, weight in zip(top, self.loss_weights):
            if weight:
                loss += float(torch.dot(blob.data_tensor.reshape(-1),
                                        blob.diff_tensor.reshape(-1)))
        return loss

    def run_backward(self, top, propagate_down, bottom):
        top_vec, bottom_vec = top, bottom
        if self.pycaffe_vectors:
            top_vec, bottom_vec = RawBlobVec(top), RawBlobVec(bottom)
            propagate_down = list(propagate_down)  # pycaffe's BoolVec iterates
        try:
            self.backward(top_vec, propagate_down, bottom_vec)
        except BlobSizeError as e:
            raise self.locate_size_error(e, top, bottom) from None

    def locate_size_error(self, error, top, bottom=()):
        """`error` (a blob too large to allocate) with this layer's name, the top, bottom or
        param at fault and what to check; one an inner layer has located stays as it is."""
        if error.located:
            return error
        where, blob = error.where or 'an internal buffer', None
        named = [('top', top, self.layer_param.top), ('bottom', bottom, self.layer_param.bottom)]
        for kind, blobs, names in named:
            for j, candidate in enumerate(blobs):
                if candidate.owns(error.owner):
                    name = names[j] if j < len(names) else '(automatic)'
                    where, blob = f'{kind} {j} "{name}"', candidate
        for j, candidate in enumerate(self.blobs):
            if candidate.owns(error.owner):
                where, blob = f'param {j}', candidate
        shape = error.shape if error.shape is not None else blob.shape if blob else '?'
        fix = ('check its num_output (and kernel_size), and the bottom shape they apply to'
               if where.startswith('param') else 'check the input shape (Input or '
               'DummyData shape, batch size, image size) and the num_output of the layers '
               'below')
        located = BlobSizeError(error.detail, error.owner, shape, where)
        located.args = (f'layer "{self.name}" ({self.type}): {where} of shape {shape} '
                        f'{error.detail}. Fix: {fix}.',)
        located.located = True
        return located

    def _vectors(self, bottom, top):
        if self.pycaffe_vectors:
            return RawBlobVec(bottom), RawBlobVec(top)
        return bottom, top

    def loss(self, top_index):
        return self.loss_weights[top_index] if top_index < len(self.loss_weights) else 0.0

    def check_blob_counts(self, bottom, top):
        rules = [('bottom', len(bottom), self.exact_bottoms, self.min_bottoms,
                  self.max_bottoms),
                 ('top', len(top), self.exact_tops, self.min_tops, self.max_tops)]
        for what, n, exact, low, high in rules:
            if exact is not None and n != exact:
                self.fail(f'takes exactly {exact} {what} blob(s), got {n}')
            if low is not None and n < low:
                self.fail(f'takes at least {low} {what} blob(s), got {n}')
            if high is not None and n > high:
                self.fail(f'takes at most {high} {what} blob(s), got {n}')
        if self.equal_bottom_top and len(bottom) != len(top):
            self.fail(f'needs as many tops as bottoms, got {len(bottom)} bottom(s) and '
                      f'{len(top)} top(s)')

    def fail(self, message):
        """Raise LayerSetupError naming this layer."""
        raise LayerSetupError(f'layer "{self.name}" ({self.type}): {message}')

    def _set_loss_weights(self, top):
        weights = list(self.layer_param.loss_weight)
        if weights and len(weights) != len(top):
            self.fail(f'loss_weight must be unspecified or given once per top: '
                      f'{len(weights)} loss_weight(s) for {len(top)} top(s)')
        self.loss_weights = [float(w) for w in weights] or [0.0] * len(top)
        for blob, weight in zip(top, self.loss_weights):
            if weight:
                blob.diff_tensor.fill_(weight)

    # -- helpers for built-in layers -------------------------------------------------------
    def param_blob(self, shape, filler=None):
        """Append a parameter blob of `shape`, filled by `filler` (a FillerParameter)."""
        from caffe_torch.fillers import fill
        blob = self.blobs.add_blob(*shape)
        if filler is not None:
            fill(blob, filler)
        return blob

    def param_needs_diff(self, index):
        """param_propagate_down[index], set by the Net; a standalone layer wants every diff."""
        flags = self.param_propagate_down
        return index >= len(flags) or bool(flags[index])

    def canonical_axis(self, blob, axis, field):
        """blob.canonical_axis, failing with this layer's name and the parameter at fault."""
        try:
            return blob.canonical_axis(axis)
        except IndexError:
            self.fail(f'{field} = {axis} is out of range for a bottom of shape {blob.shape} '
                      f'({blob.num_axes} axes); use an axis in [-{blob.num_axes}, '
                      f'{blob.num_axes})')

