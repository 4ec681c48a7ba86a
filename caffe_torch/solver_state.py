"""Solver snapshots: the weights and the solver state, in Caffe's two formats.

BINARYPROTO: <prefix>_iter_<N>.caffemodel (NetParameter) and <prefix>_iter_<N>.solverstate
(SolverState: iter, learned_net = the caffemodel's path, current_step, one history
BlobProto per history blob). HDF5: <prefix>_iter_<N>.caffemodel.h5 (Net.save_hdf5) and
.solverstate.h5 holding the datasets iter, learned_net, current_step and history/<i>.
Restoring reads the format from the file name (.h5 or not), as Caffe does.
"""
import os

import h5py
import numpy as np
import torch

from atomic_files import replacing
from caffe_torch import formats, io
from caffe_torch.errors import CaffeError, CaffemodelError
from caffe_torch.proto import caffe_pb2

HDF5 = caffe_pb2.SolverParameter.HDF5


class SnapshotFolderError(CaffeError, FileNotFoundError):
    """A snapshot_prefix whose folder does not exist."""


def snapshot_filename(solver, extension):
    return f'{solver.param.snapshot_prefix}_iter_{solver.iter}{extension}'


def snapshot(solver):
    """Weights first, then the state that points at them; returns the state's path."""
    h5 = solver.param.snapshot_format == HDF5
    model = snapshot_filename(solver, '.caffemodel.h5' if h5 else '.caffemodel')
    state = snapshot_filename(solver, '.solverstate.h5' if h5 else '.solverstate')
    folder = os.path.dirname(model)
    if folder and not os.path.isdir(folder):
        raise SnapshotFolderError(
            f'cannot snapshot to {model}: the folder {folder} of snapshot_prefix '
            f'"{solver.param.snapshot_prefix}" does not exist. Caffe does not create it '
            f'(it aborts: io.cpp:69 Check failed: proto.SerializeToOstream); create the '
            f'folder before training, or fix snapshot_prefix.')
    from caffe_torch.solver import log
    kind = 'HDF5 file' if h5 else 'binary proto file'
    log.info('Snapshotting to %s %s', kind, model)  # Caffe's two lines, each before its write
    save_weights = solver.net.save_hdf5 if h5 else solver.net.save
    save_weights(model, write_diff=solver.param.snapshot_diff)
    log.info('Snapshotting solver state to %s %s', kind, state)
    if h5:
        _write_state_hdf5(solver, model, state)
    else:
        formats.write_binaryproto(_state_proto(solver, model), state)
    return state


def _state_proto(solver, model):
    state = caffe_pb2.SolverState(iter=solver.iter, learned_net=model,
                                  current_step=solver.current_step)
    for blob in solver.history:
        state.history.append(io.array_to_blobproto(blob.data))
    return state


def _write_state_hdf5(solver, model, path):
    """SGDSolver::SnapshotSolverStateToHDF5's layout, which Caffe's restore reads back:
    iter and current_step scalar native ints (H5LTmake_dataset_int), learned_net a scalar
    fixed-length null-terminated ASCII string of strlen + 1 bytes (H5LTmake_dataset_string;
    Caffe reads it into a buffer of the type's size, so a variable-length string reads as
    garbage), history/<i> float32 datasets of each blob's shape."""
    with replacing(path) as tmp, h5py.File(tmp, 'w') as f:
        f['iter'] = np.int32(solver.iter)
        _write_c_string(f, 'learned_net', model)
        f['current_step'] = np.int32(solver.current_step)
        history = f.create_group('history')
        for i, blob in enumerate(solver.history):
            history[str(i)] = np.asarray(blob.data, np.float32)


def _write_c_string(h5file, name, text):
    data = os.fsencode(text) + b'\0'
    string_type = h5py.h5t.C_S1.copy()  # ASCII, null-terminated, as H5T_C_S1
    string_type.set_size(len(data))
    dataset = h5py.h5d.create(h5file.id, name.encode(), string_type,
                              h5py.h5s.create(h5py.h5s.SCALAR))
    dataset.write(h5py.h5s.ALL, h5py.h5s.ALL, np.array(data, f'S{len(data)}'),
                  mtype=string_type)


