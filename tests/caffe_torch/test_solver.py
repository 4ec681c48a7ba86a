"""Solver loop, tests, logging, callbacks and errors against Caffe's solver.cpp and pycaffe's
test_solver.py (snapshots and restore are in test_solver_snapshots.py)."""
import collections
import gc
import logging
import re
import sys
import types

import numpy as np
import pytest

import caffe_torch as caffe
from caffe_torch.errors import CaffeError
from caffe_torch.solver import NonFiniteLossError

LOGGER = 'caffe_torch.solver'
CALLS = collections.Counter()

# pycaffe's simple_net_file(13) (python/caffe/test/test_net.py), layer for layer.
NET = """name: 'testnet' force_backward: true
layer { type: 'DummyData' name: 'data' top: 'data' top: 'label'
  dummy_data_param { num: 5 channels: 2 height: 3 width: 4
    num: 5 channels: 1 height: 1 width: 1
    data_filler { type: 'gaussian' std: 1 } data_filler { type: 'constant' } } }
layer { type: 'Convolution' name: 'conv' bottom: 'data' top: 'conv'
  convolution_param { num_output: 11 kernel_size: 2 pad: 3
    weight_filler { type: 'gaussian' std: 1 } bias_filler { type: 'constant' value: 2 } }
  param { decay_mult: 1 } param { decay_mult: 0 } }
layer { type: 'InnerProduct' name: 'ip' bottom: 'conv' top: 'ip_blob'
  inner_product_param { num_output: 13
    weight_filler { type: 'gaussian' std: 2.5 } bias_filler { type: 'constant' value: -3 } } }
layer { type: 'SoftmaxWithLoss' name: 'loss' bottom: 'ip_blob' bottom: 'label' top: 'loss' }
"""
# The same with small weights, so that the loss is not saturated (-log FLT_MIN per sample).
SOFT_NET = NET.replace("std: 2.5", "std: 0.01").replace("gaussian' std: 1 } bias",
                                                        "gaussian' std: 0.1 } bias")
COUNT = """layer { type: 'Python' name: 'count' top: 'count' %s
  python_param { module: 'solver_test_layers' layer: 'CountLayer' } }
"""
BASE = "net: 'net.prototxt' base_lr: 0.01 lr_policy: 'fixed' "
# pycaffe's TestSolver.setUp solver.
PYCAFFE_SOLVER = """net: 'net.prototxt'
test_iter: 10 test_interval: 10 base_lr: 0.01 momentum: 0.9
weight_decay: 0.0005 lr_policy: 'inv' gamma: 0.0001 power: 0.75
display: 100 max_iter: 100 snapshot_after_train: false snapshot_prefix: 'model'
"""


class CountLayer(caffe.Layer):
    """Outputs how often it has run in its phase (a non-loss net output)."""

    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        top[0].reshape(1)

    def forward(self, bottom, top):
        CALLS[self.phase] += 1
        top[0].data[...] = CALLS[self.phase]

    def backward(self, top, propagate_down, bottom):
        pass


class BombLayer(caffe.Layer):
    """Passes its input through, times inf on its third forward."""

    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        CALLS['bomb'] += 1
        top[0].data[...] = bottom[0].data * (np.inf if CALLS['bomb'] == 3 else 1.0)

    def backward(self, top, propagate_down, bottom):
        bottom[0].diff[...] = top[0].diff


@pytest.fixture(autouse=True)
def workdir(tmp_path, monkeypatch):
    """Run in tmp_path, with the Python layers above importable as solver_test_layers."""
    monkeypatch.chdir(tmp_path)
    module = types.ModuleType('solver_test_layers')
    module.CountLayer, module.BombLayer = CountLayer, BombLayer
    monkeypatch.setitem(sys.modules, 'solver_test_layers', module)
    CALLS.clear()
    np.random.seed(0)
    return tmp_path


