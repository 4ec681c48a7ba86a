"""What a Caffe solverstate leaves out, saved beside it so that a resumed stage continues bit
for bit: each Python data layer's read position and random state (train and test nets) and,
on the engine, the random generators behind Dropout. Caffe ignores the file. pycaffe cannot
read its generators: there `reseed` seeds them at the start of every round instead.

    snapshot/train_iter_N.solverstate   Caffe's (iteration, history, learned_net)
    snapshot/train_iter_N.fcnstate      this module's, JSON, written before the snapshot

A resume uses neither file before checking it against the stage: a --resume file that is
weights, another net's solver state or one whose stored iteration is not its name's, and a
resume state that does not fit the net field by field, are refused naming the file and the
field, so that a stage never resumes silently otherwise than it would have run on.
"""
import base64
import json
import logging
import os
import pathlib
import random
import re

import numpy as np

import backend
from backend import caffe_pb2, files

log = logging.getLogger('fcn.solve')
FORMAT = 1
CURRENT_STEP = 4  # SolverState's field number of current_step
NET_LAYER = 100  # NetParameter's field number of layer (a caffemodel's)
SNAPSHOT_NAME = re.compile(r'_iter_(\d+)\.solverstate(\.h5)?$')
ASIDE = ('Put back the .fcnstate written with this snapshot, or move this one out of its '
         'folder to resume without it (not bit for bit).')


class ResumeError(files.FormatError):
    """A snapshot or resume state that is not this stage's, or not the one its name says."""


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
    fields, whole = _fields(state_path)
    return whole and bool(fields) and fields[-1][0] == CURRENT_STEP


def _fields(path):
    """([(field number, wire type)] of a binary proto walked by its headers only, whether
    the walk ended exactly at the file's end). Varints and length-delimited fields only:
    all a SolverState or a NetParameter holds at its top level."""
    found = []
    with open(path, 'rb') as f:
        size = os.fstat(f.fileno()).st_size
        while f.tell() < size:
            key = _varint(f)
            if key is None or key & 7 not in (0, 2):
                return found, False
            value = _varint(f)
            if value is None:
                return found, False
            if key & 7 == 2:
                f.seek(value, os.SEEK_CUR)
            found.append((key >> 3, key & 7))
        return found, f.tell() == size


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


def check_snapshot(solver, state_path, model_id):
    """Refuse, before anything is restored, a --resume file that is no snapshot of this
    stage: weights, a solver state of another net, or one whose stored iteration is not
    the one its name says. A file it cannot read is left to solver.restore to report."""
    if not os.path.isfile(state_path):
        return
    if _is_weights(state_path):
        raise ResumeError(
            f'{state_path} is a caffemodel (weights), not a solver state: --resume takes a '
            f'<prefix>_iter_N.solverstate (the iteration, the solver\'s history and the path '
            f'of its weights). To start {model_id} from these weights pass --init '
            f'{state_path} instead; to resume, pass the .solverstate written with it.')
    stored = _stored(state_path)
    if stored is not None:
        iteration, learned_net, history = stored
        _check_net(solver, state_path, model_id, learned_net, history)
        _check_name(state_path, iteration)


def _is_weights(path):
    """A caffemodel, by its name or by what it holds: HDF5 with /data and no /history; a
    binary proto with NetParameter's layer field, or a string as field 1 (a net's name,
    where a SolverState has its iteration, a number)."""
    name = os.fspath(path)
    if re.search(r'\.caffemodel(\.h5)?$', name):
        return True
    if name.endswith('.h5'):
        try:
            import h5py
            with h5py.File(path, 'r') as f:
                return 'data' in f and 'history' not in f
        except (ImportError, OSError):
            return False
    fields, _ = _fields(path)
    return any(number == NET_LAYER or (number, wire) == (1, 2) for number, wire in fields)


def _stored(path):
    """(iteration, learned_net, [history blob shapes]) of a whole solverstate; None for one
    cut short or of another kind."""
    try:
        if os.fspath(path).endswith('.h5'):
            return _stored_hdf5(path)
        if not is_whole(path):
            return None
        state = files.read_binary(path, caffe_pb2.SolverState)
    except (files.FormatError, ImportError, OSError, KeyError, ValueError, TypeError):
        return None
    return state.iter, state.learned_net, [_blob_shape(b) for b in state.history]


def _stored_hdf5(path):
    import h5py
    with h5py.File(path, 'r') as f:
        net = f['learned_net'][()]
        history = [tuple(f['history'][str(i)].shape) for i in range(len(f['history']))]
        return (int(np.ravel(f['iter'][()])[0]),
                net.decode() if isinstance(net, bytes) else str(net), history)


def _blob_shape(blob):
    """A BlobProto's shape; Caffe's legacy num, channels, height, width where it has none."""
    if blob.HasField('shape'):
        return tuple(blob.shape.dim)
    return blob.num, blob.channels, blob.height, blob.width


