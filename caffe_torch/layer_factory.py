"""The one registry from Caffe layer type string to implementation (layer_factory.hpp).

Registering a type twice is an error; asking for an unknown type lists the known ones.
Built-in layers register when their module in `caffe_torch.layer_types` is imported, which
happens the first time a net names one of its types: a process holds the code of the layers
it runs, as a Caffe binary links only what it uses (`BUILTIN` says where each type lives).
"""
import difflib
import importlib

from caffe_torch.errors import UnknownLayerTypeError

_REGISTRY = {}

_BUILTIN_MODULES = {
    'activations': 'Clip ELU PReLU Swish',
    'common': 'ArgMax Concat Flatten InnerProduct Reshape Silence Slice Split',
    'data': 'DummyData Input',
    'db_data': 'Data',
    'elementwise': 'Bias Eltwise Scale',
    'hdf5_layers': 'HDF5Data HDF5Output',
    'image_data': 'ImageData WindowData',
    'indexing': 'BatchReindex Embed Filter Parameter Tile',
    'loss': 'Accuracy EuclideanLoss Softmax SoftmaxWithLoss',
    'lstm_unit': 'LSTMUnit',
    'margin_losses': 'ContrastiveLoss HingeLoss',
    'memory_data': 'MemoryData',
    'neuron': 'AbsVal BNLL Dropout Exp Log Power ReLU Sigmoid TanH Threshold',
    'normalization': 'BatchNorm MVN',
    'pooling': 'LRN Pooling',
    'probability_losses': 'InfogainLoss MultinomialLogisticLoss SigmoidCrossEntropyLoss',
    'python_layer': 'Python',
    'recurrent': 'LSTM RNN',
    'reduction': 'Reduction',
    'spatial': 'Im2col SPP',
    'vision': 'Convolution Crop Deconvolution',
}
BUILTIN = {type_name: f'caffe_torch.layer_types.{module}'
           for module, names in _BUILTIN_MODULES.items() for type_name in names.split()}


def register(type_name):
    """Class decorator: make `type_name` create instances of the decorated class."""
    def add(creator):
        if type_name in _REGISTRY:
            raise ValueError(f'layer type "{type_name}" is already registered to '
                             f'{_REGISTRY[type_name].__module__}')
        _REGISTRY[type_name] = creator
        return creator
    return add


def create_layer(layer_param, where=''):
    """Instantiate the layer `layer_param.type` names; `where` prefixes errors (a file)."""
    creator = _creator(layer_param.type)
    if creator is None:
        _load_builtin_layers()  # so that the message lists every known type
        raise UnknownLayerTypeError(_unknown_type_message(layer_param, where))
    return creator(layer_param)


def layer_type_list():
    """The registered layer types, sorted as Caffe lists them."""
    _load_builtin_layers()
    return sorted(_REGISTRY)


def _unknown_type_message(layer_param, where):
    known = sorted(_REGISTRY)
    close = difflib.get_close_matches(layer_param.type, known, n=2)
    hint = f' Did you mean {" or ".join(close)}?' if close else ''
    prefix = f'{where}: ' if where else ''
    return (f'{prefix}layer "{layer_param.name}" has unknown type "{layer_param.type}".'
            f'{hint} Known types: {", ".join(known)}.')


def _creator(type_name):
    if type_name not in _REGISTRY and type_name in BUILTIN:
        importlib.import_module(BUILTIN[type_name])  # registers on import
    return _REGISTRY.get(type_name)


def _load_builtin_layers():
    for module in sorted(set(BUILTIN.values())):
        importlib.import_module(module)
