"""Solver: Caffe's training loop (solver.cpp), with pycaffe's Python surface.

One `step(n)` runs, n times:

    net.clear_param_diffs()
    if test_interval and iter % test_interval == 0 and (iter > 0 or test_initialization):
        test_all()                       # test nets share the train net's weights
    on_start callbacks
    loss = mean over iter_size of net.forward_backward()   # diffs accumulate
    smoothed loss over the last `average_loss` iterations; log it every `display`
    on_gradients_ready callbacks
    apply_update()                       # the subclass's rule, see sgd_solvers.py
    iter += 1
    snapshot every `snapshot` iterations

`solve(resume_file)` restores if asked, steps to max_iter, snapshots at the end unless
`snapshot_after_train: false`, then runs a last display forward and test.

Action requests (Solver::SetActionFunction, what `caffe train` wires to SIGINT/SIGHUP):
`set_action_function(f)`, f() -> SolverAction.NONE/STOP/SNAPSHOT, is asked after every
update (SNAPSHOT writes a snapshot and goes on; STOP ends training, and solve() then
snapshots if snapshot_after_train and returns, "Optimization stopped early.") and before
every test forward (a test stops at once on STOP: "Test interrupted."). A NaN or Inf
loss stops training with the iteration and the first layer whose top went non-finite.
Snapshots (`<prefix>_iter_<N>.caffemodel` and `.solverstate`, or `.h5` variants) are
written atomically, the weights first, so an interrupted snapshot never hides the last
good one.
"""
import logging
import math
import time

import numpy as np

from caffe_torch import formats, mode, solver_state
from caffe_torch.blob import Blob
from caffe_torch.errors import CaffeError
from caffe_torch.net import Net
from caffe_torch.proto import caffe_pb2

log = logging.getLogger('caffe_torch.solver')


class NonFiniteLossError(CaffeError, FloatingPointError):
    """Training produced a NaN or Inf loss."""


class SolverAction:
    """caffe::SolverAction::Enum: what an action function may ask between iterations."""
    NONE, STOP, SNAPSHOT = 0, 1, 2