def _check_net(solver, path, model_id, learned_net, history):
    """The solver state's history against this net's params (SGD keeps one blob per param,
    Adam two), and the stage whose snapshot folder its learned_net names."""
    other = _stage_of(learned_net)
    problem = _history_mismatch(history, _param_shapes(solver.net))
    if problem is None and other in (None, model_id):
        return
    whose = f'stage {other}' if other not in (None, model_id) else 'another net'
    raise ResumeError(
        f'{path} is a solver state of {whose}, not of {model_id}: its learned_net is '
        f'{learned_net or "empty"}{"; " + problem if problem else ""}. --resume takes a '
        f'solverstate of {model_id}\'s own snapshots (<out>/{model_id}/snapshot/'
        f'train_iter_N.solverstate; without --resume the newest is taken). To start '
        f'{model_id} from that net\'s weights instead, pass --init with its caffemodel'
        f'{" " + learned_net if learned_net else ""}.')


def _stage_of(learned_net):
    """The model whose <out>/<model>/snapshot/ folder `learned_net` lies in, or None."""
    from nets.models import MODELS
    path = pathlib.PurePath(learned_net)
    stage = path.parent.parent.name
    return stage if path.parent.name == 'snapshot' and stage in MODELS else None


def _param_shapes(net):
    return [(f'{layer}[{i}]', tuple(blob.data.shape))
            for layer, blobs in net.params.items() for i, blob in enumerate(blobs)]


