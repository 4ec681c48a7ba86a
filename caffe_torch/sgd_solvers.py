"""Caffe's solver types: one update rule each, applied in Caffe's order (sgd_solver.cpp).

apply_update, per iteration:
    rate = learning_rate()                 # lr_policy at the current iteration
    clip_gradients: if the global L2 norm of all diffs exceeds it, scale every diff down
    for each learnable parameter:
        diff /= iter_size                  # accumulation over iter_size passes (Normalize)
        diff += weight_decay * decay_mult * (data | sign(data))     # L2 | L1 (Regularize)
        diff = rule(diff, history, local_rate = rate * lr_mult)     # ComputeUpdateValue
    data -= diff                           # Net::Update

Learning-rate policies (iter is the number of updates so far):
    fixed      base_lr
    step       base_lr * gamma ^ floor(iter / stepsize)
    exp        base_lr * gamma ^ iter
    inv        base_lr * (1 + gamma * iter) ^ -power
    multistep  base_lr * gamma ^ (number of stepvalues reached; one step per iteration)
    poly       base_lr * (1 - iter / max_iter) ^ power
    sigmoid    base_lr / (1 + exp(-gamma * (iter - stepsize)))

Rules (g = diff, h = history, r = local_rate; eps = delta):
    SGD       h = r g + momentum h;  update h.  Momentum is kept on the *scaled* step, as
              Caffe keeps it: a changed lr takes effect gradually, unlike torch.optim.SGD.
    Nesterov  h' = r g + momentum h;  update (1 + momentum) h' - momentum h
    AdaGrad   h += g^2;  update r g / (sqrt(h) + eps)
    RMSProp   h = rms_decay h + (1 - rms_decay) g^2;  update r g / (sqrt(h) + eps)
    AdaDelta  h1 = m h1 + (1-m) g^2;  u = g sqrt((h2 + eps) / (h1 + eps));
              h2 = m h2 + (1-m) u^2;  update r u
    Adam      m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
              update r sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + eps), t = iter + 1
FCN's recipe is plain SGD: fixed lr 1e-10 (VOC FCN-32s), momentum 0.99, weight decay 5e-4,
biases at lr_mult 2 and decay_mult 0, deconvolutions frozen at lr_mult 0.
"""
import ctypes
import ctypes.util
import math

import numpy as np
import torch

from caffe_torch import formats
from caffe_torch.errors import CaffeError
from caffe_torch.proto import caffe_pb2
from caffe_torch.solver import Solver, log

_SOLVERS = {}


def register_solver(cls):
    if cls.type in _SOLVERS:
        raise ValueError(f'solver type "{cls.type}" is registered twice')
    _SOLVERS[cls.type] = cls
    return cls


def get_solver(solver_file):
    """The solver its prototxt's `type` names (pycaffe's caffe.get_solver)."""
    param = solver_file if isinstance(solver_file, caffe_pb2.SolverParameter) \
        else formats.read_solver(solver_file)
    cls = _SOLVERS.get(param.type)
    if cls is None:
        raise CaffeError(f'{solver_file}: unknown solver type "{param.type}"; known: '
                         f'{", ".join(sorted(_SOLVERS))}')
    return cls(solver_file)


