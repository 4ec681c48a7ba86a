"""The six solver types, step by step, against a float64 NumPy transcription of Caffe.

`ReferenceSolver` is written from Caffe's sources, independently of caffe_torch:
SGDSolver::ApplyUpdate (GetLearningRate, ClipGradients over all learnable params, then per
param Normalize by 1/iter_size, Regularize L2/L1, ComputeUpdateValue; Net::Update) and the
ComputeUpdateValue of sgd, nesterov, adagrad, rmsprop, adadelta and adam_solver.cpp.
The net (InnerProduct, TanH, a frozen InnerProduct, InnerProduct, EuclideanLoss) is fed by a
Python data layer cycling through fixed batches, one per forward pass, so the iter_size
passes of an iteration see different data; its gradients are computed exactly in NumPy.
"""
import math

import numpy as np
import pytest

import caffe_torch
from caffe_torch.errors import CaffeError
from caffe_torch.sgd_solvers import learning_rate

N, D, H, F, K = 4, 3, 5, 4, 2  # batch, input, hidden, frozen-layer output, target
BATCHES, STEPS = 5, 5
LAYERS = [('ip1', (H, D)), ('frozen', (F, H)), ('ip2', (K, F))]
# learnable params in net order: ip1 W, b; frozen W, b; ip2 W, b
LR_MULT = [1, 2, 0, 0, 0.5, 1.5]
DECAY_MULT = [1, 0, 1, 1, 2, 0.5]

FEED_MODULE = '''
import numpy as np
import caffe_torch


class CyclingData(caffe_torch.Layer):
    """Tops x, t: batch (k mod B) of the npz named by param_str at the k-th forward."""
    def setup(self, bottom, top):
        arrays = np.load(self.param_str)
        self.xs, self.ts, self.count = arrays['xs'], arrays['ts'], 0

    def reshape(self, bottom, top):
        top[0].reshape(*self.xs.shape[1:])
        top[1].reshape(*self.ts.shape[1:])

    def forward(self, bottom, top):
        k = self.count % len(self.xs)
        top[0].data[...] = self.xs[k]
        top[1].data[...] = self.ts[k]
        self.count += 1

    def backward(self, top, propagate_down, bottom):
        pass
'''

NET = '''name: "solver_updates"
layer { name: "data" type: "Python" top: "x" top: "t"
  python_param { module: "solver_updates_feed" layer: "CyclingData" param_str: "%s" } }
layer { name: "ip1" type: "InnerProduct" bottom: "x" top: "a1"
  param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 2 decay_mult: 0 }
  inner_product_param { num_output: %d } }
layer { name: "tanh" type: "TanH" bottom: "a1" top: "h1" }
layer { name: "frozen" type: "InnerProduct" bottom: "h1" top: "a2"
  param { lr_mult: 0 decay_mult: 1 } param { lr_mult: 0 decay_mult: 1 }
  inner_product_param { num_output: %d } }
layer { name: "ip2" type: "InnerProduct" bottom: "a2" top: "y"
  param { lr_mult: 0.5 decay_mult: 2 } param { lr_mult: 1.5 decay_mult: 0.5 }
  inner_product_param { num_output: %d } }
layer { name: "loss" type: "EuclideanLoss" bottom: "y" bottom: "t" top: "loss" }
'''

DEFAULTS = dict(momentum=0.0, momentum2=0.999, weight_decay=0.0, regularization_type='L2',
                iter_size=1, clip_gradients=-1.0, delta=1e-8, rms_decay=0.99, gamma=0.0,
                power=0.0, stepsize=0, stepvalue=(), max_iter=0)


def f32(value):
    """A SolverParameter float field as Caffe reads it (proto `float`)."""
    return float(np.float32(value))


def reference_gradients(params, x, t):
    """Exact float64 gradients of sum((y - t)^2) / N / 2; lr_mult 0 params get none."""
    w1, b1, wf, bf, w2, b2 = params
    h1 = np.tanh(x @ w1.T + b1)
    a2 = h1 @ wf.T + bf
    y = a2 @ w2.T + b2
    dy = (y - t) / len(x)
    da1 = (dy @ w2 @ wf) * (1 - h1 ** 2)
    return [da1.T @ x, da1.sum(0), np.zeros_like(wf), np.zeros_like(bf), dy.T @ a2, dy.sum(0)]