def _history_mismatch(history, params):
    """What tells `history` (shapes) from a solver's of `params` ((name, shape)), or None."""
    if len(history) == len(params) == 0:
        return None
    whole = params and history and len(history) % len(params) == 0
    counted = '' if whole else (f'it holds {len(history)} history blobs, this net has '
                                f'{len(params)} params; ')
    pairs = zip(history, params * (len(history) // len(params) if whole else 1))
    for i, (shape, (name, want)) in enumerate(pairs):
        if _squeeze(shape) != _squeeze(want):
            return (f'{counted}its history blob {i} has shape {list(shape)}, this net\'s '
                    f'param {name} {list(want)}')
    return counted.rstrip('; ') or None


def _squeeze(shape):
    """A shape without leading 1s: Caffe's legacy 4-d blobs hold 1-d biases as 1x1x1xN."""
    return list(shape)[next((i for i, n in enumerate(shape) if n != 1), len(shape) - 1):]


def _check_name(path, iteration):
    """A snapshot's stored iteration is the one in its name (<prefix>_iter_N), and never
    negative: a file renamed or written over is not the state its name promises."""
    match = SNAPSHOT_NAME.search(os.path.basename(path))
    named = int(match.group(1)) if match else None
    if iteration >= 0 and named in (None, iteration):
        return
    says = f'its name says {named}' if named is not None else 'no snapshot\'s is negative'
    raise ResumeError(
        f'{path} records iteration {iteration}, but {says}: it is not the solverstate that '
        f'snapshot wrote (renamed, or written over by another?). Resume another snapshot '
        f'with --resume, or move this one, with its .caffemodel and .fcnstate, out of '
        f'{os.path.dirname(os.path.abspath(path))} to resume from the one before.')


def restore(solver, state_path):
    """Put back the sidecar of `state_path`, once all of it is checked against the solver's
    nets; without one (a snapshot of plain Caffe, or an older toolkit) the resume
    continues, not bit for bit, and says so."""
    path = path_for(state_path)
    if not os.path.isfile(path):
        log.warning('%s has no %s beside it: the data order and Dropout continue from a new '
                    'start, so this resume is not bit for bit', state_path,
                    os.path.basename(path))
        return False
    state = _read(path)
    nets = [solver.net] + list(solver.test_nets)
    _check_state(state, solver.iter, nets, path, state_path)
    for net, layers in zip(nets, state['nets']):
        for index, name in enumerate(net._layer_names):
            if name in layers and hasattr(net.layers[index], 'set_state'):
                net.layers[index].set_state(layers[name])
    mode = backend.extra('mode')
    if mode and state.get('rng'):
        mode.set_rng_state({k: base64.b64decode(v) for k, v in state['rng'].items()})
    return True


def _refuse(path, field, problem):
    raise ResumeError(f'{path}: {field} {problem}. {ASIDE}')


def _short(value):
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + '...'


def _check_state(state, iteration, nets, path, state_path):
    """Every field of a resume state against the solver at `iteration` and its `nets`."""
    if type(state.get('iter')) is not int or state['iter'] != iteration:
        _refuse(path, 'iter', f'is {_short(state.get("iter"))}, but '
                f'{os.path.basename(state_path)} beside it is of iteration {iteration}: it is '
                f'not that snapshot\'s resume state (copied from another?)')
    saved = state.get('nets')
    if not isinstance(saved, list) or len(saved) != len(nets):
        got = (f'holds {len(saved)} net states' if isinstance(saved, list)
               else f'is {_short(saved)}')
        _refuse(path, 'nets', f'{got}, but the solver has {len(nets)} nets (the train net '
                f'and {len(nets) - 1} test net(s)): one object {{layer: state}} each')
    for i, (net, layers) in enumerate(zip(nets, saved)):
        _check_layers(net, layers, path, f'nets[{i}]')
    _check_generators(state.get('rng'), path)


def _check_layers(net, layers, path, where):
    owners = {name: layer for name, layer in zip(net._layer_names, net.layers)
              if hasattr(layer, 'get_state')}
    if not isinstance(layers, dict) or layers.keys() != owners.keys():
        got = (f'holds the states of layers {", ".join(sorted(layers)) or "(none)"}'
               if isinstance(layers, dict) else f'is {_short(layers)}')
        _refuse(path, where, f'{got}, but this net\'s data layers are '
                f'{", ".join(owners) or "(none)"}')
    for name, layer in owners.items():
        _check_layer(name, layer, layers[name], path, f'{where}["{name}"]')


def _check_layer(name, layer, saved, path, where):
    """A data layer's state (SegDataLayer.get_state: idx, rng) against the layer."""
    want = layer.get_state()
    if not isinstance(saved, dict) or saved.keys() != want.keys():
        _refuse(path, where, f'is {_short(saved)}, but layer "{name}" keeps an object with '
                f'the keys {", ".join(want)}')
    idx, count = saved['idx'], len(layer.indices)
    if type(idx) is not int or not 0 <= idx < count:
        _refuse(path, f'{where}.idx', f'is {idx!r}, but layer "{name}" reads {count} ids: '
                f'expected an int from 0 to {count - 1}')
    if want['rng'] is None and saved['rng'] is not None:
        _refuse(path, f'{where}.rng', f'is {_short(saved["rng"])}, but layer "{name}" draws '
                f'no random numbers (randomize False): expected null')
    problem = want['rng'] is not None and _random_state_problem(saved['rng'])
    if problem:
        _refuse(path, f'{where}.rng', f'is not a state of random.Random ({problem}): '
                f'expected [3, [625 ints], null], as the layer\'s rng.getstate() gives')


def _random_state_problem(value):
    """Why `value` (JSON) is no random.Random state, tried on a scratch generator; None."""
    if not (isinstance(value, list) and len(value) == 3 and isinstance(value[1], list)):
        return f'got {_short(value)}'
    version, internal, gauss = value
    if gauss is not None and type(gauss) is not float:
        return f'its gauss_next is {gauss!r}'
    try:
        random.Random().setstate((version, tuple(internal), gauss))
    except (TypeError, ValueError, OverflowError) as e:
        return str(e)
    return None


def _check_generators(value, path):
    """The generators behind Dropout, {device: base64 state}, each tried on a scratch
    generator of its device (on the engine; pycaffe reseeds instead, see reseed)."""
    mode = backend.extra('mode')
    if value is None:
        if mode:
            log.warning('%s holds no Dropout generator state (written on pycaffe?): Dropout '
                        'continues from a new start, so this resume is not bit for bit', path)
        return
    if not isinstance(value, dict):
        _refuse(path, 'rng', f'is {_short(value)}, expected null or an object {{device: '
                f'base64 state}} of the generators behind Dropout')
    for key, text in value.items():
        try:
            data = base64.b64decode(text, validate=True)
        except (TypeError, ValueError) as e:  # binascii.Error is a ValueError
            _refuse(path, f'rng["{key}"]', f'is not base64 text ({e})')
        problem = mode and _generator_problem(key, data)
        if problem:
            _refuse(path, f'rng["{key}"]', problem)


def _generator_problem(key, data):
    import torch
    try:
        generator = torch.Generator(device=key)
    except (RuntimeError, ValueError) as e:
        return (f'is the state of a generator on "{key}", which this run cannot make ({e}); '
                f'resume where that device is')
    size = generator.get_state().numel()
    if len(data) != size:
        return f'is {len(data)} bytes, but a {key} generator\'s state is {size}'
    try:
        generator.set_state(torch.frombuffer(bytearray(data), dtype=torch.uint8))
    except (RuntimeError, ValueError) as e:
        return f'is not a {key} generator\'s state ({e})'
    return None


def _layer_states(net):
    layers = net.layers
    return {name: layers[i].get_state() for i, name in enumerate(net._layer_names)
            if hasattr(layers[i], 'get_state')}


def _read(path):
    try:
        with open(path, encoding='utf-8') as f:
            state = json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        _refuse(path, 'the file', f'is not readable JSON ({e})')
    if not isinstance(state, dict):
        _refuse(path, 'the file', f'holds {_short(state)}, not the JSON object a resume '
                f'state is ({{"format": {FORMAT}, "iter": N, "nets": [...], "rng": ...}})')
    if state.get('format') != FORMAT:
        _refuse(path, 'format', f'is {_short(state.get("format"))}, not {FORMAT}: not a resume '
                f'state this toolkit writes')
    return state
