"""Solver snapshots and restore (BINARYPROTO and HDF5) against Caffe's solver.cpp naming and
SGDSolver's Snapshot/RestoreSolverState."""
import os
import re

import numpy as np
import pytest

import caffe_torch as caffe
from caffe_torch import formats, io
from caffe_torch.errors import CaffeError, CaffemodelError
from caffe_torch.proto import caffe_pb2

# pycaffe's simple net with constant-filled data, set from a seeded RNG by feed(): the data
# stay fixed across forwards, so a restored run sees what the straight run saw.
NET = """name: 'snapnet' force_backward: true
layer { type: 'DummyData' name: 'data' top: 'data' top: 'label'
  dummy_data_param { num: 5 channels: 2 height: 3 width: 4
    num: 5 channels: 1 height: 1 width: 1
    data_filler { type: 'constant' } data_filler { type: 'constant' } } }
layer { type: 'Convolution' name: 'conv' bottom: 'data' top: 'conv'
  convolution_param { num_output: 11 kernel_size: 2 pad: 3
    weight_filler { type: 'gaussian' std: 0.1 } bias_filler { type: 'constant' value: 2 } }
  param { decay_mult: 1 } param { decay_mult: 0 } }
layer { type: 'InnerProduct' name: 'ip' bottom: 'conv' top: 'ip_blob'
  inner_product_param { num_output: 13
    weight_filler { type: 'gaussian' std: 0.01 } bias_filler { type: 'constant' value: -3 } } }
layer { type: 'SoftmaxWithLoss' name: 'loss' bottom: 'ip_blob' bottom: 'label' top: 'loss' }
"""
# multistep with two step values makes the restored current_step matter.
SOLVER = """net: 'net.prototxt' base_lr: 0.01 momentum: 0.9 weight_decay: 0.0005
lr_policy: 'multistep' stepvalue: 1 stepvalue: 2 gamma: 0.5 max_iter: 4 random_seed: 5
snapshot_prefix: 'model'
"""
ADAM = "type: 'Adam' momentum2: 0.999 "


@pytest.fixture(autouse=True)
def workdir(tmp_path, monkeypatch):
    """Every test runs in its own tmp_path."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def make_solver(extra='', net=NET, path='solver.prototxt', body=SOLVER):
    """Write net.prototxt and the solver file, build the solver and feed it fixed data."""
    with open('net.prototxt', 'w') as f:
        f.write(net)
    with open(path, 'w') as f:
        f.write(body + extra)
    solver = caffe.get_solver(path)
    rng = np.random.default_rng(0)
    blobs = solver.net.blobs
    blobs['data'].data[...] = rng.standard_normal(blobs['data'].shape)
    blobs['label'].data[...] = rng.integers(0, 13, blobs['label'].shape)
    return solver


def weights(solver):
    return [b.data.copy() for blobs in solver.net.params.values() for b in blobs]


def history(solver):
    return [b.data.copy() for b in solver.history]


def assert_same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert np.array_equal(x, y)


@pytest.mark.parametrize('extra', ['', ADAM])
@pytest.mark.parametrize('fmt, model, state', [
    ('BINARYPROTO', 'model_iter_2.caffemodel', 'model_iter_2.solverstate'),
    ('HDF5', 'model_iter_2.caffemodel.h5', 'model_iter_2.solverstate.h5')])
def test_restore_continues_bit_identically(workdir, extra, fmt, model, state):
    """4 steps straight equal 2 steps + snapshot + restore in a new solver + 2 steps, bitwise."""
    straight = make_solver(extra)
    straight.step(4)
    first = make_solver(extra + f'snapshot_format: {fmt}')
    first.step(2)
    assert first.snapshot() == state
    assert sorted(os.listdir(workdir)) == sorted(['net.prototxt', 'solver.prototxt', model,
                                                  state])
    second = make_solver(extra)
    second.restore(state)
    assert (second.iter, second.current_step) == (2, first.current_step) == (2, 1)
    assert_same(weights(second), weights(first))
    assert_same(history(second), history(first))
    second.step(2)
    assert second.iter == straight.iter == 4
    assert_same(weights(second), weights(straight))
    assert_same(history(second), history(straight))


def test_solverstate_contents():
    """A binary solverstate holds iter, learned_net, current_step and one history per blob."""
    solver = make_solver(ADAM)
    solver.step(2)
    state = formats.read_binaryproto(solver.snapshot(), caffe_pb2.SolverState)
    assert (state.iter, state.learned_net, state.current_step) == \
        (2, 'model_iter_2.caffemodel', 1)
    assert len(state.history) == 2 * len(solver.net.learnable_params) == 8
    assert np.array_equal(io.blobproto_to_array(state.history[5]), solver.history[5].data)


@pytest.mark.parametrize('snapshot, max_iter, after, expected', [
    (2, 5, 'true', [2, 4, 5]),
    (2, 4, 'true', [2, 4]),
    (2, 5, 'false', [2, 4]),
    (0, 3, 'true', [3]),
    (0, 3, 'false', [])])
def test_snapshot_schedule(workdir, snapshot, max_iter, after, expected):
    """solve() snapshots every `snapshot` iterations and at the end unless snapshot_after_train
    is false or the last one was just written."""
    solver = make_solver(f'snapshot: {snapshot} snapshot_after_train: {after} '
                         f'max_iter: {max_iter}',
                         body=SOLVER.replace('max_iter: 4 ', ''))
    solver.solve()
    names = sorted(n for n in os.listdir(workdir) if n.startswith('model_iter_'))
    assert names == sorted(f'model_iter_{i}.{e}' for i in expected
                           for e in ('caffemodel', 'solverstate'))


def test_snapshot_prefix_defaults_to_solver_path(workdir):
    """Without snapshot_prefix, snapshots go to the solver file's path minus its extension."""
    os.mkdir('sub')
    solver = make_solver(path='sub/my_solver.prototxt',
                         body=SOLVER.replace("snapshot_prefix: 'model'", ''))
    assert solver.param.snapshot_prefix == 'sub/my_solver'
    solver.snapshot()
    assert sorted(os.listdir('sub')) == ['my_solver.prototxt', 'my_solver_iter_0.caffemodel',
                                         'my_solver_iter_0.solverstate']


