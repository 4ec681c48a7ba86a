"""`import caffe` giving this engine, so that Python layers and scripts written for pycaffe
(`import caffe`, `from caffe.proto import caffe_pb2`, `caffe.coord_map`) run on it unchanged.
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
