"""Moving a Net's weights in and out: caffemodel and HDF5, copy and share by layer name.

Matching is by layer name, as in Caffe: source layers the net lacks are ignored, net layers
the source lacks keep their initialisation. That is how FCN re-initialises a layer: rename
it. A shape mismatch is an error naming the layer and both shapes; legacy 4-D blobs load
into parameters of fewer axes under Caffe's right-aligned rule (io.shape_equals).
"""

import h5py
import numpy as np
import torch

from atomic_files import replacing
from caffe_torch import formats, io
from caffe_torch.errors import CaffemodelError, LayerSetupError
from caffe_torch.proto import caffe_pb2


def copy_from(net, path):
    """Net::CopyTrainedLayersFrom for a caffemodel, or an HDF5 file by its suffix."""
    if str(path).endswith(('.h5', '.hdf5')):
        return load_hdf5(net, path)
    source = formats.read_net_binary(path)
    pairs = []  # everything is checked before anything is copied: no half-loaded net
    for source_layer in source.layer:
        layer = net.layer_dict.get(source_layer.name)
        if layer is None or not source_layer.blobs and not layer.blobs:
            continue
        _check_blob_count(layer, len(source_layer.blobs), path)
        for j, (blob, proto) in enumerate(zip(layer.blobs, source_layer.blobs)):
            if not io.shape_equals(blob.shape, proto):
                raise CaffemodelError(_shape_message(path, layer, j, io.blob_shape(proto),
                                                     blob.shape))
            where = (path, layer.name, j)
            pairs.append((blob, _values(proto.data, proto.double_data, blob, where),
                          _values(proto.diff, proto.double_diff, blob, where)
                          if len(proto.diff) or len(proto.double_diff) else None))
    for blob, data, diff in pairs:
        blob.data_tensor.copy_(torch.from_numpy(data))
        if diff is not None:
            blob.diff_tensor.copy_(torch.from_numpy(diff))


def _check_blob_count(layer, count, path):
    if count != len(layer.blobs):
        raise CaffemodelError(
            f'{path}: incompatible number of blobs for layer "{layer.name}": the file has '
            f'{count}, the net {len(layer.blobs)}. A changed bias_term? Rename the layer '
            f'to initialise it instead of copying.')


def _shape_message(path, layer, j, source_shape, target_shape):
    return (f'{path}: cannot copy param {j} weights from layer "{layer.name}"; shape '
            f'mismatch. Source param shape is {tuple(source_shape)}; target param shape '
            f'is {tuple(target_shape)}. To learn this layer\'s parameters from scratch '
            f'rather than copying from a saved net, rename the layer.')


def _values(single, double, blob, where):
    chosen = double if len(double) else single
    if len(chosen) != blob.count:  # counted before they are copied out
        path, name, j = where
        raise CaffemodelError(f'{path}: layer "{name}" param {j} holds {len(chosen)} '
                              f'values, expected {blob.count} for its shape {blob.shape}; '
                              f'the file is damaged or truncated. Re-download or re-save it.')
    return np.array(chosen, dtype=np.float32).reshape(blob.shape)


def share_with(net, other):
    """Net::ShareTrainedLayersWith: same-named layers use `other`'s parameter data."""
    for source in other.layers:
        layer = net.layer_dict.get(source.name)
        if layer is None or not source.blobs:
            continue
        if len(layer.blobs) != len(source.blobs):
            raise LayerSetupError(
                f'share_with: layer "{layer.name}" has {len(layer.blobs)} parameter blobs, '
                f'the other net\'s {len(source.blobs)}')
        for j, (blob, shared) in enumerate(zip(layer.blobs, source.blobs)):
            if blob.shape != shared.shape:
                raise LayerSetupError(
                    f'share_with: layer "{layer.name}" param {j} has shape {blob.shape}, '
                    f'the other net\'s {shared.shape}')
            blob.share_data(shared)


def to_proto(net, write_diff=False):
    """Net::ToProto: every layer's parameter (as set up) with its blobs in the shape format."""
    param = caffe_pb2.NetParameter(name=net.name)
    for layer in net.layers:
        layer_param = param.layer.add()
        layer_param.CopyFrom(layer.layer_param)
        del layer_param.blobs[:]
        for blob in layer.blobs:
            _blob_to_proto(blob, write_diff, layer_param.blobs.add())
    return param


def _blob_to_proto(blob, write_diff, proto):
    """Blob::ToProto into `proto`: shape, data (and diff). The packed floats go from the
    array's buffer into protobuf's wire format and are parsed in place: `extend` converts
    one Python float at a time, over a minute for VGG16's 134M values. Same bytes."""
    packed = [io.packed_floats(5, blob.data)]
    if write_diff:
        packed.append(io.packed_floats(6, blob.diff))
    proto.MergeFromString(b''.join(packed))
    proto.shape.dim.extend(blob.shape)
    return proto


def save_hdf5(net, path, write_diff=False):
    """Net::ToHDF5: /data/<layer>/<i> (and /diff/...), shared params saved by their owner."""
    with replacing(path) as tmp, h5py.File(tmp, 'w') as f:
        groups = [('data', 'data')] + ([('diff', 'diff')] if write_diff else [])
        for group_name, field in groups:
            group = f.create_group(group_name)
            for layer, ids in zip(net.layers, net.param_ids):
                layer_group = group.create_group(layer.name)
                for j, net_id in enumerate(ids):
                    if net.param_owners[net_id] == -1:
                        layer_group.create_dataset(
                            str(j), data=getattr(net.params_list[net_id], field))


def load_hdf5(net, path):
    """Net::CopyTrainedLayersFromHDF5: by layer name; absent datasets only for shared params.
    Everything is read and checked before anything is copied."""
    formats.require_file(path)
    try:
        with h5py.File(path, 'r') as f:
            pairs = _hdf5_pairs(net, path, f['data'])
    except (OSError, KeyError) as e:
        raise CaffemodelError(f'{path}: not a readable HDF5 caffemodel ({e}); expected the '
                              f'/data/<layer>/<i> datasets Caffe\'s Net::ToHDF5 writes. The '
                              f'file is damaged or of another kind.') from None
    for blob, values in pairs:
        blob.data_tensor.copy_(torch.from_numpy(values))


def _hdf5_pairs(net, path, data):
    pairs = []
    for name in data:
        layer = net.layer_dict.get(name)
        if layer is None:
            continue
        layer_id = net._layer_names.index(name)
        if len(data[name]) > len(layer.blobs):
            _check_blob_count(layer, len(data[name]), path)
        for j, blob in enumerate(layer.blobs):
            values = _dataset(net, path, layer, layer_id, j, blob, data[name])
            if values is not None:
                pairs.append((blob, values))
    return pairs


def _dataset(net, path, layer, layer_id, j, blob, group):
    if str(j) not in group:
        if net.param_owners[net.param_ids[layer_id][j]] != -1:
            return None  # a shared param: its owner's dataset carries it
        _check_blob_count(layer, len(group), path)
    dataset = group[str(j)]
    if not isinstance(dataset, h5py.Dataset):
        raise CaffemodelError(f'{path}: {dataset.name} is a group, expected the dataset of '
                              f'layer "{layer.name}" param {j} of shape {blob.shape}; the '
                              f'file is not a Net::ToHDF5 caffemodel.')
    if dataset.shape != blob.shape:  # the declared shape, before reading any data: a
        # file of a few KB may declare 10^9 compressed or unwritten floats
        raise CaffemodelError(_shape_message(path, layer, j, dataset.shape, blob.shape))
    return np.asarray(dataset, dtype=np.float32)