def make_solver(body, net=NET, cls=caffe.SGDSolver, labels=True):
    """Write net.prototxt and solver.prototxt in the cwd and build the solver."""
    with open('net.prototxt', 'w') as f:
        f.write(net)
    with open('solver.prototxt', 'w') as f:
        f.write(body)
    solver = cls('solver.prototxt')
    if labels:  # as pycaffe's setUp: fill in valid labels
        for n in [solver.net] + list(solver.test_nets):
            if 'label' in n.blobs:
                n.blobs['label'].data[...] = np.random.randint(13, size=n.blobs['label'].shape)
    return solver


def messages(caplog):
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


# -- pycaffe's test_solver -------------------------------------------------------------------
def test_solve():
    """solve() trains from iteration 0 to max_iter (pycaffe's test_solve)."""
    solver = make_solver(PYCAFFE_SOLVER)
    assert solver.iter == 0
    caffe.get_solver('solver.prototxt')  # also make sure get_solver runs
    solver.solve()
    assert solver.iter == 100
    assert np.isfinite(solver.smoothed_loss)


def test_apply_update():
    """apply_update() moves weights by -lr * diff, with no momentum carried at momentum 0."""
    solver = make_solver(PYCAFFE_SOLVER.replace('momentum: 0.9', 'momentum: 0')
                         .replace('weight_decay: 0.0005', 'weight_decay: 0'))
    blob = solver.net.layers[1].blobs[0]
    blob.data[...] = 0
    blob.diff[...] = 1
    solver.apply_update()
    assert np.array_equal(blob.data, np.full(blob.shape, -0.01, np.float32))
    blob.diff[...] = 1
    solver.apply_update()
    assert np.array_equal(blob.data, np.full(blob.shape, np.float32(-0.01) - np.float32(0.01)))


def test_net_memory():
    """The nets stay usable after the solver is deleted (pycaffe's test_net_memory)."""
    solver = make_solver(PYCAFFE_SOLVER)
    nets = [solver.net] + list(solver.test_nets)
    assert len(nets) == 2
    del solver
    gc.collect()
    total = 0
    for net in nets:
        total += sum(p.data.sum() + p.diff.sum() for ps in net.params.values() for p in ps)
        total += sum(b.data.sum() + b.diff.sum() for b in net.blobs.values())
        net.forward()
    assert np.isfinite(total)


def test_snapshot(workdir):
    """snapshot() at iteration 0 writes model_iter_0.caffemodel and .solverstate."""
    solver = make_solver(PYCAFFE_SOLVER)
    assert solver.snapshot() == 'model_iter_0.solverstate'
    for name in ('model_iter_0.caffemodel', 'model_iter_0.solverstate'):
        assert (workdir / name).is_file()


