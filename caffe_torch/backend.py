"""The one place the toolkit gets its `caffe`: this engine by default, real pycaffe on request.

    FCN_BACKEND unset or "caffe_torch"  ->  caffe_torch, also installed as the module `caffe`
                                            (with caffe.proto, caffe.io, caffe.net_spec), so
                                            Python layers written `import caffe` run unchanged
    FCN_BACKEND=caffe                   ->  BVLC pycaffe, which must be importable

Toolkit modules write `from caffe_torch.backend import caffe`.
"""
import importlib
import os
import sys

ENGINE, PYCAFFE = 'caffe_torch', 'caffe'
_ALIASES = ('proto', 'proto.caffe_pb2', 'io', 'net_spec', 'coord_map')


class BackendError(ImportError):
    """The requested backend cannot be imported."""


def load(name=None):
    """Import and return the backend `name` (default: $FCN_BACKEND, else the engine)."""
    name = name or os.environ.get('FCN_BACKEND') or ENGINE
    if name == ENGINE:
        return install_as_caffe()
    if name == PYCAFFE:
        return _import_pycaffe()
    raise BackendError(f'FCN_BACKEND="{name}" is not a backend; use "{ENGINE}" (default) '
                       f'or "{PYCAFFE}" (BVLC pycaffe).')


def install_as_caffe():
    """Make `import caffe` (and its submodules) give this engine; returns it."""
    engine = importlib.import_module(ENGINE)
    existing = sys.modules.get('caffe')
    if existing is not None and existing is not engine:
        print(f'caffe_torch: replacing the imported module caffe ({existing.__file__}) by '
              f'the engine; set FCN_BACKEND=caffe to use pycaffe instead', file=sys.stderr)
    sys.modules['caffe'] = engine
    for sub in _ALIASES:
        sys.modules['caffe.' + sub] = importlib.import_module(f'{ENGINE}.{sub}')
    return engine


def _import_pycaffe():
    try:
        module = importlib.import_module(PYCAFFE)
    except ImportError as e:
        raise BackendError(
            f'FCN_BACKEND=caffe, but pycaffe does not import ({e}). Build BVLC Caffe with '
            f'WITH_PYTHON_LAYER := 1 and put its python/ folder on PYTHONPATH, or unset '
            f'FCN_BACKEND to use the caffe_torch engine.') from None
    if getattr(module, '__name__', '') == ENGINE or not hasattr(module, 'Net'):
        raise BackendError('FCN_BACKEND=caffe, but the module `caffe` found is not pycaffe '
                           f'({getattr(module, "__file__", module)}).')
    return module


caffe = load()