class ReferenceSolver:
    """Caffe's SGDSolver::ApplyUpdate and the six ComputeUpdateValue rules, in float64."""

    def __init__(self, cfg, params, xs, ts):
        self.cfg = {**DEFAULTS, **cfg}
        self.params = [p.astype(np.float64) for p in params]
        per_param = 2 if cfg['type'] in ('AdaDelta', 'Adam') else 1
        self.history = [[np.zeros_like(p) for p in self.params] for _ in range(per_param)]
        self.xs, self.ts = xs.astype(np.float64), ts.astype(np.float64)
        self.iter = self.current_step = self.passes = self.clipped = 0

    def c(self, key):
        value = self.cfg[key]
        return f32(value) if isinstance(value, float) else value

    def rate(self):
        """GetLearningRate; multistep moves current_step by at most one per call."""
        c, it = self.c, self.iter
        policy, base, gamma = c('lr_policy'), c('base_lr'), c('gamma')
        if policy == 'fixed':
            rate = base
        elif policy == 'step':
            self.current_step = it // c('stepsize')
            rate = base * gamma ** self.current_step
        elif policy == 'exp':
            rate = base * gamma ** it
        elif policy == 'inv':
            rate = base * (1 + gamma * it) ** -c('power')
        elif policy == 'multistep':
            values = c('stepvalue')
            if self.current_step < len(values) and it >= values[self.current_step]:
                self.current_step += 1
            rate = base * gamma ** self.current_step
        elif policy == 'poly':
            rate = base * (1 - it / c('max_iter')) ** c('power')
        else:
            assert policy == 'sigmoid'
            rate = base / (1 + math.exp(-gamma * (it - c('stepsize'))))
        return f32(rate)  # Caffe's Dtype rate

    def step(self):
        c, iter_size = self.c, self.c('iter_size')
        grads = [np.zeros_like(p) for p in self.params]
        for _ in range(iter_size):  # diffs accumulate over the passes
            k = self.passes % len(self.xs)
            self.passes += 1
            for g, dg in zip(grads, reference_gradients(self.params, self.xs[k], self.ts[k])):
                g += dg
        rate = self.rate()
        clip = c('clip_gradients')
        if clip >= 0:  # ClipGradients: before Normalize, on the accumulated diffs
            norm = math.sqrt(sum(float(np.sum(g * g)) for g in grads))
            if norm > clip:
                grads = [g * (clip / norm) for g in grads]
                self.clipped += 1
        updates = []
        for i, (p, g) in enumerate(zip(self.params, grads)):
            g = g / iter_size  # Normalize
            decay = c('weight_decay') * DECAY_MULT[i]  # Regularize
            if decay:
                g = g + decay * (p if c('regularization_type') == 'L2' else np.sign(p))
            updates.append(self.update_value(i, g, rate * LR_MULT[i]))
        self.params = [p - u for p, u in zip(self.params, updates)]  # Net::Update
        self.iter += 1

    def update_value(self, i, g, r):
        """ComputeUpdateValue of each solver type (g: diff, r: local rate)."""
        kind, c, h = self.cfg['type'], self.c, self.history[0]
        delta, m = c('delta'), c('momentum')
        if kind in ('SGD', 'Nesterov'):
            previous = h[i]
            h[i] = r * g + m * previous
            return h[i] if kind == 'SGD' else (1 + m) * h[i] - m * previous
        if kind == 'AdaGrad':
            h[i] = h[i] + g * g
            return r * g / (np.sqrt(h[i]) + delta)
        if kind == 'RMSProp':
            decay = c('rms_decay')
            h[i] = decay * h[i] + (1 - decay) * g * g
            return r * g / (np.sqrt(h[i]) + delta)
        h2 = self.history[1]
        if kind == 'AdaDelta':
            h[i] = m * h[i] + (1 - m) * g * g
            u = g * np.sqrt((h2[i] + delta) / (h[i] + delta))
            h2[i] = m * h2[i] + (1 - m) * u * u
            return r * u
        assert kind == 'Adam'
        beta1, beta2, t = m, c('momentum2'), self.iter + 1
        h[i] = beta1 * h[i] + (1 - beta1) * g
        h2[i] = beta2 * h2[i] + (1 - beta2) * g * g
        correction = math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
        return r * correction * h[i] / (np.sqrt(h2[i]) + delta)