def learning_rate(solver):
    """Caffe's GetLearningRate at solver.iter (updates current_step for step/multistep)."""
    p, it = solver.param, solver.iter
    policy = p.lr_policy
    if policy in ('step', 'exp', 'inv', 'multistep', 'sigmoid'):
        _require(p.gamma >= 0, solver, f'lr_policy "{policy}" needs gamma >= 0, got {p.gamma:g}')
    if policy == 'fixed':
        rate = p.base_lr
    elif policy == 'step':
        _require(p.stepsize > 0, solver, 'lr_policy "step" needs stepsize > 0')
        solver.current_step = it // p.stepsize
        rate = p.base_lr * math.pow(p.gamma, solver.current_step)
    elif policy == 'exp':
        rate = p.base_lr * math.pow(p.gamma, it)
    elif policy == 'inv':  # all float in Caffe: Dtype(1) + gamma() * iter_, float pow
        rate = _float(p.base_lr) * _powf(_float(1) + _float(p.gamma) * _float(it),
                                         -_float(p.power))
    elif policy == 'multistep':
        if solver.current_step < len(p.stepvalue) and it >= p.stepvalue[solver.current_step]:
            solver.current_step += 1
            log.info('MultiStep Status: Iteration %d, step = %d', it, solver.current_step)
        rate = p.base_lr * math.pow(p.gamma, solver.current_step)
    elif policy == 'poly':
        rate = _float(p.base_lr) * _powf(_float(1) - _float(it) / _float(p.max_iter),
                                         _float(p.power))
    elif policy == 'sigmoid':
        _require(p.stepsize > 0, solver, 'lr_policy "sigmoid" needs stepsize > 0')
        rate = _float(p.base_lr) * (_float(1) / (_float(1) + _expf(-_float(p.gamma) * (
            _float(it) - _float(p.stepsize)))))
    else:
        raise CaffeError(f'{solver.source}: unknown lr_policy "{policy}"; Caffe knows fixed, '
                         f'step, exp, inv, multistep, poly and sigmoid')
    return float(np.float32(rate))  # Caffe's Dtype rate


def _float(value):
    """A float32 scalar: NumPy's float32 arithmetic is C's float arithmetic."""
    return np.float32(value)


def _libm():
    """The C library's powf and expf, which Caffe's float arithmetic calls (NumPy's own
    float32 exp and pow may round the last bit differently); None where there is no libm."""
    try:
        libm = ctypes.CDLL(ctypes.util.find_library('m') or 'libm.so.6')
    except OSError:
        return None
    for name, args in (('powf', 2), ('expf', 1)):
        getattr(libm, name).restype = ctypes.c_float
        getattr(libm, name).argtypes = [ctypes.c_float] * args
    return libm


_LIBM = _libm()


def _powf(base, exponent):
    if _LIBM is None:
        return np.power(np.float32(base), np.float32(exponent))
    return np.float32(_LIBM.powf(float(base), float(exponent)))


def _expf(value):
    if _LIBM is None:
        return np.exp(np.float32(value))
    return np.float32(_LIBM.expf(float(value)))


def _require(condition, solver, message):
    if not condition:
        raise CaffeError(f'{solver.source}: {message}')


@register_solver
class SGDSolver(Solver):
    """Stochastic gradient descent with momentum, the FCN solver."""
    type = 'SGD'

    def apply_update(self):
        rate = self.learning_rate()
        if self.param.display and self.iter % self.param.display == 0:
            log.info('Iteration %d, lr = %g', self.iter, rate)
        self.clip_gradients()
        for i, blob in enumerate(self.net.learnable_params):
            diff = blob.diff_tensor
            if self.param.iter_size > 1:
                diff.mul_(1.0 / self.param.iter_size)
            self.regularize(i, blob.data_tensor, diff)
            # Dtype local_rate = rate * lr_mult: a float product
            local_rate = float(_float(rate) * _float(self.net.params_lr[i]))
            self.compute_update_value(i, diff, local_rate)
        for blob in self.net.learnable_params:
            blob.data_tensor.sub_(blob.diff_tensor)

    def learning_rate(self):
        return learning_rate(self)

    def clip_gradients(self):
        clip = self.param.clip_gradients
        if clip < 0:
            return
        sumsq = sum(float(torch.sum(b.diff_tensor.double() ** 2))
                    for b in self.net.learnable_params)
        norm = math.sqrt(sumsq)
        if norm > clip:
            scale = clip / norm
            log.info('Gradient clipping: scaling down gradients (L2 norm %g > %g) by scale '
                     'factor %g', norm, clip, scale)
            for blob in self.net.learnable_params:
                blob.diff_tensor.mul_(scale)

    def regularize(self, i, data, diff):
        decay = float(_float(self.param.weight_decay) * _float(self.net.params_weight_decay[i]))
        if not decay:
            return
        kind = self.param.regularization_type
        if kind == 'L2':
            diff.add_(data, alpha=decay)
        elif kind == 'L1':
            diff.add_(torch.sign(data), alpha=decay)
        else:
            raise CaffeError(f'{self.source}: unknown regularization_type "{kind}"; use '
                             f'"L2" or "L1"')

    def compute_update_value(self, i, diff, local_rate):
        history = self.history[i].data_tensor
        history.mul_(self.param.momentum).add_(diff, alpha=local_rate)
        diff.copy_(history)


