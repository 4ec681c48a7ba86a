"""pycaffe's public API, and only that, computed by caffe_torch (see ../README.md)."""
import logging
import os
import time

import caffe_torch as _engine
from caffe_torch import mode as _mode

from caffe import io, proto  # noqa: F401
from caffe.net_spec import NetSpec, layers, params, to_proto  # noqa: F401

Layer = _engine.Layer
TRAIN, TEST = _engine.TRAIN, _engine.TEST
set_mode_cpu, set_mode_gpu, set_device = _mode.set_mode_cpu, _mode.set_mode_gpu, _mode.set_device
set_random_seed, set_multiprocess = _mode.set_random_seed, _mode.set_multiprocess
solver_count, set_solver_count = _mode.solver_count, _mode.set_solver_count
solver_rank, set_solver_rank = _mode.solver_rank, _mode.set_solver_rank
layer_type_list = _engine.layer_type_list


def has_nccl():
    return False


class _Strict:
    """Forwards pycaffe's names to the engine's object; any other is an AttributeError."""
    NAMES = frozenset()

    def __init__(self, inner):
        object.__setattr__(self, '_inner', inner)

    def __getattr__(self, name):
        if name in self.NAMES:
            return getattr(self._inner, name)
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}' "
                             f"(pycaffe has no such name)")


def _file_name(value, where):
    if not isinstance(value, str):
        raise TypeError(f'Python argument types in {where} did not match C++ signature: '
                        f'expected a str file name, got {type(value).__name__}')
    return value


class Net(_Strict):
    NAMES = frozenset({
        'forward', 'backward', 'forward_all', 'forward_backward_all', 'set_input_arrays',
        'reshape', 'copy_from', 'share_with', 'save', 'blobs', 'params', 'layers',
        'layer_dict', 'inputs', 'outputs', 'blob_loss_weights', 'top_names', 'bottom_names',
        'clear_param_diffs', 'before_forward', 'after_forward', 'before_backward',
        'after_backward', '_forward', '_backward', '_blobs', '_blob_names', '_layer_names',
        '_inputs', '_outputs', '_blob_loss_weights', '_bottom_ids', '_top_ids'})

    def __init__(self, network_file, *args, **kwargs):
        _file_name(network_file, 'Net.__init__')
        legacy_weights = args[0] if args and not isinstance(args[0], int) else None
        weights = kwargs.get('weights', legacy_weights)  # Net(file, phase, weights=) or
        if weights is not None:                           # Net(file, weights, phase)
            _file_name(weights, 'Net.__init__')
        super().__init__(_engine.Net(network_file, *args, **kwargs))


def _wrap_net(inner):
    net = object.__new__(Net)
    object.__setattr__(net, '_inner', inner)
    return net


class Solver(_Strict):
    NAMES = frozenset({'iter', 'add_callback', 'solve', 'step', 'restore', 'snapshot',
                       'share_weights', 'apply_update'})

    def __init__(self, inner):
        super().__init__(inner)
        object.__setattr__(self, 'net', _wrap_net(inner.net))
        object.__setattr__(self, 'test_nets', [_wrap_net(n) for n in inner.test_nets])


def get_solver(filename):
    return Solver(_engine.get_solver(_file_name(filename, 'get_solver')))


def _solver_class(engine_class):
    def build(filename):
        return Solver(engine_class(_file_name(filename, engine_class.__name__)))
    build.__name__ = engine_class.__name__
    return build


SGDSolver, NesterovSolver, AdamSolver = (_solver_class(c) for c in (
    _engine.SGDSolver, _engine.NesterovSolver, _engine.AdamSolver))
AdaGradSolver, RMSPropSolver, AdaDeltaSolver = (_solver_class(c) for c in (
    _engine.AdaGradSolver, _engine.RMSPropSolver, _engine.AdaDeltaSolver))


class _GlogFromCpp(logging.Handler):
    """The engine's log lines written to fd 2 directly, `file:line]` as glog's C++ lines."""

    def emit(self, record):
        when = time.strftime('%m%d %H:%M:%S', time.localtime(record.created))
        line = (f'{record.levelname[0]}{when}.{int(record.created % 1 * 1e6):06d} '
                f'{record.process} {record.filename}:{record.lineno}] {record.getMessage()}\n')
        os.write(2, line.encode())


_log = logging.getLogger('caffe_torch')
_log.handlers[:] = [_GlogFromCpp()]
_log.propagate = False