def _field(key, value):
    if isinstance(value, (list, tuple)):
        return ''.join(_field(key, v) for v in value)
    return f'{key}: "{value}"\n' if isinstance(value, str) else f'{key}: {value!r}\n'


@pytest.fixture
def write_solver(tmp_path, monkeypatch):
    """Write the feed module, data, net and a solver prototxt; return the solver's path."""
    (tmp_path / 'solver_updates_feed.py').write_text(FEED_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(cfg, xs=None, ts=None):
        rng = np.random.RandomState(7)
        xs = rng.randn(BATCHES, N, D).astype(np.float32) if xs is None else xs
        ts = rng.randn(BATCHES, N, K).astype(np.float32) if ts is None else ts
        np.savez(tmp_path / 'feed.npz', xs=xs, ts=ts)
        net = tmp_path / 'net.prototxt'
        net.write_text(NET % (tmp_path / 'feed.npz', H, F, K))
        path = tmp_path / 'solver.prototxt'
        path.write_text(f'net: "{net}"\n' + ''.join(_field(k, v) for k, v in cfg.items()))
        return str(path), xs, ts
    return write


def _init_params(solver, seed):
    """Seeded float32 weights and biases, written into the solver's net; returned in order."""
    rng = np.random.RandomState(seed)
    for name, shape in LAYERS:
        weight, bias = solver.net.params[name]
        weight.data[...] = 0.6 * rng.randn(*shape)
        bias.data[...] = 0.3 * rng.randn(shape[0])
    return [b.data.astype(np.float64) for b in solver.net.learnable_params]


CASES = {
    'sgd-step-L2': dict(type='SGD', base_lr=0.2, lr_policy='step', gamma=0.5, stepsize=2,
                        momentum=0.9, weight_decay=0.05),
    'sgd-iter3-clip-L1-multistep': dict(
        type='SGD', base_lr=0.3, lr_policy='multistep', gamma=0.3, stepvalue=[1, 3],
        momentum=0.8, weight_decay=0.02, regularization_type='L1', iter_size=3,
        clip_gradients=0.05),
    'nesterov-iter2-inv': dict(type='Nesterov', base_lr=0.1, lr_policy='inv', gamma=0.5,
                               power=0.75, momentum=0.95, weight_decay=0.03, iter_size=2),
    'adagrad-L1-clip': dict(type='AdaGrad', base_lr=0.05, lr_policy='fixed', weight_decay=0.01,
                            regularization_type='L1', clip_gradients=0.1, delta=1e-6),
    'rmsprop-iter2-exp': dict(type='RMSProp', base_lr=0.01, lr_policy='exp', gamma=0.9,
                              rms_decay=0.9, weight_decay=0.02, iter_size=2, delta=1e-6),
    'adadelta-clip-inactive-poly': dict(
        type='AdaDelta', base_lr=1.0, lr_policy='poly', power=2.0, max_iter=10,
        momentum=0.95, delta=1e-4, weight_decay=0.01, clip_gradients=100.0),
    'adam-iter3-L1-sigmoid': dict(type='Adam', base_lr=0.02, lr_policy='sigmoid', gamma=0.5,
                                  stepsize=2, momentum=0.9, momentum2=0.99, weight_decay=0.01,
                                  regularization_type='L1', iter_size=3),
}


@pytest.mark.parametrize('case', sorted(CASES))
def test_updates_match_caffe_reference(write_solver, case):
    """Every parameter after each of several steps equals the float64 Caffe reference."""
    cfg = CASES[case]
    path, xs, ts = write_solver(cfg)
    solver = caffe_torch.get_solver(path)
    assert type(solver).type == cfg['type']
    init = _init_params(solver, seed=3)
    ref = ReferenceSolver(cfg, init, xs, ts)
    for step in range(STEPS):
        solver.step(1)
        ref.step()
        assert solver.iter == ref.iter == step + 1
        for i, (blob, want) in enumerate(zip(solver.net.learnable_params, ref.params)):
            got = blob.data.astype(np.float64)
            where = f'{case}: step {step + 1}, learnable param {i}'
            if LR_MULT[i] == 0:  # frozen, despite its weight decay
                np.testing.assert_array_equal(got, init[i], err_msg=where)
                continue
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=where)
            moved = np.linalg.norm(want - init[i])
            assert moved > 1e-4, where  # the update itself is tested, not just the weights
            assert np.linalg.norm(got - want) <= 1e-4 * moved, where
    if cfg.get('clip_gradients', -1) >= 0:  # the clip case clips at every step, or never
        assert ref.clipped == (STEPS if cfg['clip_gradients'] < 1 else 0)


