"""The "Python" layer type: a layer class written by the user, as pycaffe's PythonLayer.

    layer { type: "Python" python_param { module: "my_layers" layer: "MyData"
                                          param_str: "{'split': 'train'}" } }

`module` is imported from sys.path (importlib, as Caffe's bp::import) and `layer` names a
class in it that subclasses caffe.Layer (caffe_torch.Layer). With no module `caffe` loaded,
the engine installs itself as `caffe` first, so a module saying `import caffe` gets it
wherever the engine runs (the rule: caffe_torch/alias.py). It is built as cls(layer_param),
gets `param_str` (the string, as given) before setup, and `phase` (caffe.TRAIN/TEST) from the
Layer base. It overrides setup/reshape/forward/backward and works on the NumPy views
blob.data / blob.diff; its parameters go in self.blobs (self.blobs.add_blob(*shape)).
`bottom` and `top` come as pycaffe's: len() and integer indexing only (layer.RawBlobVec).
Exceptions raised by the user's code propagate unchanged. No blob-count checks, as in Caffe.
"""
import importlib
import inspect
import sys

from caffe_torch import alias
from caffe_torch.errors import LayerSetupError
from caffe_torch.layer import Layer
from caffe_torch.layer_factory import register


def create_python_layer(layer_param):
    """Import python_param.module, build its python_param.layer class, hand it param_str."""
    python_param = layer_param.python_param
    where = f'layer "{layer_param.name}" (Python)'
    if not python_param.module or not python_param.layer:
        raise LayerSetupError(
            f'{where}: python_param needs both module and layer, got module '
            f'"{python_param.module}" and layer "{python_param.layer}"')
    module = _import(python_param.module, where)
    cls = _layer_class(module, python_param.layer, where)
    layer = cls(layer_param)
    layer.param_str = python_param.param_str
    layer.pycaffe_vectors = True
    return layer


register('Python')(create_python_layer)


def _import(module_name, where):
    alias.caffe_for_python_layers()
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if not _names_prefix(exc.name, module_name):
            raise  # the module itself imports something missing: the user's error
        shown = ', '.join(repr(p) for p in sys.path[:6])
        more = ', ...' if len(sys.path) > 6 else ''
        raise LayerSetupError(
            f'{where}: cannot import python_param.module "{module_name}" (no module named '
            f'"{exc.name}" on sys.path). Put the folder holding {module_name}.py on '
            f'sys.path before building the net (sys.path.insert(0, folder) or PYTHONPATH);'
            f' sys.path is [{shown}{more}]') from exc


def _names_prefix(missing, module_name):
    """Whether the missing module is `module_name` or one of its parent packages."""
    return missing is not None and (module_name == missing or
                                     module_name.startswith(missing + '.'))


def _layer_class(module, class_name, where):
    cls = getattr(module, class_name, None)
    origin = getattr(module, '__file__', None) or module.__name__
    if cls is None:
        found = sorted(name for name, value in vars(module).items()
                       if inspect.isclass(value) and issubclass(value, Layer)
                       and value.__module__ == module.__name__)
        raise LayerSetupError(
            f'{where}: module "{module.__name__}" ({origin}) has no class '
            f'"{class_name}" (python_param.layer); its Layer classes: '
            f'{", ".join(found) or "none"}')
    if not (inspect.isclass(cls) and issubclass(cls, Layer)):
        other = alias.other_caffe()
        if _subclasses(cls, getattr(other, 'Layer', None)):
            raise LayerSetupError(
                f'{where}: the module `caffe` loaded in this process is '
                f'{getattr(other, "__file__", None) or other!r}, not the engine caffe_torch, '
                f'and "{module.__name__}.{class_name}" subclasses its Layer. To run the net on '
                f'the engine, call caffe_torch.install_as_caffe() before anything imports '
                f'caffe, or start the script with python -m caffe_torch.run SCRIPT')
        raise LayerSetupError(
            f'{where}: "{module.__name__}.{class_name}" must be a class subclassing '
            f'caffe.Layer (caffe_torch.Layer), got {cls!r}')
    return cls


def _subclasses(cls, base):
    return inspect.isclass(cls) and inspect.isclass(base) and issubclass(cls, base)
