"""What a Caffe solverstate leaves out, saved beside it so that a resumed stage continues bit
for bit: each Python data layer's read position and random state (train and test nets) and,
on the engine, the random generators behind Dropout. Caffe ignores the file. pycaffe cannot
read its generators: there `reseed` seeds them at the start of every round instead.

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
CURRENT_STEP = 4  # SolverState's field number of current_step


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


def reseed(seed, iteration):
    """On pycaffe, seed the generators behind Dropout from the solver's random_seed and the
    iteration a round starts at, so that a stage resumed at a round's end draws what an
    uninterrupted one draws. The engine restores its generators instead; an unseeded
    solver (random_seed -1) is random either way."""
    if not backend.is_engine and seed >= 0:
        backend.caffe.set_random_seed((seed + iteration) % 2 ** 32)


def is_whole(state_path):
    """Whether a binary solverstate was written to its end (real Caffe writes in place, so a
    kill can cut one short): its fields, walked by their headers only, end exactly at the
    file's end with current_step, the field Caffe writes last. HDF5 ones are taken as is."""
    if str(state_path).endswith('.h5'):
        return True
    last = None
    with open(state_path, 'rb') as f:
        size = os.fstat(f.fileno()).st_size
        while f.tell() < size:
            key = _varint(f)
            if key is None or key & 7 not in (0, 2):
                return False
            value = _varint(f)
            if value is None:
                return False
            if key & 7 == 2:
                f.seek(value, os.SEEK_CUR)
            last = key >> 3
        return f.tell() == size and last == CURRENT_STEP


def _varint(f):
    """The protobuf varint at f's position, or None where the file ends inside it."""
    value, shift = 0, 0
    while True:
        byte = f.read(1)
        if not byte:
            return None
        value |= (byte[0] & 0x7F) << shift
        shift += 7
        if byte[0] < 0x80:
            return value


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