# -- test nets -------------------------------------------------------------------------------
@pytest.mark.parametrize('init, expected', [('true', [1, 4, 7]), ('false', [4, 7])])
def test_test_interval_and_initialization(caplog, init, expected):
    """Test nets run test_iter forwards every test_interval; at 0 only with test_initialization."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    solver = make_solver(BASE + f'test_iter: 2 test_interval: 3 test_initialization: {init}',
                         NET + COUNT % '')
    solver.step(7)
    assert CALLS[caffe.TEST] == 2 * len(expected)
    assert CALLS[caffe.TRAIN] == 7
    tested = [int(m.split()[1].rstrip(',')) for m in messages(caplog) if 'Testing net' in m]
    assert tested == [e - 1 for e in expected]
    means = [m for m in messages(caplog) if m.startswith('    Test net output #0: count')]
    assert means[-1] == f'    Test net output #0: count = {2 * len(expected) - 0.5:g}'


def test_solve_final_test_and_display_forward():
    """solve() ends with one train forward when display divides max_iter and one test pass
    when test_interval does."""
    solver = make_solver(BASE + 'test_iter: 2 test_interval: 3 test_initialization: false '
                         'max_iter: 6 display: 3 snapshot_after_train: false', NET + COUNT % '')
    solver.solve()
    assert (CALLS[caffe.TRAIN], CALLS[caffe.TEST]) == (6 + 1, 2 + 2)
    CALLS.clear()
    solver.param.max_iter = 8
    solver.solve()  # tests again at iter 6 (Step's own test), none at 8; no display forward
    assert (CALLS[caffe.TRAIN], CALLS[caffe.TEST]) == (2, 2)


def test_test_nets_share_train_weights():
    """After training, the test net's parameters are the train net's (the same memory)."""
    solver = make_solver(PYCAFFE_SOLVER.replace('max_iter: 100', 'max_iter: 20'))
    solver.solve()
    train, test = solver.net, solver.test_nets[0]
    for name, blobs in train.params.items():
        for a, b in zip(blobs, test.params[name]):
            assert np.array_equal(a.data, b.data)
    train.params['ip'][0].data[...] = 0.5
    assert (test.params['ip'][0].data == 0.5).all()


def test_test_returns_means_of_outputs():
    """test() returns each output's mean over test_iter forwards."""
    solver = make_solver(BASE + 'test_iter: 4 test_interval: 1',
                         NET + COUNT % '')
    means = solver.test(0)
    assert means['count'].tolist() == [2.5]  # counts 1, 2, 3, 4
    assert set(means) == {'count', 'loss'}


def test_test_output_numbering(caplog):
    """Test net outputs are numbered by score index, as Caffe's Solver::Test logs them."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    solver = make_solver(BASE + 'test_iter: 1 test_interval: 1',
                         NET + COUNT % '')
    solver.test(0)
    numbered = [m.split(':')[0] for m in messages(caplog) if 'Test net output' in m]
    assert numbered == ['    Test net output #0', '    Test net output #1']


@pytest.mark.parametrize('state, field', [('stage', "stage: 'extra'"), ('level', 'level: 2')])
def test_train_and_test_state_select_layers(state, field):
    """train_state / test_state pick the layers whose include rule names their stage or level."""
    rule = "include { stage: 'extra' }" if state == 'stage' else 'include { min_level: 1 }'
    net = NET + COUNT % rule
    base = BASE + 'test_iter: 1 test_iter: 1 test_interval: 5 '
    solver = make_solver(base + f'train_state {{ {field} }} test_state {{ }} '
                         f'test_state {{ {field} }}', net)
    assert 'count' in solver.net.layer_dict
    assert 'count' not in solver.test_nets[0].layer_dict
    assert 'count' in solver.test_nets[1].layer_dict
    assert solver.test_nets[1].phase == caffe.TEST
    plain = make_solver(base.replace('test_iter: 1 test_iter: 1', 'test_iter: 1'), net)
    assert 'count' not in plain.net.layer_dict


# -- display, smoothing, callbacks --------------------------------------------------------
def test_display_log_format(caplog):
    """display: 1 logs Caffe's iteration, train-output and lr lines, in Caffe's order."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    solver = make_solver(BASE + 'display: 1')
    caplog.clear()  # Solver::Init's lines
    solver.step(1)
    loss = float(solver.net.blobs['loss'].data)
    log = messages(caplog)
    assert re.fullmatch(r'Iteration 0 \(\S+ iter/s, \S+s/1 iters\), loss = ' +
                        re.escape(f'{loss:g}'), log[0])
    assert log[1:] == [f'    Train net output #0: loss = {loss:g} (* 1 = {loss:g} loss)',
                       'Iteration 0, lr = 0.01']


