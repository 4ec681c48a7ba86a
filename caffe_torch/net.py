"""Net: Caffe's Net with pycaffe's Python surface.

Construction follows Net::Init: read and upgrade the prototxt, set the NetState (phase,
level, stages), drop the layers its rules exclude, insert Split layers, then for each layer
wire bottoms and tops (a top named like the bottom at its index is computed in place), set
it up, register its parameters (named ones shared across layers), and decide which layers
and blobs need backward: a layer does when a bottom needs it or a parameter has
lr_mult != 0, and only if it contributes to a loss; `force_backward` overrides the latter.
Net outputs are the blobs no layer consumes, in name order as Caffe's std::set gives them.
"""
from collections import OrderedDict
import functools

import numpy as np
import torch

from caffe_torch import formats, logs, net_weights
from caffe_torch.blob import Blob
from caffe_torch.errors import LayerSetupError
from caffe_torch.layer_factory import create_layer
from caffe_torch.net_graph import check_layer_names, filter_net, insert_splits
from caffe_torch.net_params import ParamRegistry
from caffe_torch.proto import caffe_pb2
from caffe_torch.upgrade import upgrade_net


class Net(ParamRegistry):
    """pycaffe's Net: `Net(prototxt, phase)`, `Net(prototxt, weights, phase)` or
    `Net(prototxt, phase, level=0, stages=(), weights=None)`; a NetParameter may stand in
    for the prototxt path."""

    def __init__(self, network_file, *args, phase=None, level=0, stages=(), weights=None):
        if len(args) == 2:  # pycaffe's deprecated Net(prototxt, weights, phase)
            weights, phase = args
        elif len(args) == 1:
            phase = args[0]
        elif args:
            raise TypeError('Net(prototxt, phase) or Net(prototxt, weights, phase)')
        if isinstance(network_file, caffe_pb2.NetParameter) and phase is None:
            # Net::Net(const NetParameter&): the message's own state, as the solver sets it
            param, self.source = _read_param(network_file), '<NetParameter>'
        else:
            param, self.source = self._with_state(network_file, phase, level, stages)
        self.phase = param.state.phase
        self._init(param)
        if weights is not None:
            self.copy_from(weights)
        self._before_forward, self._after_forward = [], []
        self._before_backward, self._after_backward = [], []
        self._memory = None

    @staticmethod
    def _with_state(network_file, phase, level, stages):
        """Net::Net(file, phase, level, stages): the file's stages plus the given ones."""
        if phase not in (caffe_pb2.TRAIN, caffe_pb2.TEST):
            raise ValueError(f'Net phase must be caffe.TRAIN (0) or caffe.TEST (1), got '
                             f'{phase!r}')
        param = _read_param(network_file)
        param.state.phase, param.state.level = phase, level
        param.state.stage.extend(stages or [])
        source = '<NetParameter>' if isinstance(network_file, caffe_pb2.NetParameter) \
            else str(network_file)
        return param, source

    # -- construction ----------------------------------------------------------------------
    def _init(self, in_param):
        param = insert_splits(logs.initializing(filter_net(in_param, self.source)), self.source)
        self.param = param
        self.name = param.name
        self.layers, self._layer_names = [], []
        self._blob_list, self._blob_names, self._blob_index = [], [], {}
        self.bottom_vecs, self.top_vecs, self.bottom_ids, self.top_ids = [], [], [], []
        self.blob_need_backward, self.bottom_need_backward = [], []
        self.layer_need_backward, self.blob_loss_weight_list = [], []
        self._input_ids = []
        self.params_list, self.param_owners, self.param_display_names = [], [], []
        self.param_ids, self._param_by_name = [], {}
        self.learnable_params, self.params_lr, self.params_weight_decay = [], [], []
        self._has_lr, self._has_decay, self.learnable_param_ids = [], [], []
        available = set()
        with torch.no_grad():
            for layer_id, layer_param in enumerate(param.layer):
                self._append_layer(layer_id, layer_param, available)
        check_layer_names(self._layer_names, self.layers, self.source)
        self._mark_backward(param.force_backward)
        self._output_ids = [self._blob_index[n] for n in sorted(available)]
        self._share_weights()
        logs.net_initialized(self.outputs)

    def _append_layer(self, layer_id, layer_param, available):
        if not layer_param.HasField('phase'):
            layer_param.phase = self.phase
        layer = create_layer(layer_param, self.source)
        self.layers.append(layer)
        self._layer_names.append(layer_param.name)
        bottoms, bottom_ids, need_bottom = [], [], []
        need_backward = False
        for j, name in enumerate(layer_param.bottom):
            blob_id = self._append_bottom(layer_param, j, name, available)
            bottoms.append(self._blob_list[blob_id])
            bottom_ids.append(blob_id)
            need = self.blob_need_backward[blob_id]
            if layer_param.propagate_down:
                need = bool(layer_param.propagate_down[j])
            need_bottom.append(need)
            need_backward |= self.blob_need_backward[blob_id]
        tops, top_ids = [], []
        for j, name in enumerate(layer_param.top):
            blob_id = self._append_top(layer_param, j, name, available)
            tops.append(self._blob_list[blob_id])
            top_ids.append(blob_id)
            if layer_param.type == 'Input':
                self._input_ids.append(blob_id)
        for _ in range(len(tops), layer.auto_tops()):
            top_ids.append(self._append_anonymous_top())
            tops.append(self._blob_list[top_ids[-1]])
        self.bottom_vecs.append(bottoms)
        self.top_vecs.append(tops)
        self.bottom_ids.append(bottom_ids)
        self.top_ids.append(top_ids)
        self.bottom_need_backward.append(need_bottom)
        logs.layer_wired(layer_param, len(tops))
        layer.set_up(bottoms, tops)
        logs.layer_set_up(self, layer_id)
        for j, blob_id in enumerate(top_ids):
            self.blob_loss_weight_list[blob_id] = layer.loss(j)
        need_backward |= self._append_params(layer_id, layer, layer_param)
        self.layer_need_backward.append(need_backward)
        if need_backward:
            for blob_id in top_ids:
                self.blob_need_backward[blob_id] = True

    def _append_bottom(self, layer_param, index, name, available):
        if name not in available:
            raise LayerSetupError(
                f'{self.source}: unknown bottom blob "{name}" (layer "{layer_param.name}", '
                f'bottom index {index}); no earlier layer in this phase produces it.')
        available.discard(name)
        return self._blob_index[name]

    def _append_top(self, layer_param, index, name, available):
        in_place = index < len(layer_param.bottom) and layer_param.bottom[index] == name
        if in_place:
            blob_id = self._blob_index[name]
        elif name in self._blob_index:
            raise LayerSetupError(
                f'{self.source}: top blob "{name}" of layer "{layer_param.name}" is produced '
                f'by multiple sources; rename one of the tops.')
        else:
            blob_id = len(self._blob_list)
            self._blob_list.append(Blob())
            self._blob_names.append(name)
            self._blob_index[name] = blob_id
            self.blob_need_backward.append(False)
            self.blob_loss_weight_list.append(0.0)
        available.add(name)
        return blob_id

    def _append_anonymous_top(self):
        """A top the prototxt did not name (a loss layer's, Caffe's AutoTopBlobs): listed in
        net.blobs as "(automatic)", never a net output nor another layer's bottom."""
        self._blob_list.append(Blob())
        self._blob_names.append('(automatic)')
        self.blob_need_backward.append(False)
        self.blob_loss_weight_list.append(0.0)
        return len(self._blob_list) - 1

    def _mark_backward(self, force_backward):
        """Caffe's backward pass over the graph: skip layers that reach no loss."""
        under_loss, skip = set(), set()
        for i in reversed(range(len(self.layers))):
            names = [self._blob_names[b] for b in self.top_ids[i]]
            contributes = any(self.layers[i].loss(j) or n in under_loss
                              for j, n in enumerate(names))
            skip_down = all(n in skip for n in names)
            if self.layer_need_backward[i] and skip_down:
                self.layer_need_backward[i] = False
                self.bottom_need_backward[i] = [False] * len(self.bottom_ids[i])
            if not contributes:
                self.layer_need_backward[i] = False
            for j, blob_id in enumerate(self.bottom_ids[i]):
                if contributes:
                    under_loss.add(self._blob_names[blob_id])
                else:
                    self.bottom_need_backward[i][j] = False
                if not self.bottom_need_backward[i][j]:
                    skip.add(self._blob_names[blob_id])
        logs.backward_needs(self)
        if force_backward:
            self._force_backward()

    def _force_backward(self):
        for i, layer in enumerate(self.layers):
            self.layer_need_backward[i] = True
            for j, blob_id in enumerate(self.bottom_ids[i]):
                need = self.bottom_need_backward[i][j] or layer.allow_force_backward(j)
                self.bottom_need_backward[i][j] = need
                self.blob_need_backward[blob_id] = self.blob_need_backward[blob_id] or need
            layer.param_propagate_down = [True] * len(layer.blobs)

    # -- running ---------------------------------------------------------------------------
    def forward_from_to(self, start, end):
        """Run layers start..end (inclusive); returns the summed weighted loss."""
        loss, memory = 0.0, self._memory
        with torch.no_grad():
            for i in range(start, end + 1):
                for hook in self._before_forward:
                    hook(i)
                if memory is None or memory.runs(i, start, end):
                    loss += self.layers[i].run_forward(self.bottom_vecs[i], self.top_vecs[i])
                for hook in self._after_forward:
                    hook(i)
                if memory is not None:
                    memory.forward_done(i)
        return loss

    def backward_from_to(self, start, end):
        """Backward through layers start down to end (inclusive), where needed."""
        if self._memory is not None:
            self._memory.check_backward()
        with torch.no_grad():
            for i in range(start, end - 1, -1):
                for hook in self._before_backward:
                    hook(i)
                if self.layer_need_backward[i]:
                    self.layers[i].run_backward(self.top_vecs[i], self.bottom_need_backward[i],
                                                self.bottom_vecs[i])
                for hook in self._after_backward:
                    hook(i)
                if self._memory is not None:
                    self._memory.backward_done(i)

    def forward(self, blobs=None, start=None, end=None, **kwargs):
        """pycaffe's forward: set inputs from kwargs, run, return {output: data view}."""
        start_ind = self._layer_index(start) if start is not None else 0
        end_ind = self._layer_index(end) if end is not None else len(self.layers) - 1
        names = list(self.top_names[end]) if end is not None else list(self.outputs)
        self._set_arrays(kwargs, self.inputs, 'data', 'Input blob arguments', 'net inputs')
        self.forward_from_to(start_ind, end_ind)
        return {name: self.blobs[name].data for name in set(names + list(blobs or []))}

    def backward(self, diffs=None, start=None, end=None, **kwargs):
        """pycaffe's backward: set output diffs from kwargs, run, return {input: diff}."""
        start_ind = self._layer_index(start) if start is not None else len(self.layers) - 1
        end_ind = self._layer_index(end) if end is not None else 0
        names = list(self.bottom_names[end]) if end is not None else list(self.inputs)
        self._set_arrays(kwargs, self.outputs, 'diff', 'Top diff arguments', 'net outputs')
        self.backward_from_to(start_ind, end_ind)
        return {name: self.blobs[name].diff for name in set(names + list(diffs or []))}

    def forward_all(self, blobs=None, **kwargs):
        """Forward over inputs of any batch count, in net-batch chunks; returns stacked outputs."""
        names = list(self.outputs) + list(blobs or [])
        batches = {name: [] for name in names}
        total = len(next(iter(kwargs.values()))) if kwargs else 1
        batch = self.blobs[self.inputs[0]].shape[0] if self.inputs else 1
        for begin in range(0, total, batch):
            chunk = {k: _pad_batch(np.asarray(v)[begin:begin + batch], batch)
                     for k, v in kwargs.items()}
            out = self.forward(blobs=blobs, **chunk)
            for name in names:
                batches[name].extend(out[name].copy()[:min(batch, total - begin)])
        return {name: np.asarray(v) for name, v in batches.items()}

    def reshape(self):
        """Propagate input shape changes through every layer (Net::Reshape)."""
        with torch.no_grad():
            for i, layer in enumerate(self.layers):
                layer.run_reshape(self.bottom_vecs[i], self.top_vecs[i])

    def clear_param_diffs(self):
        for blob in self.learnable_params:
            blob.diff_tensor.zero_()

    def keep_blobs(self, names=(), for_backward=False):
        """Engine extra: keep only the blobs `names` (and inputs, outputs, loss tops), free
        the rest once no later layer reads them, and run faster forms equal to float32
        rounding; `for_backward` keeps the data backward needs and frees diffs as backward
        passes them. `keep_blobs(None)` keeps every blob, as Caffe (net_memory.py)."""
        from caffe_torch.net_memory import MemoryPlan, mark_transient
        mark_transient(self, [])
        self._memory = None if names is None else MemoryPlan(self, names, for_backward)
        for layer in self.layers:
            layer.backward_state = names is None or for_backward

    def before_forward(self, hook):
        self._before_forward.append(hook)

    def after_forward(self, hook):
        self._after_forward.append(hook)

    def before_backward(self, hook):
        self._before_backward.append(hook)

    def after_backward(self, hook):
        self._after_backward.append(hook)

    def _layer_index(self, name):
        try:
            return self._layer_names.index(name)
        except ValueError:
            raise KeyError(f'no layer named "{name}" in net "{self.name}"; layers: '
                           f'{", ".join(self._layer_names)}') from None

    def _set_arrays(self, arrays, expected, field, what, owner):
        if not arrays:
            return
        if set(arrays) != set(expected):
            raise ValueError(f'{what} {sorted(arrays)} do not match {owner} '
                             f'{sorted(expected)}')
        for name, value in arrays.items():
            blob = self.blobs[name]
            if np.shape(value)[:1] != blob.shape[:1]:
                raise ValueError(f'{name}: batch of {np.shape(value)[:1]} does not match '
                                 f'the blob\'s {blob.shape[:1]}; reshape the blob first')
            getattr(blob, field)[...] = value

    def set_input_arrays(self, data, labels):
        """pycaffe's set_input_arrays: feed the MemoryData layer that must be the net's first
        layer with `data` (N x C x H x W) and `labels` (N, or N x 1 x 1 x 1), C-contiguous
        float32, N a multiple of its batch_size; InputArrayError (a RuntimeError, as
        pycaffe's) otherwise. The layer keeps the arrays, as pycaffe does."""
        from caffe_torch.layer_types.memory_data import set_input_arrays
        set_input_arrays(self, data, labels)

    # -- weights ---------------------------------------------------------------------------
    def copy_from(self, path):
        """Copy weights by layer name from a caffemodel (or .h5), as CopyTrainedLayersFrom."""
        net_weights.copy_from(self, path)

    def share_with(self, other):
        """Share the parameter data of `other`'s same-named layers (ShareTrainedLayersWith)."""
        net_weights.share_with(self, other)

    def to_proto(self, write_diff=False):
        return net_weights.to_proto(self, write_diff)

    def save(self, path, write_diff=False):
        """Write the net with its weights as a binary caffemodel, atomically."""
        formats.write_binaryproto(self.to_proto(write_diff), path)

    def save_hdf5(self, path, write_diff=False):
        net_weights.save_hdf5(self, path, write_diff)

    def load_hdf5(self, path):
        net_weights.load_hdf5(self, path)

    # -- pycaffe views ---------------------------------------------------------------------
    @functools.cached_property
    def blobs(self):
        return OrderedDict(zip(self._blob_names, self._blob_list))

    @functools.cached_property
    def layer_dict(self):
        return OrderedDict(zip(self._layer_names, self.layers))

    @functools.cached_property
    def params(self):
        return OrderedDict((name, layer.blobs) for name, layer in
                           zip(self._layer_names, self.layers) if layer.blobs)

    @functools.cached_property
    def blob_loss_weights(self):
        return OrderedDict(zip(self._blob_names, self.blob_loss_weight_list))

    @functools.cached_property
    def top_names(self):
        return OrderedDict((name, [self._blob_names[b] for b in ids])
                           for name, ids in zip(self._layer_names, self.top_ids))

    @functools.cached_property
    def bottom_names(self):
        return OrderedDict((name, [self._blob_names[b] for b in ids])
                           for name, ids in zip(self._layer_names, self.bottom_ids))

    @property
    def inputs(self):
        return [self._blob_names[i] for i in self._input_ids]

    @property
    def outputs(self):
        return [self._blob_names[i] for i in self._output_ids]

    @property
    def _blob_loss_weights(self):
        return self.blob_loss_weight_list


def _read_param(network_file):
    if isinstance(network_file, caffe_pb2.NetParameter):
        param = caffe_pb2.NetParameter()
        param.CopyFrom(network_file)
        return upgrade_net(param)
    return formats.read_net(network_file)


def _pad_batch(array, batch):
    pad = np.zeros((batch - len(array),) + array.shape[1:], dtype=array.dtype)
    return np.concatenate([array, pad]) if len(pad) else array
