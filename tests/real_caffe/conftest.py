"""Real BVLC Caffe for the tests marked `caffe`: the build `make caffe` made, and a way to run
its pycaffe in a process of its own (the system Python it was built for)."""
import os
import pathlib
import subprocess

import pytest

from backend import caffe_build

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def pytest_collection_modifyitems(items):
    for item in items:
        if HERE in pathlib.Path(item.path).parents:
            item.add_marker(pytest.mark.caffe)


class RealCaffe:
    """A complete build: its folder, its `caffe` binary, and pycaffe run as a child."""

    def __init__(self, folder):
        self.folder = folder
        self.binary = folder / 'build' / 'tools' / 'caffe'
        self.python = caffe_build.SYSTEM_PYTHON

    def env(self, pythonpath=(), **extra):
        """The environment of a child that imports real pycaffe (glog quiet below ERROR)."""
        env = dict(os.environ, GLOG_minloglevel='2', **extra)
        env.pop('FCN_BACKEND', None)
        build = caffe_build.environment(self.folder)
        env['PYTHONPATH'] = os.pathsep.join([build['PYTHONPATH']]
                                            + [str(p) for p in pythonpath])
        env['LD_LIBRARY_PATH'] = build['LD_LIBRARY_PATH']
        return env

    def run(self, args, cwd=None, pythonpath=(), timeout=900, **extra):
        """Run `python3 args...` with real pycaffe importable; the CompletedProcess."""
        return subprocess.run([self.python] + [str(a) for a in args], cwd=cwd,
                              env=self.env(pythonpath, **extra), capture_output=True,
                              text=True, timeout=timeout)

    def record(self, root, command):
        """pycaffe_side.py `command` over every case folder under `root`, in one process. A
        failed CHECK aborts it: that case gets caffe_abort.txt (what Caffe said) and the
        process starts again after it."""
        for _ in range(len(list(root.iterdir())) + 1):
            done = self.run([HERE / 'pycaffe_side.py', command, root], timeout=1800)
            if done.returncode == 0:
                return
            current = root / '.current'
            if not current.is_file():
                raise RuntimeError(f'pycaffe_side.py failed outside any case:\n{done.stderr}')
            (root / current.read_text() / 'caffe_abort.txt').write_text(done.stderr[-4000:])
            current.unlink()


@pytest.fixture(scope='session')
def real_caffe():
    folder = caffe_build.build_dir()
    if not caffe_build.is_complete(folder):
        message = f'no complete Caffe build in {folder}: run `make caffe` first'
        if os.environ.get('FCN_REQUIRE_CAFFE'):
            pytest.fail(message)
        pytest.skip(message)
    return RealCaffe(folder)


DIFFERENTIAL = ('test_layer_matches_real_caffe[', 'test_solver_matches_real_caffe[')


def pytest_terminal_summary(terminalreporter):
    """CI's summary line: how many differential cases ran, and how many agreed."""
    outcomes = {}
    for outcome in ('passed', 'failed', 'error'):
        for report in terminalreporter.stats.get(outcome, []):
            if any(d in report.nodeid for d in DIFFERENTIAL):
                outcomes.setdefault(report.nodeid, set()).add(outcome)
    if not outcomes:
        return
    agreed = sum(found == {'passed'} for found in outcomes.values())
    layers = sum(DIFFERENTIAL[0] in nodeid for nodeid in outcomes)
    seed = os.environ.get('FCN_DIFF_SEED', '0')
    terminalreporter.write_line(
        f'{len(outcomes)} differential cases (seed {seed}; {layers} of layers, '
        f'{len(outcomes) - layers} of solvers): {agreed} agree with real Caffe, '
        f'{len(outcomes) - agreed} do not')