def restore(solver, path):
    """Load iteration, lr step, history and (through learned_net) the weights.

    Everything is read and checked before anything changes, so a state that does not fit
    this solver leaves it as it was; history shapes are checked as the file declares them,
    before their data is read.
    """
    path = os.fspath(path)
    if path.endswith('.h5'):
        it, model, step, history = _read_state_hdf5(solver, path)
    else:
        state = formats.read_binaryproto(path, caffe_pb2.SolverState)
        _check_history(solver, path, [io.blob_shape(b) for b in state.history])
        it, model, step = state.iter, state.learned_net, state.current_step
        history = [_history_values(path, i, b) for i, b in enumerate(state.history)]
    if model:
        solver.net.copy_from(_locate(model, path))
    if not path.endswith('.h5'):  # only SGDSolver's binary restore says so
        from caffe_torch.solver import log
        log.info('SGDSolver: restoring history')
    for blob, values in zip(solver.history, history):
        blob.data_tensor.copy_(torch.from_numpy(np.ascontiguousarray(values, np.float32)))
    solver.iter, solver.current_step = int(it), int(step)


def _check_history(solver, path, shapes):
    if len(shapes) != len(solver.history):
        raise CaffemodelError(
            f'{path}: {len(shapes)} history blobs, but this {solver.type} solver keeps '
            f'{len(solver.history)} for this net; is it the same net and solver type?')
    for i, (blob, shape) in enumerate(zip(solver.history, shapes)):
        if shape is None or tuple(shape) != tuple(blob.shape):
            raise CaffemodelError(
                f'{path}: history blob {i} has shape {None if shape is None else tuple(shape)}'
                f', the parameter {blob.shape} ({_param_name(solver.net, i)}), as the file '
                f'declares it; not this net\'s state. Restore a solverstate this net and '
                f'solver type saved.')


def _param_name(net, i):
    """'layer "<name>" param <j>' of the learnable param that history blob `i` is for."""
    learnable = i % len(net.learnable_params)
    for layer_id, ids in enumerate(net.param_ids):
        for j, net_id in enumerate(ids):
            if net.param_owners[net_id] == -1 and net.learnable_param_ids[net_id] == learnable:
                return f'layer "{net._layer_names[layer_id]}" param {j}'
    return f'learnable param {learnable}'


def _history_values(path, i, blob):
    try:
        return io.blobproto_to_array(blob)
    except ValueError as e:
        raise CaffemodelError(f'{path}: history blob {i}: {e} Restore from an earlier '
                              f'snapshot.') from None


def _read_state_hdf5(solver, path):
    formats.require_file(path)
    try:
        return _read_hdf5_fields(solver, path)
    except (OSError, KeyError) as e:
        raise CaffemodelError(f'{path}: not a readable HDF5 solverstate ({e}); the file is '
                              f'truncated or of another kind. Restore from an earlier '
                              f'snapshot.') from None


def _read_hdf5_fields(solver, path):
    with h5py.File(path, 'r') as f:
        datasets = [f['history'][str(i)] for i in range(len(f['history']))]
        _check_history(solver, path, [getattr(d, 'shape', None) for d in datasets])
        history = [np.asarray(d) for d in datasets]
        model = _scalar(f, 'learned_net', path)
        model = model.decode() if isinstance(model, bytes) else str(model)
        return (int(np.ravel(_scalar(f, 'iter', path))[0]), model,
                int(np.ravel(_scalar(f, 'current_step', path))[0]), history)


def _scalar(h5file, name, path):
    """The one value of dataset `name`, refused unread when it declares more (a file of a
    few KB may declare 10^9 values): Caffe writes scalars and one path string."""
    dataset = h5file[name]
    shape = getattr(dataset, 'shape', None)
    if shape is None or dataset.size != 1 or dataset.dtype.itemsize > 65536:
        raise CaffemodelError(
            f'{path}: "{name}" declares shape {shape} of {getattr(dataset, "dtype", None)}, '
            f'expected one scalar value as SGDSolver::SnapshotSolverStateToHDF5 writes; the '
            f'file is damaged or of another kind. Restore from an earlier snapshot.')
    return dataset[()]


def _locate(model, state_path):
    """The weights beside the state first (a snapshot folder copied or moved elsewhere must
    not load the original's), else learned_net as written (relative to where training
    ran, as Caffe reads it)."""
    beside = os.path.join(os.path.dirname(state_path), os.path.basename(model))
    if os.path.exists(beside):
        return beside
    if os.path.exists(model):
        return model
    raise FileNotFoundError(f'{state_path}: its weights file {model} is missing (also '
                            f'looked for {beside}); copy the .caffemodel next to the '
                            f'.solverstate')
