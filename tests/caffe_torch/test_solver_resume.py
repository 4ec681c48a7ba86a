"""Interrupted training: resume in a new process, and a kill during a snapshot write."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np

from golden_check import TINY_FCN

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SCRIPT = '''
import sys, numpy as np
sys.path[:0] = [{root!r}, {golden!r}]
from caffe_torch import install_as_caffe
caffe = install_as_caffe()
solver = caffe.SGDSolver({solver!r})
solver.net.copy_from('tiny_fcn/weights.caffemodel')
{body}
np.savez({out!r}, **{{f'{{k}}/{{i}}': b.data for k, v in solver.net.params.items()
                      for i, b in enumerate(v)}})
'''


def _solver_file(tmp_path, extra=''):
    path = tmp_path / 'solver.prototxt'
    path.write_text(textwrap.dedent(f'''
        net: "{TINY_FCN / 'net.prototxt'}"
        base_lr: 1e-6 lr_policy: "step" gamma: 0.5 stepsize: 2
        momentum: 0.99 weight_decay: 0.0005
        snapshot_prefix: "{tmp_path / 'run'}" {extra}'''))
    return str(path)


def _run(tmp_path, body, out, wait=True, **kwargs):
    code = SCRIPT.format(root=ROOT, golden=str(TINY_FCN.parent), out=str(out),
                         solver=_solver_file(tmp_path, kwargs.pop('extra', '')),
                         body=textwrap.dedent(body))
    proc = subprocess.Popen([sys.executable, '-c', code], cwd=str(TINY_FCN.parent),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if not wait:
        return proc
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err


def test_resume_in_new_process_is_identical(tmp_path):
    """6 steps straight equal 3 steps, snapshot, a new process restoring, 3 more steps."""
    _run(tmp_path, 'solver.step(6)', tmp_path / 'straight.npz')
    _run(tmp_path, 'solver.step(3); solver.snapshot()', tmp_path / 'half.npz')
    assert (tmp_path / 'run_iter_3.solverstate').exists()
    _run(tmp_path, f'''
        solver.restore({str(tmp_path / 'run_iter_3.solverstate')!r})
        assert solver.iter == 3
        solver.step(3)''', tmp_path / 'resumed.npz')
    straight, resumed = np.load(tmp_path / 'straight.npz'), np.load(tmp_path / 'resumed.npz')
    for key in straight.files:
        np.testing.assert_array_equal(resumed[key], straight[key], err_msg=key)


def test_kill_during_snapshot_leaves_previous_snapshot(tmp_path):
    """A process killed while writing a snapshot leaves the previous one whole and loadable,
    and nothing under the new snapshot's names."""
    marker = tmp_path / 'writing'
    body = f'''
        solver.step(2); solver.snapshot()
        import os, time
        def stall(fd):
            open({str(marker)!r}, 'w').close()
            time.sleep(60)
        os.fsync = stall
        solver.step(1); solver.snapshot()'''
    proc = _run(tmp_path, body, tmp_path / 'never.npz', wait=False)
    deadline = time.time() + 120
    while not marker.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert marker.exists(), proc.stderr.read() if proc.poll() is not None else 'timeout'
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    names = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith('.'))
    assert 'run_iter_3.caffemodel' not in names and 'run_iter_3.solverstate' not in names
    assert {'run_iter_2.caffemodel', 'run_iter_2.solverstate'} <= set(names)
    _run(tmp_path, f'''
        solver.restore({str(tmp_path / 'run_iter_2.solverstate')!r})
        assert solver.iter == 2
        solver.step(1)''', tmp_path / 'after.npz')
