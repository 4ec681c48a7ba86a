"""A Net and its weights as a torch.nn.Module, and the module's weights back into a caffemodel.

    module = to_module(net)              # parameters: the caffemodel's blobs
    out = module(data=x)                 # {output blob: tensor}, differentiable
    to_caffemodel(module, net, 'ft.caffemodel')

Parameters are `module.params[<layer>][<i>]` (state_dict keys `params.<layer>.<i>`, a '.' in
a layer name written as '_'), blob i of the layer as Caffe numbers them (0 weights, 1 bias);
a blob shared by name appears once, under its owner. The forward runs the net's layers in
order with caffe_torch.export.ops, Dropout per module.train()/eval(), everything else as the
TEST phase. Inputs are the net's Input tops and the tops of data layers (Python, Data, ...),
given by name or in order; loss and accuracy layers are left out with the tops only they
need, so a train/val net exports as its forward to the scores. A layer type without a
faithful functional form raises NoFunctionalForm naming it.
"""
import numpy as np
import torch
from torch import nn

from caffe_torch.export.ops import OPS, NoFunctionalForm  # noqa: F401

SOURCES = {'Input', 'Python', 'Data', 'ImageData', 'HDF5Data', 'MemoryData', 'DummyData',
           'WindowData'}
SINKS = {'SoftmaxWithLoss', 'EuclideanLoss', 'Accuracy', 'SigmoidCrossEntropyLoss',
         'HingeLoss', 'InfogainLoss', 'MultinomialLogisticLoss', 'ContrastiveLoss',
         'Silence'}


def _key(layer_name):
    return layer_name.replace('.', '_')


class CaffeModule(nn.Module):
    """The forward of a Net (see the module docstring); built by to_module."""

    def __init__(self, net):
        super().__init__()
        self.params = nn.ModuleDict()
        self.steps, self.inputs, owners = [], [], {}
        for i, layer in enumerate(net.layers):
            param, kind = layer.layer_param, layer.layer_param.type
            if kind in SOURCES and not param.bottom:
                self.inputs += list(param.top)
                continue
            if kind in SINKS:
                continue
            if kind not in OPS:
                why = ('it runs Python code the exporters cannot see into' if kind == 'Python'
                       else f'the types that have one: {", ".join(sorted(OPS))}')
                raise NoFunctionalForm(f'layer "{param.name}" ({kind}) has no functional '
                                       f'form in caffe_torch.export; {why}')
            refs = self._register(net, i, layer, owners)
            self.steps.append((param, list(param.bottom), list(param.top), refs))
        self.outputs = _outputs(net, self.steps, self.inputs)

    def _register(self, net, i, layer, owners):
        """The layer's parameters as nn.Parameters; shared ones point at their owner's."""
        refs, own = [], nn.ParameterList()
        for j, net_id in enumerate(net.param_ids[i]):
            owner = net.param_owners[net_id]
            if owner == -1:
                own.append(nn.Parameter(torch.from_numpy(np.array(layer.blobs[j].data,
                                                                  np.float32))))
                owners[net_id] = (_key(layer.name), len(own) - 1)
                refs.append(owners[net_id])
            else:
                refs.append(owners[owner])
        if len(own):
            self.params[_key(layer.name)] = own
        return refs

    def forward(self, *args, **kwargs):
        blobs = dict(zip(self.inputs, args))
        blobs.update(kwargs)
        missing = [name for name in self.inputs if name not in blobs]
        if missing:
            raise TypeError(f'missing input(s) {", ".join(missing)}; the inputs are '
                            f'{", ".join(self.inputs)}')
        for param, bottoms, tops, refs in self.steps:
            values = [self.params[key][j] for key, j in refs]
            run = OPS[param.type]
            extra = {'training': self.training} if param.type == 'Dropout' else {}
            for name, value in zip(tops, run(param, [blobs[b] for b in bottoms], values,
                                             **extra)):
                blobs[name] = value
        return {name: blobs[name] for name in self.outputs}


def _outputs(net, steps, inputs):
    """The net's outputs, with what its losses and accuracies read (the scores) in their
    place; labels (inputs) are not outputs; names through automatic Splits as written."""
    source = {}
    for param, bottoms, tops, _ in steps:
        if param.type == 'Split':
            source.update({top: source.get(bottoms[0], bottoms[0]) for top in tops})
    wanted = list(net.outputs)
    for layer in net.layers:
        if layer.layer_param.type in SINKS:
            wanted += [source.get(name, name) for name in layer.layer_param.bottom]
    produced = {top for param, _, tops, _ in steps if param.type not in SINKS for top in tops}
    return [name for name in dict.fromkeys(wanted) if name in produced and name not in inputs]


def to_module(net):
    """The Net `net` (engine) as a CaffeModule whose parameters are copies of its blobs,
    in training mode (Dropout on) for a TRAIN net and eval mode for a TEST net, as the
    net's phase runs it."""
    from caffe_torch.proto import caffe_pb2
    return CaffeModule(net).train(net.phase == caffe_pb2.TRAIN)


def to_caffemodel(module, net, path=None):
    """Write `module`'s parameters into `net`'s blobs (shared ones through their owner);
    with `path`, save the net as a caffemodel there. Returns the net."""
    for i, layer in enumerate(net.layers):
        key = _key(layer.name)
        for j, net_id in enumerate(net.param_ids[i]):
            if net.param_owners[net_id] != -1:
                continue
            value = module.params[key][j].detach().to('cpu', torch.float32)
            if tuple(value.shape) != tuple(layer.blobs[j].shape):
                raise ValueError(f'module parameter {key}.{j} has shape {tuple(value.shape)}, '
                                 f'the net\'s blob {tuple(layer.blobs[j].shape)}: not this '
                                 f'net\'s module')
            layer.blobs[j].data[...] = value.numpy()
    if path is not None:
        net.save(str(path))
    return net
