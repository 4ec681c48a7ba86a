"""FCN_BACKEND=caffe without a Caffe build: what backend/ does with the module `caffe` it
finds. A bare package `caffe` that is not the engine shows that choosing pycaffe imports no
engine module; the engine installed as `caffe` is refused. The toolkit's commands on real
pycaffe are tests/real_caffe/test_toolkit_on_pycaffe.py (marked `caffe`: `make caffe` builds
BVLC Caffe for them).
"""
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap


ROOT = pathlib.Path(__file__).resolve().parents[2]
TOOLKIT_MODULES = [
    'backend', 'backend.files', 'nets.generate', 'nets.analysis', 'surgery', 'data_layers.voc',
    'data_layers.nyud', 'data_layers.siftflow', 'data_layers.pascalcontext',
    'data_layers.classification', 'solve.cli', 'solve.loop', 'solve.logs', 'solve.infer',
    'solve.score', 'solve.tables', 'solve.measure', 'solve.demo', 'solve.curves',
    'weights.convert', 'weights.download']

BARE_PYCAFFE = '''
"""Not the engine: the names the toolkit's modules touch when they are imported."""
import types
TRAIN, TEST = 0, 1
class Net: pass
class Layer: pass
def solver_rank(): return 0
def solver_count(): return 1
layers, params = types.SimpleNamespace(), types.SimpleNamespace()
class NetSpec: pass
'''


def _run(args, pythonpath=(), **env):
    """A child interpreter with FCN_BACKEND=caffe and `pythonpath` first on its path."""
    full = dict(os.environ, FCN_BACKEND='caffe', **env)
    full['PYTHONPATH'] = os.pathsep.join([str(p) for p in pythonpath] + [str(ROOT)])
    return subprocess.run([sys.executable] + args, cwd=ROOT, env=full, capture_output=True,
                          text=True, timeout=600)


def test_choosing_pycaffe_imports_no_engine_module(tmp_path):
    """With a `caffe` that is not the engine, importing every toolkit module leaves no
    caffe_torch module in sys.modules, and caffe_pb2 is that caffe's own."""
    package = tmp_path / 'caffe'
    (package / 'proto').mkdir(parents=True)
    (package / '__init__.py').write_text(BARE_PYCAFFE)
    (package / 'io.py').write_text('')
    (package / 'coord_map.py').write_text('')
    (package / 'proto' / '__init__.py').write_text('')
    shutil.copy(ROOT / 'caffe_torch' / 'proto' / 'caffe_pb2.py', package / 'proto')
    out = _run(['-c', textwrap.dedent(f'''
        import importlib, sys
        for name in {TOOLKIT_MODULES!r}:
            importlib.import_module(name)
        import backend
        print(sorted(m for m in sys.modules if m.split('.')[0] == 'caffe_torch'))
        print(backend.caffe_pb2.__file__, backend.NAME, backend.extra('set_fast_math'))''')],
        pythonpath=[tmp_path])
    assert out.returncode == 0, out.stderr
    engine_modules, origin = out.stdout.splitlines()
    assert engine_modules == '[]'
    assert origin == f'{package / "proto" / "caffe_pb2.py"} caffe None'


def test_a_caffe_that_is_the_engine_is_refused(tmp_path):
    """FCN_BACKEND=caffe finding the engine installed as `caffe` says so."""
    (tmp_path / 'caffe.py').write_text('from caffe_torch import *\nENGINE_NAME = "caffe_torch"\n')
    out = _run(['-c', 'import backend'], pythonpath=[tmp_path])
    assert out.returncode != 0 and 'is not pycaffe' in out.stderr