def test_display_interval(caplog):
    """display: 2 logs iterations 0 and 2 only."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    make_solver(BASE + 'display: 2').step(4)
    assert [m.split()[1] for m in messages(caplog) if ', lr = ' in m] == ['0,', '2,']


def test_average_loss_smoothing():
    """smoothed_loss is the mean of the last average_loss losses, and step() restarts it."""
    solver = make_solver(BASE + 'average_loss: 3', SOFT_NET)
    losses, smoothed = [], []
    solver.add_callback(lambda: None, lambda: (losses.append(float(solver.net.blobs['loss']
                                                                    .data)),
                                               smoothed.append(solver.smoothed_loss)))
    solver.step(7)
    assert len(set(losses)) == 7
    for i, value in enumerate(smoothed):
        assert value == pytest.approx(np.mean(losses[max(0, i - 2):i + 1]), rel=1e-5)
    solver.step(1)
    assert smoothed[-1] == losses[-1]


def test_callbacks_in_order():
    """on_start runs before the passes (diffs cleared), on_gradients_ready after, once each."""
    solver = make_solver(BASE)
    events = []
    weight = solver.net.params['ip'][0]

    def on_start():
        events.append(('start', solver.iter, bool(np.any(weight.diff))))

    def on_ready():
        events.append(('ready', solver.iter, bool(np.any(weight.diff))))
    solver.add_callback(on_start, on_ready)
    solver.step(3)
    assert events == [(kind, i, kind == 'ready') for i in range(3) for kind in ('start',
                                                                                 'ready')]


# -- non-finite loss ----------------------------------------------------------------------
_FINITE = """layer { type: 'DummyData' name: 'data' top: 'data' top: 'label'
  dummy_data_param { shape { dim: 2 dim: 3 } shape { dim: 2 dim: 3 }
    data_filler { type: 'constant' value: 1 } data_filler { type: 'constant' value: 0 } } }
