"""`import caffe` giving this engine, so that Python layers and scripts written for pycaffe
(`import caffe`, `from caffe.proto import caffe_pb2`, `caffe.coord_map`) run on it unchanged.

Who makes `caffe` the engine:
- `install_as_caffe()`, called by the toolkit (`backend`), by `python -m caffe_torch.run
  SCRIPT`, or by a script itself;
- the engine, when it imports a Python layer's module (python_param.module) and no module
  `caffe` is loaded (`caffe_for_python_layers`): `caffe train`, a script that says `import
  caffe_torch as caffe`. It does so even where a BVLC pycaffe could be imported: pycaffe's
  layers would not run on the engine, and its caffe_pb2 cannot share a process with the
  engine's (both define protobuf package `caffe`).
A `caffe` already loaded is never replaced there: a layer built on it (pycaffe's Layer) is
refused with what to do instead. Once made, the alias stays, so a layer's later
`import caffe` (inside a method) gets the same engine.
"""
import importlib
import sys

_SUBMODULES = ('proto', 'proto.caffe_pb2', 'io', 'net_spec', 'coord_map', 'draw')


def install_as_caffe():
    """Make `import caffe` and its submodules give caffe_torch; returns the engine."""
    engine = importlib.import_module('caffe_torch')
    existing = sys.modules.get('caffe')
    if existing is not None and existing is not engine:
        print(f'caffe_torch: replacing the imported module caffe '
              f'({getattr(existing, "__file__", existing)}) by the engine; set '
              f'FCN_BACKEND=caffe to use pycaffe instead', file=sys.stderr)
    sys.modules['caffe'] = engine
    for sub in _SUBMODULES:
        sys.modules['caffe.' + sub] = importlib.import_module('caffe_torch.' + sub)
    return engine


def caffe_for_python_layers():
    """Before a Python layer's module is imported: the engine as `caffe` unless a module
    `caffe` is loaded already, which is returned as it is."""
    return sys.modules.get('caffe') or install_as_caffe()


def other_caffe():
    """The loaded module `caffe` where it is not this engine, else None."""
    loaded = sys.modules.get('caffe')
    return None if loaded is None or loaded is sys.modules.get('caffe_torch') else loaded
