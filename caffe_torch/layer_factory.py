"""The one registry from Caffe layer type string to implementation (layer_factory.hpp).

Registering a type twice is an error; asking for an unknown type lists the known ones.
Built-in layers register on import of `caffe_torch.layer_types`.
"""
import difflib

from caffe_torch.errors import UnknownLayerTypeError

_REGISTRY = {}


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
    _load_builtin_layers()
    creator = _REGISTRY.get(layer_param.type)
    if creator is None:
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


def _load_builtin_layers():
    import caffe_torch.layer_types  # noqa: F401  (registers on import)
