"""Every layer type of BVLC Caffe 9b89154, engine against real Caffe, on cases drawn afresh
from a seed: at least 20 per type (FCN_DIFF_CASES), seed FCN_DIFF_SEED (default 0).

Real Caffe records all of them in one child process (pycaffe_side.py); a case on which Caffe
aborts is recorded as such and the process starts again after it. The engine then runs each
case in this process and must give Caffe's forward tops, bottom and param diffs, params a
forward changes and later forwards, to float32 rounding (relative L2 errors, as the golden
cases). On a case Caffe aborts, the engine must refuse it with a CaffeError instead.
A failure prints the seed and the case's net, and how to rerun it alone.
"""
import contextlib
import os
import pathlib
import sys

import pytest

from golden_check import check_recorded
from real_caffe import layer_cases

SEED = int(os.environ.get('FCN_DIFF_SEED', '0'))
PER_TYPE = int(os.environ.get('FCN_DIFF_CASES', '20'))
ONLY = [t for t in os.environ.get('FCN_DIFF_TYPES', '').split(',') if t]  # to draw fewer
CASES = {case.name: case for case in layer_cases.draw(SEED, PER_TYPE, ONLY)}


@pytest.fixture(scope='session')
def recorded(real_caffe, tmp_path_factory):
    root = tmp_path_factory.mktemp('differential')
    for case in CASES.values():
        case.write(root / case.name)
    real_caffe.record(root, 'layers')
    return root


def test_every_layer_type_has_cases(real_caffe):
    """The generators cover every type real Caffe registers (61, OpenCV's included), and the
    engine registers the same."""
    import caffe_torch
    listed = real_caffe.run(['-c', 'import caffe; print(" ".join(caffe.layer_type_list()))'])
    assert listed.returncode == 0, listed.stderr
    theirs = sorted(listed.stdout.split())
    assert len(theirs) == 61
    assert caffe_torch.layer_type_list() == theirs
    assert sorted(layer_cases.generators()) == theirs


@pytest.mark.parametrize('name', sorted(CASES))
def test_layer_matches_real_caffe(name, recorded):
    case = CASES[name]
    folder = recorded / name
    phase = 1 if case.phase == 'TEST' else 0
    with contextlib.chdir(folder), python_modules(case, folder):
        abort = pathlib.Path('caffe_abort.txt')
        if abort.is_file():
            refused_by_engine(case, phase, abort.read_text())
            return
        try:
            check_recorded(name, 'net.prototxt', 'golden.npz', phase, case.output_file,
                           *case.tolerance)
        except Exception as e:
            raise AssertionError(f'{e}\n{case.describe()}') from e


@contextlib.contextmanager
def python_modules(case, folder):
    """For a case with Python layers: `import caffe` gives the engine, and the modules in
    the case folder import; all undone afterwards."""
    if not case.modules:
        yield
        return
    from caffe_torch import install_as_caffe
    saved = {k: v for k, v in sys.modules.items() if k == 'caffe' or k.startswith('caffe.')}
    install_as_caffe()
    sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        sys.path.remove(str(folder))
        engine = [k for k in sys.modules if k == 'caffe' or k.startswith('caffe.')]
        for name in [*case.modules, *engine]:
            sys.modules.pop(name, None)
        sys.modules.update(saved)


def refused_by_engine(case, phase, caffe_said):
    """Where Caffe aborted (a failed CHECK), the engine must raise a CaffeError: building
    the net, or running the forward and backward Caffe would have run."""
    from caffe_torch import CaffeError, Net
    with pytest.raises(CaffeError):
        net = Net('net.prototxt', phase)
        for name, value in case.bottoms.items():
            net.blobs[name].data[...] = value
        net.forward()
        if case.backward:
            net.backward()
        raise AssertionError(f'Caffe aborted, the engine did not:\n{caffe_said[-1500:]}\n'
                             f'{case.describe()}')
