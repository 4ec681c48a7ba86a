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

import pytest

from golden_check import check_recorded
from real_caffe import layer_cases
from real_caffe.conftest import HERE

SEED = int(os.environ.get('FCN_DIFF_SEED', '0'))
PER_TYPE = int(os.environ.get('FCN_DIFF_CASES', '20'))
ONLY = [t for t in os.environ.get('FCN_DIFF_TYPES', '').split(',') if t]  # to draw fewer
CASES = {case.name: case for case in layer_cases.draw(SEED, PER_TYPE, ONLY)}


def record(real_caffe, root):
    """Real Caffe's golden.npz in each case folder, or caffe_abort.txt where it aborted."""
    for _ in range(len(CASES) + 1):
        done = real_caffe.run([HERE / 'pycaffe_side.py', 'layers', root], timeout=1800)
        if done.returncode == 0:
            return
        current = root / '.current'
        if not current.is_file():
            raise RuntimeError(f'pycaffe_side.py failed outside any case:\n{done.stderr}')
        aborted = root / current.read_text()
        (aborted / 'caffe_abort.txt').write_text(done.stderr[-4000:])
        current.unlink()


@pytest.fixture(scope='session')
def recorded(real_caffe, tmp_path_factory):
    root = tmp_path_factory.mktemp('differential')
    for case in CASES.values():
        case.write(root / case.name)
    record(real_caffe, root)
    return root


def test_every_layer_type_has_cases():
    """The generators cover every type the engine registers, which are BVLC's 61."""
    import caffe_torch
    assert sorted(layer_cases.generators()) == caffe_torch.layer_type_list()
    assert len(caffe_torch.layer_type_list()) == 61


@pytest.mark.parametrize('name', sorted(CASES))
def test_layer_matches_real_caffe(name, recorded):
    case = CASES[name]
    folder = recorded / name
    phase = 1 if case.phase == 'TEST' else 0
    with contextlib.chdir(folder):
        abort = pathlib.Path('caffe_abort.txt')
        if abort.is_file():
            refused_by_engine(case, phase, abort.read_text())
            return
        try:
            check_recorded(name, 'net.prototxt', 'golden.npz', phase, case.output_file,
                           *case.tolerance)
        except Exception as e:
            raise AssertionError(f'{e}\n{case.describe()}') from e


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
