"""Running the per-layer cases recorded from BVLC Caffe (tests/golden/README.md)."""
import contextlib
import pathlib
import shutil

import numpy as np

import caffe_torch as caffe

CASES = pathlib.Path(__file__).resolve().parent / 'golden' / 'layers'
FORWARD_TOL, BACKWARD_TOL = 2e-6, 2e-5


def rel_error(ours, theirs):
    """Relative L2 error of our array against Caffe's; shapes must agree."""
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    assert ours.shape == theirs.shape, f'shape {ours.shape} != Caffe {theirs.shape}'
    return np.linalg.norm(ours - theirs) / max(np.linalg.norm(theirs), 1e-12)


def groups(golden):
    """{'top': {blob: array}, 'param': {'layer/i': array}, ...} from a golden.npz."""
    found = {}
    for key in golden.files:
        kind, name = key.split('/', 1)
        found.setdefault(kind, {})[name] = golden[key]
    return found


def run_case(case, net_file=None, golden_file=None, phase=None):
    """Build the case's net, set Caffe's bottoms, params and input arrays, run forward."""
    golden = groups(np.load(golden_file or CASES / case / 'golden.npz'))
    if phase is None:
        phase = caffe.TEST if 'test' in case else caffe.TRAIN
    net = caffe.Net(str(net_file or CASES / case / 'net.prototxt'), phase)
    for name, value in golden.get('bottom', {}).items():
        net.blobs[name].data[...] = value
    for key, value in golden.get('param', {}).items():
        layer, index = key.rsplit('/', 1)
        net.params[layer][int(index)].data[...] = value
    if 'input_arrays' in golden:
        arrays = golden['input_arrays']
        net.set_input_arrays(arrays['data'], arrays['label'])
    net.forward()
    return net, golden


def _params(net, expected, kind, tol, case):
    for key, value in expected.items():
        layer, index = key.rsplit('/', 1)
        blob = net.params[layer][int(index)]
        ours = blob.diff if kind == 'param diff' else blob.data
        assert rel_error(ours, value) < tol, f'{case}: {kind} {key}'


def check_case(case, workdir, forward_tol=FORWARD_TOL, backward_tol=BACKWARD_TOL):
    """Every array Caffe recorded for `case`, checked in order (check_recorded). The case is
    copied to workdir/layers/<case> and run from workdir, so its relative paths resolve as
    in caffe-golden/ and what it writes stays out of the tree."""
    shutil.copytree(CASES / case, pathlib.Path(workdir) / 'layers' / case)
    folder = pathlib.Path('layers') / case
    with contextlib.chdir(workdir):
        check_recorded(case, folder / 'net.prototxt', folder / 'golden.npz', None,
                       folder / 'output.h5', forward_tol, backward_tol)


def check_recorded(case, net_file, golden_file, phase, output_file,
                   forward_tol=FORWARD_TOL, backward_tol=BACKWARD_TOL):
    """Every array Caffe recorded in `golden_file`, checked in order: forward tops (and
    params a forward changes), one backward from the recorded top diffs, later forwards,
    and the file HDF5Output wrote (tolerances: relative L2 errors), run in the current
    folder."""
    net, golden = run_case(case, net_file, golden_file, phase)
    expected_blobs = set(golden.get('top', {})) | set(golden.get('bottom', {}))
    assert set(net.blobs) == expected_blobs, case
    for name, value in golden.get('top', {}).items():
        assert rel_error(net.blobs[name].data, value) < forward_tol, f'{case}: top {name}'
    _params(net, golden.get('param_after', {}), 'param after forward', forward_tol, case)
    if {'bottom_diff', 'param_diff'} & set(golden):
        net.clear_param_diffs()  # first: a Parameter layer's top shares its param's diff
        for name, value in golden.get('top_diff', {}).items():
            net.blobs[name].diff[...] = value
        net.backward()
        for name, value in golden.get('bottom_diff', {}).items():
            assert rel_error(net.blobs[name].diff, value) < backward_tol, \
                f'{case}: bottom diff {name}'
        _params(net, golden.get('param_diff', {}), 'param diff', backward_tol, case)
    for k in range(2, 10):
        later = golden.get(f'forward{k}')
        if later is None:
            break
        net.forward()
        for name, value in later.items():
            assert rel_error(net.blobs[name].data, value) < forward_tol, \
                f'{case}: forward {k} top {name}'
    if 'output_file' in golden:
        import h5py
        del net  # HDF5Output closes its file when the net goes
        with h5py.File(output_file, 'r') as f:
            assert set(f) == set(golden['output_file']), case
            for name, value in golden['output_file'].items():
                assert rel_error(f[name][()], value) < forward_tol, f'{case}: file {name}'


TINY_FCN = CASES.parent / 'tiny_fcn'


def tiny_fcn_env(monkeypatch):
    """Run from caffe-golden/ with its layer module importable, as its README says."""
    from caffe_torch import install_as_caffe
    install_as_caffe()
    monkeypatch.chdir(TINY_FCN.parent)
    monkeypatch.syspath_prepend(str(TINY_FCN.parent))
