"""FCN_BACKEND=caffe: the toolkit on pycaffe's API alone.

Real pycaffe cannot be installed here, so two stand-ins play it: a bare package `caffe` that
is not the engine (to show that choosing pycaffe imports no engine module), and
tests/pycaffe_standin, pycaffe's API and nothing more, computed by the engine (to run the
toolkit's commands as they run on pycaffe: file names only, no engine extras, Caffe's logs
on file descriptor 2, no snapshot folder made for it).
"""
import json
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap


ROOT = pathlib.Path(__file__).resolve().parents[2]
STANDIN = ROOT / 'tests' / 'pycaffe_standin'
QUICK = ['--iterations', '4', '--step', '2', '--no-progress']
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


def test_staged_training_infer_and_convert_on_strict_pycaffe(tiny_demo):
    """classifier -> FCN-32s -> FCN-16s, infer and weights.convert through pycaffe's API:
    train.log gets Caffe's own lines from stderr once each, the conversion writes the same
    bytes as on the engine."""
    out = tiny_demo / 'out'
    trained = _run(['-m', 'solve.cli', 'demo-fcn16s', '--out', str(out)] + QUICK, [STANDIN])
    assert trained.returncode == 0, trained.stderr[-3000:]
    for stage in ('demo-classifier', 'demo-fcn32s', 'demo-fcn16s'):
        folder = out / stage
        assert (folder / f'{stage}.caffemodel').is_file() and (folder / 'curves.png').is_file()
        assert (folder / 'snapshot' / 'train_iter_4.solverstate').is_file()
        assert json.loads((folder / 'run.json').read_text())['backend'] == 'caffe'
        log = (folder / 'train.log').read_text().splitlines()
        loss_lines = [line for line in log if '] Iteration 0 (' in line]
        assert len(loss_lines) == 1 and 'solver.py:' in loss_lines[0], log
        assert sum('Iteration 0, lr = ' in line for line in log) == 1
        assert sum('Iteration 4 mean IU' in line for line in log) == 1
    assert 'bilinear upsampling in upscore2, upscore16' in (out / 'demo-fcn16s' /
                                                            'train.log').read_text()

    image = sorted((tiny_demo / 'data' / 'demo' / 'voc' / 'JPEGImages').iterdir())[0]
    inferred = _run(['-m', 'solve.infer', '--model', 'demo-fcn16s', '--weights',
                     str(out / 'demo-fcn16s' / 'demo-fcn16s.caffemodel'), str(image),
                     '--out', str(tiny_demo / 'infer')], [STANDIN])
    assert inferred.returncode == 0, inferred.stderr[-3000:]
    assert (tiny_demo / 'infer' / f'{image.stem}.png').is_file()

    from weights import convert
    nets = ROOT / 'nets'
    conversion = [nets / 'demo-classifier' / 'deploy.prototxt',
                  nets / 'demo-fcn32s' / 'deploy.prototxt',
                  out / 'demo-classifier' / 'demo-classifier.caffemodel']
    converted = _run(['-m', 'weights.convert', 'custom', '--classifier-net', str(conversion[0]),
                      '--fcn-net', str(conversion[1]), '--input', str(conversion[2]),
                      '--output', str(tiny_demo / 'pycaffe.caffemodel'), '--quiet'], [STANDIN])
    assert converted.returncode == 0, converted.stderr[-3000:]
    convert.convert(*conversion, tiny_demo / 'engine.caffemodel', verbose=False)
    assert (tiny_demo / 'pycaffe.caffemodel').read_bytes() == \
        (tiny_demo / 'engine.caffemodel').read_bytes()
    assert not list(tiny_demo.glob('.*caffemodel*')), 'the scratch file of Net.save was left'


def test_engine_only_options_are_refused_on_pycaffe(tiny_demo):
    """--fast-math has no pycaffe counterpart: one error line, nothing trained."""
    out = _run(['-m', 'solve.cli', 'demo-fcn32s', '--fast-math', '--out',
                str(tiny_demo / 'out')] + QUICK, [STANDIN])
    assert out.returncode == 2
    assert out.stderr.startswith('error: --fast-math is an option of the caffe_torch engine')
    assert not (tiny_demo / 'out').exists()


def test_the_standin_is_as_strict_as_pycaffe(tmp_path):
    """What pycaffe lacks, the stand-in lacks: so the pipeline test above can fail."""
    out = _run(['-c', textwrap.dedent(f'''
        import caffe
        from caffe.proto import caffe_pb2
        net_file = {str(tmp_path / 'net.prototxt')!r}
        open(net_file, 'w').write('layer {{ name: "x" type: "Input" top: "x" '
                                  'input_param {{ shape {{ dim: 1 }} }} }}')
        for attempt in (lambda: caffe.get_solver(caffe_pb2.SolverParameter()),
                        lambda: caffe.Net(caffe_pb2.NetParameter(), caffe.TEST),
                        lambda: caffe.Net(net_file, caffe.TEST).to_proto,
                        lambda: caffe.set_fast_math):
            try:
                attempt()
                print('allowed')
            except (TypeError, AttributeError) as e:
                print(type(e).__name__)''')], [STANDIN])
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ['TypeError', 'TypeError', 'AttributeError',
                                  'AttributeError']