%s
layer { type: 'EuclideanLoss' name: 'loss' bottom: 'x' bottom: 'label' top: 'loss' }
"""


@pytest.mark.parametrize('layer, name, value', [
    ("type: 'Power' name: 'pow' power_param { power: 2 scale: 1e30 }", 'pow', 'inf'),
    ("type: 'Log' name: 'log' log_param { shift: -2 }", 'log', 'nan')])
def test_catch_non_finite_loss(layer, name, value):
    """A non-finite loss raises NonFiniteLossError naming the iteration and the first bad layer."""
    net = _FINITE % f"layer {{ {layer} bottom: 'data' top: 'x' }}"
    solver = make_solver(BASE, net, labels=False)
    with pytest.raises(NonFiniteLossError, match=f'iteration 0: loss is {value}; layer '
                                                 f'"{name}" is the first'):
        solver.step(1)


def test_catch_non_finite_loss_later_iteration():
    """The error names the iteration it happened at; it is a FloatingPointError."""
    net = _FINITE % """layer { type: 'Python' name: 'bomb' bottom: 'data' top: 'x'
      python_param { module: 'solver_test_layers' layer: 'BombLayer' } }"""
    solver = make_solver(BASE, net, labels=False)
    with pytest.raises(FloatingPointError, match='iteration 2: loss is inf; layer "bomb"'):
        solver.step(5)
    assert solver.iter == 2


# -- determinism, API, types --------------------------------------------------------------
DROPOUT_NET = NET.replace("layer { type: 'SoftmaxWithLoss'",
                          "layer { type: 'Dropout' name: 'drop' bottom: 'ip_blob' "
                          "top: 'ip_blob' }\nlayer { type: 'SoftmaxWithLoss'")


def _weights_after(seed, steps=3):
    solver = make_solver(BASE + f'momentum: 0.9 random_seed: {seed}', DROPOUT_NET, labels=False)
    solver.step(steps)
    return [b.data.copy() for blobs in solver.net.params.values() for b in blobs]


def test_random_seed_determinism():
    """Two solvers with the same random_seed (gaussian fillers, Dropout) train bit-identically."""
    first, second, other = _weights_after(7), _weights_after(7), _weights_after(8)
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


def test_solver_api_and_share_weights():
    """param, iter, net, test_nets and share_weights behave as in pycaffe."""
    solver = make_solver(PYCAFFE_SOLVER)
    assert solver.param.base_lr == pytest.approx(0.01) and solver.param.max_iter == 100
    assert solver.iter == 0 and solver.net.phase == caffe.TRAIN
    assert [n.phase for n in solver.test_nets] == [caffe.TEST]
    net = caffe.Net('net.prototxt', caffe.TEST)
    solver.share_weights(net)
    solver.step(2)
    assert solver.iter == 2
    for name, blobs in solver.net.params.items():
        for a, b in zip(blobs, net.params[name]):
            assert np.array_equal(a.data, b.data)
            assert np.shares_memory(a.data, b.data)


@pytest.mark.parametrize('kind, extra, cls', [
    ('SGD', 'momentum: 0.9', caffe.SGDSolver),
    ('Nesterov', 'momentum: 0.9', caffe.NesterovSolver),
    ('AdaGrad', '', caffe.AdaGradSolver),
    ('RMSProp', 'rms_decay: 0.98', caffe.RMSPropSolver),
    ('AdaDelta', 'momentum: 0.95 delta: 1e-6', caffe.AdaDeltaSolver),
    ('Adam', 'momentum: 0.9 momentum2: 0.999', caffe.AdamSolver)])
def test_get_solver_dispatch(kind, extra, cls):
    """get_solver builds the class its `type` names; each type trains and builds directly."""
    body = BASE.replace('0.01', '0.001') + f"type: '{kind}' {extra}"
    solver = make_solver(body, cls=caffe.get_solver)
    assert type(solver) is cls
    solver.step(2)
    assert np.isfinite(solver.smoothed_loss)
    assert type(cls('solver.prototxt')) is cls


def test_get_solver_deprecated_solver_type():
    """The deprecated solver_type enum is upgraded to the matching type."""
    solver = make_solver(BASE + 'solver_type: NESTEROV',
                         cls=caffe.get_solver)
    assert type(solver) is caffe.NesterovSolver and solver.param.type == 'Nesterov'


# -- errors -------------------------------------------------------------------------------
@pytest.mark.parametrize('body, match', [
    ("base_lr: 0.01", 'give exactly one train net.*got none'),
    ("net: 'net.prototxt' train_net: 'net.prototxt'", 'give exactly one train net'),
    ("train_net: 'net.prototxt' test_net: 'net.prototxt' test_iter: 1 test_iter: 1 "
     "test_interval: 1", '1 test nets but 2 test_iter values'),
    ("train_net: 'net.prototxt' test_net: 'net.prototxt' test_interval: 1",
     '1 test nets but 0 test_iter'),
    ("net: 'net.prototxt' test_net: 'net.prototxt' test_net: 'net.prototxt' test_iter: 1 "
     "test_interval: 1", '2 test nets need as many test_iter values, got 1'),
    ("net: 'net.prototxt' test_iter: 1", r'test nets need test_interval > 0'),
    ("net: 'net.prototxt' test_iter: 1 test_iter: 1 test_interval: 1 test_state { }",
     r'test_state must be given once per test net \(2\), got 1'),
])
def test_catch_bad_net_configuration(body, match):
    """Missing or doubled train nets, mismatched test_iter/test_state, no test_interval: refused."""
    with pytest.raises(CaffeError, match=match):
        make_solver(body)


def test_catch_unknown_solver_type():
    """get_solver names the unknown type and the known ones."""
    with pytest.raises(CaffeError, match='unknown solver type "Lion"; known: AdaDelta'):
        make_solver("net: 'net.prototxt' type: 'Lion'", cls=caffe.get_solver)


def test_catch_momentum_with_adagrad():
    """AdaGrad refuses momentum, as Caffe's CHECK does."""
    with pytest.raises(CaffeError, match='momentum cannot be used with AdaGrad'):
        make_solver("net: 'net.prototxt' type: 'AdaGrad' momentum: 0.9", cls=caffe.get_solver)