@register_solver
class NesterovSolver(SGDSolver):
    type = 'Nesterov'

    def compute_update_value(self, i, diff, local_rate):
        history = self.history[i].data_tensor
        previous = history.clone()
        momentum = self.param.momentum
        history.mul_(momentum).add_(diff, alpha=local_rate)
        diff.copy_(history).mul_(1.0 + momentum).add_(previous, alpha=-momentum)


class _AdaptiveSolver(SGDSolver):
    """Solvers that refuse momentum (Caffe checks momentum == 0 for these)."""

    def check_param(self):
        super().check_param()
        if self.param.momentum != 0:
            raise CaffeError(f'{self.source}: momentum cannot be used with {self.type}; '
                             f'remove it (got {self.param.momentum})')


@register_solver
class AdaGradSolver(_AdaptiveSolver):
    type = 'AdaGrad'

    def compute_update_value(self, i, diff, local_rate):
        history = self.history[i].data_tensor
        history.add_(diff * diff)
        diff.div_(history.sqrt().add_(self.param.delta)).mul_(local_rate)


@register_solver
class RMSPropSolver(_AdaptiveSolver):
    type = 'RMSProp'

    def check_param(self):
        super().check_param()
        if not 0 <= self.param.rms_decay < 1:
            raise CaffeError(f'{self.source}: rms_decay must lie in [0, 1), got '
                             f'{self.param.rms_decay}')

    def compute_update_value(self, i, diff, local_rate):
        history = self.history[i].data_tensor
        decay = self.param.rms_decay
        history.mul_(decay).add_(diff * diff, alpha=_f32(1 - decay))
        diff.div_(history.sqrt().add_(self.param.delta)).mul_(local_rate)


@register_solver
class AdaDeltaSolver(SGDSolver):
    type = 'AdaDelta'
    history_per_param = 2

    def compute_update_value(self, i, diff, local_rate):
        n = len(self.net.learnable_params)
        grads, updates = self.history[i].data_tensor, self.history[n + i].data_tensor
        momentum, delta = self.param.momentum, self.param.delta
        grads.mul_(momentum).add_(diff * diff, alpha=_f32(1 - momentum))
        diff.mul_(((updates + delta) / (grads + delta)).sqrt_())
        updates.mul_(momentum).add_(diff * diff, alpha=_f32(1 - momentum))
        diff.mul_(local_rate)


@register_solver
class AdamSolver(SGDSolver):
    type = 'Adam'
    history_per_param = 2

    def compute_update_value(self, i, diff, local_rate):
        n = len(self.net.learnable_params)
        m, v = self.history[i].data_tensor, self.history[n + i].data_tensor
        beta1, beta2 = self.param.momentum, self.param.momentum2
        t = self.iter + 1
        correction = _f32(math.sqrt(1 - math.pow(beta2, t)) / (1 - math.pow(beta1, t)))
        m.mul_(beta1).add_(diff, alpha=_f32(1 - beta1))
        v.mul_(beta2).add_(diff * diff, alpha=_f32(1 - beta2))
        diff.copy_(m).div_(v.sqrt().add_(self.param.delta)).mul_(_f32(local_rate * correction))


def _f32(value):
    """Round a Python float to float32, as Caffe's Dtype arithmetic stores it."""
    return float(torch.tensor(value, dtype=torch.float32))
