"""`python -m caffe_torch.run SCRIPT|-m MODULE [ARGS...]` runs a program written for pycaffe
on the engine as Python would run it: `__main__`, its own argv and sys.path[0], its exit
status, and an uncaught exception's traceback as Python prints it."""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PROBE = '''import json, sys
import caffe
print(json.dumps({'argv': sys.argv, 'name': __name__, 'path0': sys.path[0],
                  'file': __file__, 'caffe': caffe.__name__}))
code = sys.argv[1] if len(sys.argv) > 1 else None
sys.exit(int(code) if code and code.isdigit() else code)
'''
RAISES = '''import sys
def inner():
    raise ValueError('boom ' + sys.argv[1])
def outer():
    try:
        {}['key']
    except KeyError as e:
        inner()
outer()
'''
TINY_NET = '''import caffe
from caffe import layers as L
n = caffe.NetSpec()
n.data = L.Input(shape=dict(dim=[1, 2, 3, 3]))
n.relu = L.ReLU(n.data)
with open('tiny.prototxt', 'w') as f:
    f.write(str(n.to_proto()))
net = caffe.Net('tiny.prototxt', caffe.TEST)
net.blobs['data'].data[...] = -1
net.blobs['data'].data[0, 0] = 2
print(net.forward()['relu'].sum())
'''


def _python(cwd, *argv):
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop('FCN_BACKEND', None)
    return subprocess.run([sys.executable, *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def _run(cwd, *argv):
    return _python(cwd, '-m', 'caffe_torch.run', *argv)


def test_script_argv_name_path_and_exit_code(tmp_path):
    """The script is `__main__` with its own argv, its folder as sys.path[0], exit 3 kept."""
    (tmp_path / 'sub').mkdir()
    (tmp_path / 'sub' / 'probe.py').write_text(PROBE)
    proc = _run(tmp_path, 'sub/probe.py', '3', '--flag', '-m', 'x')
    assert proc.returncode == 3, proc.stderr
    seen = json.loads(proc.stdout)
    script = str(tmp_path / 'sub' / 'probe.py')
    assert seen == {'argv': [script, '3', '--flag', '-m', 'x'], 'name': '__main__',
                    'path0': str(tmp_path / 'sub'), 'file': script, 'caffe': 'caffe_torch'}


def test_system_exit_message(tmp_path):
    """sys.exit('text') prints the text and exits 1, as Python does."""
    (tmp_path / 'probe.py').write_text(PROBE)
    proc = _run(tmp_path, 'probe.py', 'stopped here')
    assert (proc.returncode, proc.stderr) == (1, 'stopped here\n')


def test_traceback_as_python_prints_it(tmp_path):
    """An uncaught exception exits 1 with Python's own traceback, no frame of the runner."""
    (tmp_path / 'raises.py').write_text(RAISES)
    plain = _python(tmp_path, str(tmp_path / 'raises.py'), 'here')
    proc = _run(tmp_path, 'raises.py', 'here')
    assert proc.returncode == plain.returncode == 1
    assert 'ValueError: boom here' in proc.stderr and 'KeyError' in proc.stderr
    assert proc.stderr == plain.stderr


def test_module(tmp_path):
    """-m MODULE runs it as `__main__`, argv[0] its file, the current folder on sys.path."""
    (tmp_path / 'pkg').mkdir()
    (tmp_path / 'pkg' / '__init__.py').write_text('')
    (tmp_path / 'pkg' / 'probe.py').write_text(PROBE)
    proc = _run(tmp_path, '-m', 'pkg.probe', '0', 'b')
    assert proc.returncode == 0, proc.stderr
    script = str(tmp_path / 'pkg' / 'probe.py')
    assert json.loads(proc.stdout) == {'argv': [script, '0', 'b'], 'name': '__main__',
                                       'path0': str(tmp_path), 'file': script,
                                       'caffe': 'caffe_torch'}


def test_script_builds_a_net_with_import_caffe(tmp_path):
    """A pycaffe script (`import caffe`, NetSpec, Net, forward) runs on the engine."""
    (tmp_path / 'tiny.py').write_text(TINY_NET)
    proc = _run(tmp_path, 'tiny.py')
    assert (proc.returncode, proc.stdout) == (0, '18.0\n'), proc.stderr


def test_catch_usage_and_missing_program(tmp_path):
    """No program is a usage error (2); a missing script (2) or module (1) is said as Python
    says it."""
    usage = _run(tmp_path)
    assert usage.returncode == 2 and 'usage: python -m caffe_torch.run' in usage.stderr
    script = _run(tmp_path, 'nowhere.py')
    assert script.returncode == 2
    assert f"can't open file '{tmp_path / 'nowhere.py'}'" in script.stderr
    module = _run(tmp_path, '-m', 'no_such_module_here')
    assert (module.returncode, module.stderr.split(': ', 1)[1]) == (
        1, 'No module named no_such_module_here\n')