def test_snapshot_prefix_folder_gets_solver_stem(workdir):
    """A snapshot_prefix naming a folder gets the solver file's stem appended."""
    os.mkdir('snaps')
    solver = make_solver(path='train.prototxt',
                         body=SOLVER.replace("'model'", "'snaps'"))
    assert solver.param.snapshot_prefix == os.path.join('snaps', 'train')
    solver.snapshot()
    assert (workdir / 'snaps' / 'train_iter_0.solverstate').is_file()


def test_catch_snapshot_prefix_folder_missing(workdir):
    """Caffe does not create the snapshot_prefix's folder (it aborts in io.cpp); neither does
    the engine, so code tested here runs on Caffe: a FileNotFoundError saying how to fix it,
    and nothing written."""
    solver = make_solver(body=SOLVER.replace("'model'", "'out/deep/fcn'"))
    with pytest.raises(FileNotFoundError, match=r'the folder out/deep of snapshot_prefix '
                                                r'"out/deep/fcn" does not exist.*create'):
        solver.snapshot()
    assert not (workdir / 'out').exists()
    (workdir / 'out' / 'deep').mkdir(parents=True)
    solver.snapshot()
    assert (workdir / 'out' / 'deep' / 'fcn_iter_0.caffemodel').is_file()


def test_solve_resume_file():
    """solve(resume_file) restores and trains to max_iter, as a straight solve() does."""
    straight = make_solver('snapshot: 2')
    straight.solve()
    resumed = make_solver()
    resumed.solve('model_iter_2.solverstate')
    assert resumed.iter == 4
    assert_same(weights(resumed), weights(straight))


def test_restore_finds_caffemodel_beside_state(workdir):
    """A snapshot pair moved to another folder restores: learned_net is looked for beside it."""
    solver = make_solver()
    solver.step(1)
    solver.snapshot()
    os.mkdir('moved')
    for name in ('model_iter_1.caffemodel', 'model_iter_1.solverstate'):
        os.rename(name, os.path.join('moved', name))
    other = make_solver()
    other.restore(os.path.join('moved', 'model_iter_1.solverstate'))
    assert other.iter == 1
    assert_same(weights(other), weights(solver))


def test_restore_of_a_copied_folder_reads_the_copy(workdir):
    """A snapshot folder copied elsewhere restores the copy's weights, not those at the
    (still valid) learned_net path of the original."""
    solver = make_solver(body=SOLVER.replace("'model'", "'run/model'"))
    os.mkdir('run')
    solver.step(1)
    state = solver.snapshot()
    import shutil
    shutil.copytree('run', 'copy')
    solver.step(1)
    solver.net.save('run/model_iter_1.caffemodel')  # the original changes after the copy
    other = make_solver(body=SOLVER.replace("'model'", "'run/model'"))
    other.restore(os.path.join('copy', os.path.basename(state)))
    copied = caffe.Net('net.prototxt', caffe.TRAIN, weights='copy/model_iter_1.caffemodel')
    assert_same(weights(other), [b.data for bs in copied.params.values() for b in bs])


