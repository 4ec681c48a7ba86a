"""Caffe-style log lines on stderr for the `caffe_torch` loggers, as glog prints them:

    I1123 17:20:57.123456 4242 solver.py] Iteration 20 (2.1 iter/s, 9.512s/20 iters), loss = 3.04

Log parsers written for Caffe's output (loss curves from "Iteration N ... loss = X", Caffe's
tools/extra/parse_log.py) read them unchanged: the lines are Caffe's, word for word, from
Net::Init's below to the solver's (solver.py, sgd_solvers.py, solver_state.py).
GLOG_minloglevel works as in Caffe (0 INFO, 1 WARNING, 2 ERROR); an application that
configures `logging` itself can remove the handler or raise the level.
"""
import logging
import os
import sys
import time

from caffe_torch import mode

_LEVELS = {logging.DEBUG: 'I', logging.INFO: 'I', logging.WARNING: 'W',
           logging.ERROR: 'E', logging.CRITICAL: 'F'}


class GlogFormatter(logging.Formatter):
    def format(self, record):
        stamp = time.strftime('%m%d %H:%M:%S', time.localtime(record.created))
        micros = int((record.created % 1) * 1e6)
        return (f'{_LEVELS.get(record.levelno, "I")}{stamp}.{micros:06d} {record.process} '
                f'{os.path.basename(record.pathname)}] {record.getMessage()}')


def install(logger_name='caffe_torch'):
    """Attach the glog-style stderr handler once; level from GLOG_minloglevel."""
    logger = logging.getLogger(logger_name)
    if any(isinstance(h.formatter, GlogFormatter) for h in logger.handlers):
        return logger
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(GlogFormatter())
    logger.addHandler(handler)
    minimum = os.environ.get('GLOG_minloglevel', '0')
    levels = {'0': logging.INFO, '1': logging.WARNING, '2': logging.ERROR, '3': logging.CRITICAL}
    logger.setLevel(levels.get(minimum, logging.INFO))
    return logger


# -- Net::Init's lines (net.cpp, layer_factory.hpp), in Caffe's words --------------------
# Logged by the root solver only, as Caffe's LOG_IF(INFO, Caffe::root_solver()); each call
# names net.py as the line's file (stacklevel), where Caffe names net.cpp.
_net_log = logging.getLogger('caffe_torch.net')


def _net_info(message, *args):
    if mode.root_solver():
        _net_log.info(message, *args, stacklevel=3)


def initializing(param):
    """"Initializing net from parameters:" and the filtered NetParameter (printed only when
    INFO is on: a NetParameter may hold weights); returns it."""
    if _net_log.isEnabledFor(logging.INFO):
        _net_info('Initializing net from parameters: \n%s', str(param).rstrip('\n'))
    return param


def layer_wired(layer_param, num_tops):
    """A layer's creation and connections, before its set-up: its bottoms "<-", its tops
    "->" (in place where a top is named like the bottom at its index; tops past the named
    ones are Caffe's "(automatic)")."""
    name = layer_param.name
    _net_info('Creating layer %s', name)
    _net_info('Creating Layer %s', name)
    for bottom in layer_param.bottom:
        _net_info('%s <- %s', name, bottom)
    for j in range(num_tops):
        top = layer_param.top[j] if j < len(layer_param.top) else '(automatic)'
        in_place = j < len(layer_param.bottom) and layer_param.bottom[j] == top
        _net_info('%s -> %s%s', name, top, ' (in-place)' if in_place else '')


def layer_set_up(net, layer_id):
    """"Setting up", each top's shape (and loss weight), then the data memory of every top
    so far (in-place tops counted again, as Caffe's memory_used_), in bytes of float."""
    _net_info('Setting up %s', net._layer_names[layer_id])
    layer = net.layers[layer_id]
    for j, top in enumerate(net.top_vecs[layer_id]):
        _net_info('Top shape: %s', ''.join(f'{d} ' for d in top.shape) + f'({top.count})')
        if layer.loss(j):
            _net_info('    with loss weight %g', layer.loss(j))
    used = sum(top.count for tops in net.top_vecs[:layer_id + 1] for top in tops)
    _net_info('Memory required for data: %d', used * 4)


def backward_needs(net):
    """Which layers need backward, last layer first, as Caffe decides before
    force_backward."""
    for name, need in reversed(list(zip(net._layer_names, net.layer_need_backward))):
        _net_info('%s needs backward computation.' if need else
                  '%s does not need backward computation.', name)


def net_initialized(outputs):
    for name in outputs:
        _net_info('This network produces output %s', name)
    _net_info('Network initialization done.')
