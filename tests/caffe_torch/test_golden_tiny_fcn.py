"""The small FCN recorded from BVLC Caffe: one forward and backward, blob for blob."""
import numpy as np
import pytest

import caffe_torch as caffe
from golden_check import TINY_FCN, rel_error, tiny_fcn_env


def test_tiny_fcn_forward_backward_matches_caffe(monkeypatch):
    """Every blob's data and diff and every param diff equal Caffe's after one pass."""
    tiny_fcn_env(monkeypatch)
    golden = np.load(TINY_FCN / 'forward_backward.npz')
    net = caffe.Net('tiny_fcn/net.prototxt', caffe.TRAIN, weights='tiny_fcn/weights.caffemodel')
    out = net.forward()
    net.backward()
    for key in golden.files:
        kind, name = key.split('/', 1)
        if kind == 'out':
            assert rel_error(out[name], golden[key]) < 1e-6, key
        elif kind in ('data', 'diff'):
            assert rel_error(getattr(net.blobs[name], kind), golden[key]) < 1e-5, key
        else:
            layer, index = name.rsplit('/', 1)
            assert rel_error(net.params[layer][int(index)].diff, golden[key]) < 1e-5, key
    assert {k.split('/', 1)[1] for k in golden.files if k.startswith('data/')} == \
        set(net.blobs)


def test_tiny_fcn_forward_only_plan_matches_caffe(monkeypatch):
    """With the toolkit's forward-only plan (channels-last blobs, the ReLUs applied by
    the convolutions, the pools channels-last) the loss and the upsampled, cropped score
    still equal Caffe's recorded ones, and those fast forms did run."""
    tiny_fcn_env(monkeypatch)
    golden = np.load(TINY_FCN / 'forward_backward.npz')
    net = caffe.Net('tiny_fcn/net.prototxt', caffe.TRAIN, weights='tiny_fcn/weights.caffemodel')
    net.keep_blobs(['score'])
    out = net.forward()
    assert rel_error(out['loss'], golden['out/loss']) < 1e-6
    assert rel_error(net.blobs['score'].data, golden['data/score']) < 1e-5
    convolutions = [layer for layer in net.layers if layer.type == 'Convolution']
    assert any(layer.applied_relu for layer in convolutions)
    assert any(blob.channels_last for blob in net.blobs.values())


RUNS = [('sgd', 4), ('sgd_step_itersize', 4), ('adam', 3)]


def _solver(name):
    solver = caffe.get_solver(f'tiny_fcn/solver_{name}.prototxt')
    solver.net.copy_from('tiny_fcn/weights.caffemodel')
    return solver


def _params(net):
    return {f'{layer}/{i}': blob.data.copy() for layer, blobs in net.params.items()
            for i, blob in enumerate(blobs)}


@pytest.mark.parametrize('name, steps', RUNS)
def test_solver_trajectory_matches_caffe(monkeypatch, name, steps):
    """Weight changes and losses after each step(1) equal Caffe's (SGD, step+iter_size, Adam)."""
    tiny_fcn_env(monkeypatch)
    trajectory = np.load(TINY_FCN / f'trajectory_{name}.npz')
    solver = _solver(name)
    start = _params(solver.net)
    for step in range(1, steps + 1):
        solver.step(1)
        assert solver.iter == step
        assert float(solver.net.blobs['loss'].data) == pytest.approx(
            float(trajectory[f'loss/{step}']), rel=1e-5)
        for key, value in _params(solver.net).items():
            caffe_change = trajectory[f'step{step}/{key}'] - start[key]
            assert rel_error(value - start[key], caffe_change) < 1e-4, (step, key)


@pytest.mark.parametrize('name, steps', RUNS)
def test_caffe_snapshot_restores_and_continues(monkeypatch, name, steps):
    """Caffe's own .solverstate/.caffemodel restore into our solver, history included,
    and training continues as our straight-through run does."""
    tiny_fcn_env(monkeypatch)
    trajectory = np.load(TINY_FCN / f'trajectory_{name}.npz')
    restored = _solver(name)
    restored.restore(f'tiny_fcn/caffe_{name}_iter_{steps}.solverstate')
    assert restored.iter == steps
    for key, value in _params(restored.net).items():
        np.testing.assert_array_equal(value, trajectory[f'step{steps}/{key}'])
    straight = _solver(name)
    straight.step(steps)
    for ours, theirs in zip(straight.history, restored.history):
        assert rel_error(ours.data, theirs.data) < 1e-4
    assert straight.current_step == restored.current_step
    restored.step(2)
    straight.step(2)
    for key, value in _params(restored.net).items():
        ref = _params(straight.net)[key]
        base = trajectory[f'step{steps}/{key}']
        assert rel_error(value - base, ref - base) < 1e-3, key


@pytest.mark.parametrize('name, steps', RUNS)
def test_hdf5_solverstate_has_caffes_layout(monkeypatch, tmp_path, name, steps):
    """Caffe's state, restored and written as HDF5, has the types SGDSolver's
    SnapshotSolverStateToHDF5 writes (hdf5.cpp: H5LTmake_dataset_int, _string, _float),
    which Caffe's RestoreSolverStateFromHDF5 needs, and holds Caffe's values."""
    import h5py
    from caffe_torch import formats, io
    from caffe_torch.proto import caffe_pb2
    tiny_fcn_env(monkeypatch)
    caffe_state = formats.read_binaryproto(f'tiny_fcn/caffe_{name}_iter_{steps}.solverstate',
                                           caffe_pb2.SolverState)
    solver = _solver(name)
    solver.restore(f'tiny_fcn/caffe_{name}_iter_{steps}.solverstate')
    solver.param.snapshot_format = caffe_pb2.SolverParameter.HDF5
    solver.param.snapshot_prefix = str(tmp_path / 'ours')
    path = solver.snapshot()
    with h5py.File(path, 'r') as f:
        assert sorted(f) == ['current_step', 'history', 'iter', 'learned_net']
        for field, want in (('iter', caffe_state.iter),
                            ('current_step', caffe_state.current_step)):
            assert f[field].shape == () and f[field].dtype == np.dtype('<i4')
            assert int(f[field][()]) == want
        text = f['learned_net']
        kind = text.id.get_type()
        model = str(tmp_path / f'ours_iter_{steps}.caffemodel.h5').encode()
        assert text.shape == () and not kind.is_variable_str()
        assert (kind.get_size(), kind.get_strpad(), kind.get_cset()) == \
            (len(model) + 1, h5py.h5t.STR_NULLTERM, h5py.h5t.CSET_ASCII)
        assert text[()] == model
        assert sorted(f['history'], key=int) == [str(i) for i in range(len(caffe_state.history))]
        for i, blob in enumerate(caffe_state.history):
            ours = f['history'][str(i)]
            assert ours.dtype == np.dtype('<f4')
            np.testing.assert_array_equal(ours[()], io.blobproto_to_array(blob))
    again = _solver(name)
    again.restore(path)
    assert (again.iter, again.current_step) == (caffe_state.iter, caffe_state.current_step)
    for key, value in _params(again.net).items():
        np.testing.assert_array_equal(value, _params(solver.net)[key])
