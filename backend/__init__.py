"""The one place the toolkit gets its `caffe`: the caffe_torch engine by default, real
BVLC pycaffe on request. Nothing of caffe_torch is imported when pycaffe is chosen.

    FCN_BACKEND unset or "caffe_torch"  ->  caffe_torch, installed as the module `caffe` too
                                            (caffe.proto, caffe.io, caffe.net_spec,
                                            caffe.coord_map), so Python layers written
                                            `import caffe` run unchanged
    FCN_BACKEND=caffe                   ->  BVLC pycaffe, which must be importable

Toolkit modules write `from backend import caffe, caffe_pb2` and use pycaffe's public API
only. The engine's extras (fast math, data-parallel training, NetParameter objects) are
reached through `extra(name)`, which is None on pycaffe, so every caller has a pycaffe path.
`caffe_pb2` is the backend's own: two modules defining protobuf package `caffe` cannot
live in one process, so the toolkit never mixes the engine's with pycaffe's.
"""
import importlib
import os

ENGINE, PYCAFFE = 'caffe_torch', 'caffe'


class BackendError(ImportError):
    """The requested backend cannot be imported, or lacks what the toolkit asked of it."""


def selected():
    """The backend's name: $FCN_BACKEND, else the engine."""
    return os.environ.get('FCN_BACKEND') or ENGINE


def load(name=None):
    """Import and return the backend `name` (default: `selected()`) as `caffe`."""
    name = name or selected()
    if name == ENGINE:
        return importlib.import_module(ENGINE).install_as_caffe()
    if name == PYCAFFE:
        return _import_pycaffe()
    raise BackendError(f'FCN_BACKEND="{name}" is not a backend; use "{ENGINE}" (default) '
                       f'or "{PYCAFFE}" (BVLC pycaffe).')


def _import_pycaffe():
    try:
        module = importlib.import_module(PYCAFFE)
    except ImportError as e:
        raise BackendError(
            f'FCN_BACKEND=caffe, but pycaffe does not import ({e}). Build BVLC Caffe with '
            f'WITH_PYTHON_LAYER := 1 and put its python/ folder on PYTHONPATH, or unset '
            f'FCN_BACKEND to use the caffe_torch engine.') from None
    if getattr(module, 'ENGINE_NAME', None) == ENGINE or not hasattr(module, 'Net'):
        raise BackendError('FCN_BACKEND=caffe, but the module `caffe` found is not pycaffe '
                           f'({getattr(module, "__file__", module)}); put BVLC Caffe\'s '
                           f'python/ folder first on PYTHONPATH.')
    return module


caffe = load()
is_engine = getattr(caffe, 'ENGINE_NAME', None) == ENGINE
caffe_pb2 = importlib.import_module(caffe.__name__ + '.proto.caffe_pb2')
coord_map = importlib.import_module(caffe.__name__ + '.coord_map')
NAME = ENGINE if is_engine else PYCAFFE


def extra(name):
    """The engine's `caffe.<name>` beyond pycaffe's API (set_fast_math, parallel, mode), or
    None on pycaffe."""
    return getattr(caffe, name, None) if is_engine else None


def keep_blobs(net, names, for_backward=False):
    """Let the engine free every blob but `names` (and the net's inputs, outputs and loss
    tops) once no later layer reads it (caffe_torch's Net.keep_blobs); pycaffe keeps them
    all. For nets whose other blobs the toolkit never reads: scoring, inference, training
    (`for_backward`, which keeps the data backward needs)."""
    keep = getattr(net, 'keep_blobs', None)  # pycaffe's Net has none
    if keep is not None:
        keep(list(names), for_backward)


def input_errors():
    """The exceptions a backend raises for bad input that the CLIs report as `error:`
    lines: the engine's CaffeError; pycaffe's IOError for files it cannot open (its CHECK
    failures abort the process, and glog has said why on stderr)."""
    return (extra('CaffeError'),) if is_engine else (OSError,)