class Solver:
    """Base solver: nets, loop, tests, snapshots. Subclasses define `apply_update`."""
    type = None
    history_per_param = 1

    def __init__(self, solver_file):
        if isinstance(solver_file, caffe_pb2.SolverParameter):
            self.param = caffe_pb2.SolverParameter()
            self.param.CopyFrom(solver_file)
            self.source = '<SolverParameter>'
        else:
            self.param = formats.read_solver(solver_file)
            self.source = str(solver_file)
        if mode.root_solver() and log.isEnabledFor(logging.INFO):
            log.info('Initializing solver from parameters: \n%s', str(self.param).rstrip('\n'))
        self.check_param()
        if self.param.random_seed >= 0:  # each data-parallel solver draws its own numbers
            mode.set_random_seed(self.param.random_seed + mode.solver_rank())
        self.net = self._with_weights(Net(self._train_net_param()))
        self.test_nets = []
        for i, (source, param) in enumerate(self._test_net_params()):
            log.info('Creating test net (#%d) specified by %s', i, source)
            self.test_nets.append(self._with_weights(Net(param)))
        if mode.root_solver():
            log.info('Solver scaffolding done.')
        self.iter = 0
        self.current_step = 0
        self.smoothed_loss = 0.0
        self._losses = []
        self._callbacks = []
        self._action_function = None
        self.requested_early_exit = False
        self.history = [blob_like(p) for _ in range(self.history_per_param)
                        for p in self.net.learnable_params]

    def check_param(self):
        """Refuse settings the solver cannot use (types add their own checks)."""
        if self.param.average_loss < 1:
            raise CaffeError(f'{self.source}: average_loss should be at least 1, got '
                             f'{self.param.average_loss}')

    # -- nets ------------------------------------------------------------------------------
    def _with_weights(self, net):
        """`net` with the caffemodels of `weights` copied in, each entry a comma-separated
        list, as Caffe's LoadNetWeights."""
        for models in self.param.weights:
            for model in (m.strip() for m in models.split(',')):
                log.info('Finetuning from %s', model)
                net.copy_from(model)
        return net

    def _train_net_param(self):
        p = self.param
        given = [f for f in ('train_net_param', 'train_net', 'net_param', 'net')
                 if p.HasField(f)]
        if len(given) != 1:
            raise CaffeError(f'{self.source}: give exactly one train net (train_net_param, '
                             f'train_net, net_param or net); got {given or "none"}')
        if mode.root_solver():
            log.info('Creating training net %s', _net_source(
                given[0], getattr(p, given[0]), 'specified in {}.', 'from {} file: {}'))
        net = self._net_param(given[0], getattr(p, given[0]))
        state = caffe_pb2.NetState(phase=caffe_pb2.TRAIN)
        state.MergeFrom(net.state)
        state.MergeFrom(p.train_state)
        net.state.CopyFrom(state)
        return net

    def _test_net_params(self):
        """[(where it comes from, in Caffe's words; its NetParameter)], one per test net."""
        p = self.param
        sources = [('test_net_param', n) for n in p.test_net_param] + \
                  [('test_net', n) for n in p.test_net]
        generic = [f for f in ('net_param', 'net') if p.HasField(f)]
        if generic:
            if len(p.test_iter) < len(sources):
                raise CaffeError(f'{self.source}: {len(sources)} test nets need as many '
                                 f'test_iter values, got {len(p.test_iter)}')
            sources += [(generic[0], getattr(p, generic[0]))] * (len(p.test_iter) -
                                                                   len(sources))
        elif len(p.test_iter) != len(sources):
            raise CaffeError(f'{self.source}: {len(sources)} test nets but '
                             f'{len(p.test_iter)} test_iter values; give one per test net')
        if p.test_state and len(p.test_state) != len(sources):
            raise CaffeError(f'{self.source}: test_state must be given once per test net '
                             f'({len(sources)}), got {len(p.test_state)}')
        if sources and p.test_interval <= 0:
            raise CaffeError(f'{self.source}: test nets need test_interval > 0')
        nets = []
        for i, (field, value) in enumerate(sources):
            net = self._net_param(field, value)
            state = caffe_pb2.NetState(phase=caffe_pb2.TEST)
            state.MergeFrom(net.state)
            if p.test_state:
                state.MergeFrom(p.test_state[i])
            net.state.CopyFrom(state)
            nets.append((_net_source(field, value, '{}', '{} file: {}'), net))
        return nets

    def _net_param(self, field, value):
        if field.endswith('param'):
            net = caffe_pb2.NetParameter()
            net.CopyFrom(value)
            return net
        return formats.read_net(value)

    # -- the loop --------------------------------------------------------------------------
    def step(self, iters):
        """Run `iters` iterations of forward/backward/update (Solver::Step)."""
        start_iter, stop_iter = self.iter, self.iter + iters
        self._losses, self.smoothed_loss = [], 0.0
        timer, iter_last = time.perf_counter(), self.iter
        while self.iter < stop_iter:
            self.net.clear_param_diffs()
            p = self.param
            if p.test_interval and self.iter % p.test_interval == 0 and \
                    (self.iter > 0 or p.test_initialization):
                if mode.root_solver():
                    self.test_all()
                if self.requested_early_exit:  # stop was requested while testing
                    break
            for on_start, _ in self._callbacks:
                on_start()
            loss = sum(self._forward_backward() for _ in range(p.iter_size)) / p.iter_size
            self._update_smoothed_loss(loss, start_iter)
            if p.display and self.iter % p.display == 0 and mode.root_solver():
                lapse = time.perf_counter() - timer
                self._log_train(lapse, (self.iter - iter_last) / (lapse or 1))
                timer, iter_last = time.perf_counter(), self.iter
            for _, on_gradients_ready in self._callbacks:
                on_gradients_ready()
            self.apply_update()
            self.iter += 1
            request = self.get_requested_action()
            if (p.snapshot and self.iter % p.snapshot == 0 and mode.root_solver()) or \
                    request == SolverAction.SNAPSHOT:
                self.snapshot()
            if request == SolverAction.STOP:
                self.requested_early_exit = True
                break

    def _forward_backward(self):
        last = len(self.net.layers) - 1
        loss = self.net.forward_from_to(0, last)
        if not math.isfinite(loss):
            raise NonFiniteLossError(self._non_finite_message(loss))
        self.net.backward_from_to(last, 0)
        return loss

    def _non_finite_message(self, loss):
        where = 'no top holds a non-finite value'
        for name, tops in zip(self.net._layer_names, self.net.top_vecs):
            bad = [b for b in tops if not np.isfinite(b.data).all()]
            if bad:
                where = f'layer "{name}" is the first to output non-finite values'
                break
        bad_params = [name for name, blobs in self.net.params.items()
                      if any(not np.isfinite(b.data).all() for b in blobs)]
        if bad_params:
            return (f'iteration {self.iter}: loss is {loss}; the weights of layer(s) '
                    f'{", ".join(bad_params[:5])} hold NaN or Inf'
                    + (' before any update: the initial weights (the caffemodel copied in) '
                       'are damaged; load a sound one' if self.iter == 0 else
                       '; lower base_lr (FCN\'s unnormalized loss needs rates near 1e-10) '
                       'or clip with clip_gradients') + '.')
        return (f'iteration {self.iter}: loss is {loss}; {where}. Lower base_lr (FCN\'s '
                f'unnormalized loss needs rates near 1e-10), check the data and the '
                f'weights, or clip with clip_gradients.')

    def _update_smoothed_loss(self, loss, start_iter):
        average = self.param.average_loss
        if len(self._losses) < average:
            self._losses.append(loss)
            n = len(self._losses)
            self.smoothed_loss = (self.smoothed_loss * (n - 1) + loss) / n
        else:
            i = (self.iter - start_iter) % average
            self.smoothed_loss += (loss - self._losses[i]) / average
            self._losses[i] = loss

    def solve(self, resume_file=None):
        """Train to max_iter (Solver::Solve), optionally resuming from a solverstate."""
        log.info('Solving %s', self.net.name)
        log.info('Learning Rate Policy: %s', self.param.lr_policy)
        self.requested_early_exit = False
        if resume_file:
            log.info('Restoring previous solver status from %s', resume_file)
            self.restore(resume_file)
        start_iter = self.iter
        self.step(self.param.max_iter - self.iter)
        p = self.param
        if p.snapshot_after_train and (not p.snapshot or self.iter % p.snapshot != 0) and \
                mode.root_solver():  # Caffe: only the root solver snapshots
            self.snapshot()
        if self.requested_early_exit:
            log.info('Optimization stopped early.')
            return
        if p.display and self.iter % p.display == 0:
            loss = self.net.forward_from_to(0, len(self.net.layers) - 1)
            self._update_smoothed_loss(loss, start_iter)
            log.info('Iteration %d, loss = %g', self.iter, self.smoothed_loss)
        if p.test_interval and self.iter % p.test_interval == 0:
            self.test_all()
        log.info('Optimization Done.')

    def add_callback(self, on_start, on_gradients_ready=None):
        """Call `on_start()` before each iteration's passes, `on_gradients_ready()` after;
        or, as pycaffe's add_callback(nccl), an object with both methods (caffe.NCCL)."""
        if on_gradients_ready is None:
            if not hasattr(on_start, 'on_gradients_ready'):
                raise TypeError('add_callback(on_start, on_gradients_ready) takes two '
                                'functions, or one caffe.NCCL')
            on_start, on_gradients_ready = on_start.on_start, on_start.on_gradients_ready
        self._callbacks.append((on_start, on_gradients_ready))

    def set_action_function(self, function):
        """Ask `function()` for a SolverAction between iterations (SetActionFunction);
        None removes it."""
        self._action_function = function

    def get_requested_action(self):
        """Solver::GetRequestedAction: the action function's answer, else NONE."""
        if self._action_function is None:
            return SolverAction.NONE
        return self._action_function()

    def share_weights(self, net):
        """Make `net` use this solver's train-net weights (pycaffe's share_weights)."""
        net.share_with(self.net)

    # -- testing ---------------------------------------------------------------------------
    def test_all(self):
        results = []
        for i in range(len(self.test_nets)):
            if self.requested_early_exit:
                break
            results.append(self.test(i))
        return results

    def test(self, test_net_id=0):
        """Mean of each test-net output over test_iter forwards; logged as Caffe does."""
        log.info('Iteration %d, Testing net (#%d)', self.iter, test_net_id)
        net = self.test_nets[test_net_id]
        net.share_with(self.net)
        iters = self.param.test_iter[test_net_id]
        scores, loss = None, 0.0
        for _ in range(iters):
            request = self.get_requested_action()
            while request != SolverAction.NONE:  # requests that came in during the test
                if request == SolverAction.SNAPSHOT:
                    self.snapshot()
                elif request == SolverAction.STOP:
                    self.requested_early_exit = True
                request = self.get_requested_action()
            if self.requested_early_exit:
                break
            loss += net.forward_from_to(0, len(net.layers) - 1)
            values = [net.blobs[name].data.ravel().astype(np.float64) for name in net.outputs]
            scores = values if scores is None else [s + v for s, v in zip(scores, values)]
        if self.requested_early_exit:
            log.info('Test interrupted.')
            return {}
        if self.param.test_compute_loss:
            log.info('Test loss: %g', loss / iters)
        means, index = {}, 0
        for name, total in zip(net.outputs, scores or []):
            weight = net.blob_loss_weights[name]
            means[name] = total / iters
            for value in means[name]:
                extra = f' (* {weight:g} = {weight * value:g} loss)' if weight else ''
                log.info('    Test net output #%d: %s = %g%s', index, name, value, extra)
                index += 1
        return means

    def _log_train(self, lapse, per_s):
        log.info('Iteration %d (%g iter/s, %gs/%d iters), loss = %g', self.iter, per_s,
                 lapse, self.param.display, self.smoothed_loss)
        index = 0
        for name in self.net.outputs:
            weight = self.net.blob_loss_weights[name]
            for value in self.net.blobs[name].data.ravel():
                extra = f' (* {weight:g} = {weight * value:g} loss)' if weight else ''
                log.info('    Train net output #%d: %s = %g%s', index, name, value, extra)
                index += 1

    def apply_update(self):
        """Turn the accumulated diffs into a weight update (defined by each solver type)."""
        raise NotImplementedError

    # -- snapshots -------------------------------------------------------------------------
    def snapshot(self):
        """Write <prefix>_iter_<iter>.caffemodel and .solverstate (or the .h5 pair)."""
        return solver_state.snapshot(self)

    def restore(self, state_file):
        """Continue from a solverstate: iteration, lr step, history and weights."""
        solver_state.restore(self, state_file)


def _net_source(field, value, param_form, file_form):
    """Where a net comes from, in Caffe's words: a *_param field, or a file field and its
    path."""
    return param_form.format(field) if field.endswith('param') else file_form.format(field,
                                                                                   value)


def blob_like(blob):
    """A zeroed Blob of `blob`'s shape on its device (solver history, scratch)."""
    return Blob(blob.shape, device=blob.device)