# -- errors ---------------------------------------------------------------------------------
def test_catch_restore_missing_caffemodel():
    """A solverstate whose caffemodel is gone names the file and both places looked in."""
    solver = make_solver()
    state = solver.snapshot()
    os.remove('model_iter_0.caffemodel')
    with pytest.raises(FileNotFoundError,
                       match=r'its weights file model_iter_0\.caffemodel is missing \(also '
                             r'looked for model_iter_0\.caffemodel\)'):
        make_solver().restore(state)


@pytest.mark.parametrize('extra, net, match', [
    (ADAM, NET, '4 history blobs, but this Adam solver keeps 8'),
    ('', NET.replace("layer { type: 'SoftmaxWithLoss'", "layer { type: 'InnerProduct' "
                     "name: 'ip2' bottom: 'ip_blob' top: 'ip_blob2' inner_product_param { "
                     "num_output: 13 } }\nlayer { type: 'SoftmaxWithLoss'")
     .replace("bottom: 'ip_blob' bottom: 'label'", "bottom: 'ip_blob2' bottom: 'label'"),
     '4 history blobs, but this SGD solver keeps 6'),
    ('', NET.replace('num_output: 13', 'num_output: 7'),
     r'history blob 2 has shape \(13, 792\), the parameter \(7, 792\)')])
def test_catch_restore_other_net_or_solver(extra, net, match):
    """A solverstate from another net or solver type is refused: history count or shapes differ."""
    state = make_solver().snapshot()
    with pytest.raises(CaffemodelError, match=match):
        make_solver(extra, net=net).restore(state)


def test_catch_restore_history_shape_mismatch():
    """A history blob whose size differs from its parameter's is refused, naming the blob."""
    solver = make_solver()
    state = caffe_pb2.SolverState(iter=3)
    for i, blob in enumerate(solver.history):
        state.history.append(io.array_to_blobproto(
            np.zeros((2, 2) if i == 1 else blob.shape, np.float32)))
    formats.write_binaryproto(state, 'odd.solverstate')
    with pytest.raises(CaffemodelError, match=re.escape(
            'odd.solverstate: history blob 1 has shape (2, 2), the parameter (11,)')):
        solver.restore('odd.solverstate')


def test_catch_truncated_solverstate():
    """A truncated binary solverstate is reported as such, with its path."""
    solver = make_solver()
    solver.step(1)
    data = open(solver.snapshot(), 'rb').read()
    with open('cut.solverstate', 'wb') as f:
        f.write(data[:len(data) // 2])
    with pytest.raises(CaffemodelError, match=r'cut\.solverstate: not a valid binary '
                                              r'SolverState .*truncated'):
        make_solver().restore('cut.solverstate')


def test_catch_truncated_solverstate_h5():
    """A truncated HDF5 solverstate is reported with its path, as the binary one is."""
    solver = make_solver('snapshot_format: HDF5')
    data = open(solver.snapshot(), 'rb').read()
    with open('cut.solverstate.h5', 'wb') as f:
        f.write(data[:len(data) // 2])
    with pytest.raises(CaffemodelError, match=r'cut\.solverstate\.h5'):
        make_solver().restore('cut.solverstate.h5')


def test_catch_restore_of_other_net_changes_nothing():
    """A state that does not fit is refused before any weight or history is touched."""
    solver = make_solver()
    solver.step(1)
    before = [b.data.copy() for b in solver.net.learnable_params]
    state = caffe_pb2.SolverState(iter=9, learned_net='')
    for blob in solver.history[:-1]:
        state.history.append(caffe_pb2.BlobProto(shape=caffe_pb2.BlobShape(dim=blob.shape),
                                                 data=np.ones(blob.count)))
    state.history.append(caffe_pb2.BlobProto(shape=caffe_pb2.BlobShape(dim=[1]), data=[1]))
    with open('other.solverstate', 'wb') as f:
        f.write(state.SerializeToString())
    with pytest.raises(CaffemodelError, match=r'history blob \d+ has shape \(1,\)'):
        solver.restore('other.solverstate')
    assert solver.iter == 1
    for blob, old in zip(solver.net.learnable_params, before):
        np.testing.assert_array_equal(blob.data, old)
    assert not any((h.data == 1).all() for h in solver.history)


def test_catch_average_loss_zero():
    """average_loss must be at least 1, as Caffe checks at start-up."""
    with pytest.raises(CaffeError, match='average_loss should be at least 1, got 0'):
        make_solver('average_loss: 0')
