"""Caffe's files as the toolkit reads and writes them, with the backend's own caffe_pb2.

Every write is atomic, through atomic_files, which the engine writes with too: a crash
leaves the old file or the new one, never a torn one.
"""
import os

from atomic_files import write_bytes as atomic_write  # noqa: F401  (the toolkit's name)

from google.protobuf import message as pb_message
from google.protobuf import text_format

from backend import caffe_pb2


class FormatError(ValueError):
    """A prototxt or binary proto file that does not parse as what the toolkit expected."""


def read_prototxt(path, message_type=None):
    """A text-format file as a new `message_type` (default NetParameter)."""
    message = (message_type or caffe_pb2.NetParameter)()
    try:
        with open(path, encoding='utf-8') as f:
            text_format.Merge(f.read(), message)
    except (text_format.ParseError, UnicodeDecodeError) as e:
        raise FormatError(f'{path}: not a valid {message.DESCRIPTOR.name} prototxt: {e}. '
                          f'Fix the file at that line and column, or pass the right '
                          f'file.') from None
    return message


def write_prototxt(message, path):
    atomic_write(path, text_format.MessageToString(message).encode('utf-8'))


def read_binary(path, message_type=None):
    """A binary proto file (caffemodel, solverstate) as a new `message_type`."""
    message = (message_type or caffe_pb2.NetParameter)()
    with open(path, 'rb') as f:
        data = f.read()
    try:
        message.ParseFromString(data)
    except (pb_message.DecodeError, RuntimeError, ValueError) as e:
        raise FormatError(f'{path}: not a valid binary {message.DESCRIPTOR.name} '
                          f'({len(data)} bytes): {e}. The file is truncated or of another '
                          f'kind; write or download it again.') from None
    return message


def write_binary(message, path):
    atomic_write(path, message.SerializeToString())


def weights(path):
    """{layer: [float32 arrays]} of a caffemodel, binary (current or V1 layers) or HDF5
    (`.h5`: Net::ToHDF5's /data/<layer>/<i>), in the file's order."""
    if os.fspath(path).endswith(('.h5', '.hdf5')):
        return _hdf5_weights(path)
    from backend import caffe
    return {layer.name: [caffe.io.blobproto_to_array(b).astype('float32') for b in layer.blobs]
            for layer in caffemodel_layers(path)}


def weight_names(path):
    """The names of the layers a caffemodel (binary or HDF5) gives weights to."""
    if os.fspath(path).endswith(('.h5', '.hdf5')):
        return list(_hdf5_weights(path, arrays=False))
    return [layer.name for layer in caffemodel_layers(path)]


def _hdf5_weights(path, arrays=True):
    import h5py
    try:
        with h5py.File(path, 'r') as f:
            data = f['data']
            found = {name: [data[name][str(i)][()] if arrays else None
                            for i in range(len(data[name]))] for name in data}
    except (OSError, KeyError) as e:
        raise FormatError(f'{path}: not a readable HDF5 caffemodel ({e}); expected the '
                          f'/data/<layer>/<i> datasets Net::save_hdf5 writes. The file is '
                          f'damaged or of another kind.') from None
    return {name: blobs for name, blobs in found.items() if blobs}


def caffemodel_layers(path):
    """The layers of a caffemodel that carry blobs, current (`layer`) or V1 (`layers`)."""
    net = read_binary(path)
    layers = [layer for layer in list(net.layer) + list(net.layers) if layer.blobs]
    if not layers:
        raise FormatError(f'{path}: parsed as a NetParameter but holds no layer with '
                          f'weights, so it is not a caffemodel (a prototxt, or another '
                          f'binary file?). Pass a .caffemodel written by Caffe or a stage.')
    return layers