def test_clipping_precedes_iter_size_normalization(write_solver):
    """With iter_size 2 and clipping, the clip is taken on the summed (unnormalized) diffs."""
    cfg = dict(type='SGD', base_lr=0.5, lr_policy='fixed', iter_size=2, clip_gradients=0.05)
    path, xs, ts = write_solver(cfg)
    solver = caffe_torch.get_solver(path)
    init = _init_params(solver, seed=5)
    grads = [a + b for a, b in zip(reference_gradients(init, xs[0].astype(np.float64), ts[0]),
                                   reference_gradients(init, xs[1].astype(np.float64), ts[1]))]
    norm = math.sqrt(sum(float(np.sum(g * g)) for g in grads))
    assert norm > 2 * f32(0.05)  # clipped whether or not the sum is halved first
    solver.step(1)
    for i, blob in enumerate(solver.net.learnable_params):
        want = init[i] - f32(0.5) * LR_MULT[i] * grads[i] * (f32(0.05) / norm) / 2
        np.testing.assert_allclose(blob.data, want, rtol=1e-5, atol=1e-7)


BASE = f32(0.01)
LR_CASES = {
    'fixed': ({}, lambda it: BASE),
    'step': (dict(gamma=0.5, stepsize=3), lambda it: BASE * 0.5 ** (it // 3)),
    'exp': (dict(gamma=0.9), lambda it: BASE * f32(0.9) ** it),
    'inv': (dict(gamma=0.1, power=0.75), lambda it: BASE * (1 + f32(0.1) * it) ** -0.75),
    'poly': (dict(power=2.0, max_iter=10), lambda it: BASE * (1 - it / 10) ** 2),
    'sigmoid': (dict(gamma=0.5, stepsize=4), lambda it: BASE / (1 + math.exp(-0.5 * (it - 4)))),
}


@pytest.mark.parametrize('policy', sorted(LR_CASES))
def test_lr_policy_values(write_solver, policy):
    """Each lr_policy gives its formula's value at chosen iterations, rounded to float32."""
    extra, formula = LR_CASES[policy]
    solver = caffe_torch.SGDSolver(write_solver(dict(base_lr=0.01, lr_policy=policy,
                                                     **extra))[0])
    for it in (0, 1, 2, 3, 4, 6, 7, 10):
        solver.iter = it
        rate = learning_rate(solver)
        assert rate == pytest.approx(formula(it), rel=1e-6, abs=1e-15), (policy, it)
        assert rate == f32(rate), (policy, it)


def test_lr_multistep_sequence(write_solver):
    """multistep multiplies by gamma once per stepvalue reached, iterating one at a time."""
    solver = caffe_torch.SGDSolver(write_solver(dict(
        base_lr=0.01, lr_policy='multistep', gamma=0.1, stepvalue=[2, 5, 6]))[0])
    steps = []
    for it in range(9):
        solver.iter = it
        rate = learning_rate(solver)
        steps.append(solver.current_step)
        assert rate == f32(BASE * f32(0.1) ** solver.current_step)
    assert steps == [0, 0, 1, 1, 1, 2, 3, 3, 3]


def test_lr_multistep_advances_once_per_call(write_solver):
    """Jumping past several stepvalues, multistep still advances one step per call, as Caffe."""
    solver = caffe_torch.SGDSolver(write_solver(dict(
        base_lr=0.01, lr_policy='multistep', gamma=0.1, stepvalue=[2, 5, 6]))[0])
    solver.iter = 10
    rates = [learning_rate(solver) for _ in range(4)]
    assert solver.current_step == 3
    assert rates == [f32(BASE * f32(0.1) ** k) for k in (1, 2, 3, 3)]


def test_unknown_regularization_type_ignored_without_decay(write_solver):
    """An unknown regularization_type passes while no weight decay applies (as in Caffe)."""
    path, _, _ = write_solver(dict(base_lr=0.1, lr_policy='fixed', regularization_type='L3'))
    solver = caffe_torch.SGDSolver(path)
    solver.step(2)
    assert solver.iter == 2


def test_catch_unknown_lr_policy(write_solver):
    """An lr_policy Caffe does not know fails at the first update, naming it."""
    solver = caffe_torch.SGDSolver(write_solver(dict(base_lr=0.1, lr_policy='cosine'))[0])
    with pytest.raises(CaffeError, match='unknown lr_policy "cosine"'):
        solver.step(1)


def test_catch_unknown_regularization_type(write_solver):
    """An unknown regularization_type fails once weight decay applies, naming it."""
    solver = caffe_torch.SGDSolver(write_solver(dict(
        base_lr=0.1, lr_policy='fixed', weight_decay=0.01, regularization_type='L3'))[0])
    with pytest.raises(CaffeError, match='unknown regularization_type "L3"'):
        solver.step(1)


@pytest.mark.parametrize('kind', ['AdaGrad', 'RMSProp'])
def test_catch_momentum_with_adaptive_solver(write_solver, kind):
    """AdaGrad and RMSProp refuse a nonzero momentum, as Caffe's constructors CHECK."""
    path, _, _ = write_solver(dict(type=kind, base_lr=0.1, lr_policy='fixed', momentum=0.9))
    with pytest.raises(CaffeError, match=f'momentum cannot be used with {kind}'):
        caffe_torch.get_solver(path)


@pytest.mark.parametrize('rms_decay', [-0.1, 1.0, 1.5])
def test_catch_rms_decay_out_of_range(write_solver, rms_decay):
    """RMSProp refuses rms_decay outside [0, 1) (Caffe: CHECK_GE 0, CHECK_LT 1)."""
    path, _, _ = write_solver(dict(type='RMSProp', base_lr=0.1, lr_policy='fixed',
                                   rms_decay=rms_decay))
    with pytest.raises(CaffeError, match='rms_decay must lie in'):
        caffe_torch.get_solver(path)


def test_catch_unknown_solver_type(write_solver):
    """get_solver refuses a type no solver registers, naming it."""
    path, _, _ = write_solver(dict(type='Adamax', base_lr=0.1, lr_policy='fixed'))
    with pytest.raises(CaffeError, match='unknown solver type "Adamax"'):
        caffe_torch.get_solver(path)


def test_catch_step_policy_without_stepsize(write_solver):
    """The step policy with stepsize 0 fails (Caffe: CHECK_GT stepsize 0)."""
    solver = caffe_torch.SGDSolver(write_solver(dict(base_lr=0.1, lr_policy='step',
                                                     gamma=0.1))[0])
    with pytest.raises(CaffeError, match='stepsize > 0'):
        solver.step(1)


@pytest.mark.parametrize('policy,extra', [
    ('step', dict(gamma=-0.5, stepsize=2)), ('exp', dict(gamma=-0.9)),
    ('inv', dict(gamma=-0.1, power=0.75)), ('multistep', dict(gamma=-0.1, stepvalue=[1])),
    ('sigmoid', dict(gamma=-0.5, stepsize=2)), ('sigmoid', dict(gamma=0.5, stepsize=0))])
def test_lr_policy_refuses_what_caffe_checks(write_solver, policy, extra):
    """GetLearningRate CHECKs gamma >= 0 (all but fixed and poly) and sigmoid's stepsize > 0:
    Caffe aborts (found by the differential tests), the engine names the field."""
    solver = caffe_torch.SGDSolver(write_solver(dict(base_lr=0.01, lr_policy=policy,
                                                     **extra))[0])
    field = 'gamma' if extra['gamma'] < 0 else 'stepsize'
    with pytest.raises(caffe_torch.CaffeError, match=f'{policy}.*{field}'):
        learning_rate(solver)
