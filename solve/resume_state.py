"""What a Caffe solverstate leaves out, saved beside it so that a resumed stage continues bit
for bit: each Python data layer's read position and random state (train and test nets) and,
on the engine, the random generators behind Dropout. Caffe ignores the file.

    snapshot/train_iter_N.solverstate   Caffe's (iteration, history, learned_net)
    snapshot/train_iter_N.fcnstate      this module's, JSON, written before the snapshot
"""
import base64
import json
import logging
import os
import re

import backend
from backend import files

log = logging.getLogger('fcn.solve')
FORMAT = 1


def path_for(state_path):
    """The sidecar of a .solverstate(.h5) path."""
    return re.sub(r'\.solverstate(\.h5)?$', '', os.fspath(state_path)) + '.fcnstate'


def save(solver, path):
    mode = backend.extra('mode')
    state = {'format': FORMAT, 'iter': solver.iter,
             'nets': [_layer_states(net) for net in [solver.net] + list(solver.test_nets)],
             'rng': {k: base64.b64encode(v).decode() for k, v in mode.rng_state().items()}
             if mode else None}
    files.atomic_write(path, json.dumps(state).encode())


def restore(solver, state_path):
    """Put back the sidecar of `state_path`; without one (a snapshot of plain Caffe, or
    an older toolkit) the resume continues, not bit for bit, and says so."""
    path = path_for(state_path)
    if not os.path.isfile(path):
        log.warning('%s has no %s beside it: the data order and Dropout continue from a new '
                    'start, so this resume is not bit for bit', state_path,
                    os.path.basename(path))
        return False
    state = _read(path)
    if state.get('iter') != solver.iter:
        raise files.FormatError(f'{path} is of iteration {state.get("iter")}, its '
                                f'solverstate of {solver.iter}; delete the stray file to '
                                f'resume')
    for net, layers in zip([solver.net] + list(solver.test_nets), state['nets']):
        for index, name in enumerate(net._layer_names):
            if name in layers and hasattr(net.layers[index], 'set_state'):
                net.layers[index].set_state(layers[name])
    mode = backend.extra('mode')
    if mode and state.get('rng'):
        mode.set_rng_state({k: base64.b64decode(v) for k, v in state['rng'].items()})
    return True


def _layer_states(net):
    layers = net.layers
    return {name: layers[i].get_state() for i, name in enumerate(net._layer_names)
            if hasattr(layers[i], 'get_state')}


def _read(path):
    try:
        with open(path, encoding='utf-8') as f:
            state = json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        raise files.FormatError(f'{path}: not a readable resume state ({e}); delete it to '
                                f'resume without it (not bit for bit)') from None
    if state.get('format') != FORMAT or not isinstance(state.get('nets'), list):
        raise files.FormatError(f'{path}: not a resume state of format {FORMAT}; delete it '
                                f'to resume without it (not bit for bit)')
    return state
