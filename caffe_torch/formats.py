"""Caffe's files without Caffe: prototxt (text format) and binary protos, read and written.

Nets read here are upgraded the way Caffe upgrades them on load (see `upgrade`), so V0/V1
definitions and caffemodels such as the ILSVRC VGG16 come back as current NetParameters.
Every write is atomic (atomic_files): a crash leaves either the old file or the new one.
"""
import difflib
import os
import re

from google.protobuf import message as pb_message
from google.protobuf import text_format

import atomic_files
from atomic_files import write_bytes
from caffe_torch.errors import CaffemodelError, PrototxtError
from caffe_torch.proto import caffe_pb2
from caffe_torch.upgrade import upgrade_net, upgrade_solver

_NO_FIELD = re.compile(r'Message type "caffe\.(\w+)" has no field named "(\w+)"')


def parse_prototxt(text, message, source='<string>'):
    """Merge prototxt `text` into `message`; errors name `source`, line and column."""
    try:
        text_format.Merge(text, message)
    except text_format.ParseError as e:
        raise PrototxtError(_describe_parse_error(e, message, source)) from None
    return message


def read_prototxt(path, message_type=caffe_pb2.NetParameter):
    """Read a text-format file into a new `message_type` (no upgrade)."""
    return parse_prototxt(_read_text(path), message_type(), str(path))


def write_prototxt(message, path):
    """Write `message` as prototxt, atomically."""
    write_bytes(path, text_format.MessageToString(message).encode('utf-8'))


def read_binaryproto(path, message_type=caffe_pb2.BlobProto):
    """Read a binary protobuf file (caffemodel, solverstate, mean.binaryproto)."""
    data = _read_bytes(path)
    message = message_type()
    try:
        message.ParseFromString(data)
    except (pb_message.DecodeError, RuntimeError, ValueError) as e:
        fix = ('resume from an earlier snapshot' if message_type is caffe_pb2.SolverState
               else 'download it again or check that you passed the right file')
        raise CaffemodelError(
            f'{path}: not a valid binary {message_type.DESCRIPTOR.name} '
            f'({len(data)} bytes): {e}. The file is truncated or of another kind; '
            f'{fix}.') from None
    return message


def write_binaryproto(message, path):
    """Write `message` in protobuf's binary format, atomically."""
    write_bytes(path, message.SerializeToString())


def read_net(path):
    """Read a net prototxt and upgrade it as Caffe's ReadNetParamsFromTextFile does."""
    return upgrade_net(read_prototxt(path, caffe_pb2.NetParameter), str(path))


def read_net_binary(path):
    """Read a caffemodel and upgrade it; a file with no layer at all is refused."""
    net = read_binaryproto(path, caffe_pb2.NetParameter)
    if not net.layer and not net.layers:
        raise CaffemodelError(
            f'{path}: parsed as a NetParameter but holds no layers, so it is not a '
            f'caffemodel (a prototxt or another binary file?). Pass the .caffemodel '
            f'written by Caffe or by Net.save().')
    return upgrade_net(net, str(path))


def read_solver(path):
    """Read a solver prototxt as Caffe does: upgrade the deprecated solver_type enum, and
    default snapshot_prefix to the solver file's path without extension (or, when the
    prefix names a folder, to that folder plus the file's stem)."""
    solver = upgrade_solver(read_prototxt(path, caffe_pb2.SolverParameter), str(path))
    stem = os.path.splitext(os.fspath(path))[0]
    if not solver.HasField('snapshot_prefix'):
        solver.snapshot_prefix = stem
    elif os.path.isdir(solver.snapshot_prefix):
        solver.snapshot_prefix = os.path.join(solver.snapshot_prefix, os.path.basename(stem))
    return solver


def require_file(path):
    """Refuse `path` before a reader sees it when it is missing or not a file (a folder
    named like the file was reported as missing, or as a damaged file)."""
    problem = atomic_files.file_problem(path)
    if problem == 'does not exist':
        raise FileNotFoundError(f'{path}: no such file; check the path (relative paths start '
                                f'at {os.getcwd()}).')
    if problem:
        raise IsADirectoryError(f'{path}: {problem}; give the path of the file itself.')


def _read_bytes(path):
    require_file(path)
    with open(path, 'rb') as f:
        return f.read()


def _read_text(path):
    data = _read_bytes(path)
    try:
        return data.decode('utf-8')
    except UnicodeDecodeError as e:
        raise PrototxtError(
            f'{path}: not a text file (byte {e.start} is not UTF-8). A binary file '
            f'such as a .caffemodel is read with read_net_binary, not as prototxt.'
        ) from None


def _describe_parse_error(error, message, source):
    line, column = error.GetLine(), error.GetColumn()
    where = f'{source}:{line}:{column}' if line else source
    reason = str(error)
    reason = re.sub(r'^\d+:\d+ ?: ?', '', reason).rstrip('.')
    hint = 'fix the text at that position.'
    unknown = _NO_FIELD.search(reason)
    if unknown:
        hint = _unknown_field_hint(*unknown.groups())
    return f'{where}: cannot parse {message.DESCRIPTOR.name}: {reason}; {hint}'


def _unknown_field_hint(message_name, field):
    descriptor = getattr(caffe_pb2, message_name, None)
    if descriptor is None:
        return 'check the field name against caffe.proto.'
    names = [f.name for f in descriptor.DESCRIPTOR.fields]
    close = difflib.get_close_matches(field, names, n=3)
    if close:
        return f'did you mean {" or ".join(repr(c) for c in close)}?'
    outer = [m for m in ('NetParameter', 'SolverParameter', 'LayerParameter')
             if m != message_name and field in getattr(caffe_pb2, m).DESCRIPTOR.fields_by_name]
    if outer:
        return (f'"{field}" is a field of {outer[0]}, not of {message_name}: is a closing '
                f'"}}" missing above this line?')
    if len(names) > 12:
        return f'see message {message_name} in caffe.proto for its {len(names)} fields.'
    return f'{message_name} has the fields {", ".join(names)}.'
