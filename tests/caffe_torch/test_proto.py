"""The schema: BVLC Caffe's field numbers, and every message through text and binary."""
import pytest
from google.protobuf import text_format
from google.protobuf.descriptor import FieldDescriptor

from caffe_torch.proto import caffe_pb2

# (message, field, number, type): a sample of BVLC master's caffe.proto, typed in from the
# published schema so that a renumbering in ours shows up here.
KNOWN_FIELDS = [
    ('BlobProto', 'shape', 7, 'message'), ('BlobProto', 'data', 5, 'float'),
    ('BlobProto', 'diff', 6, 'float'), ('BlobProto', 'double_data', 8, 'double'),
    ('BlobProto', 'double_diff', 9, 'double'), ('BlobProto', 'num', 1, 'int32'),
    ('BlobProto', 'width', 4, 'int32'), ('BlobShape', 'dim', 1, 'int64'),
    ('Datum', 'data', 4, 'bytes'), ('Datum', 'float_data', 6, 'float'),
    ('Datum', 'encoded', 7, 'bool'), ('NetParameter', 'layer', 100, 'message'),
    ('NetParameter', 'layers', 2, 'message'), ('NetParameter', 'input_dim', 4, 'int32'),
    ('NetParameter', 'force_backward', 5, 'bool'), ('NetParameter', 'state', 6, 'message'),
    ('LayerParameter', 'name', 1, 'string'), ('LayerParameter', 'type', 2, 'string'),
    ('LayerParameter', 'bottom', 3, 'string'), ('LayerParameter', 'top', 4, 'string'),
    ('LayerParameter', 'loss_weight', 5, 'float'), ('LayerParameter', 'param', 6, 'message'),
    ('LayerParameter', 'blobs', 7, 'message'), ('LayerParameter', 'phase', 10, 'enum'),
    ('LayerParameter', 'propagate_down', 11, 'bool'),
    ('LayerParameter', 'include', 8, 'message'), ('LayerParameter', 'exclude', 9, 'message'),
    ('LayerParameter', 'transform_param', 100, 'message'),
    ('LayerParameter', 'loss_param', 101, 'message'),
    ('LayerParameter', 'convolution_param', 106, 'message'),
    ('LayerParameter', 'crop_param', 144, 'message'),
    ('LayerParameter', 'pooling_param', 121, 'message'),
    ('LayerParameter', 'python_param', 130, 'message'),
    ('LayerParameter', 'input_param', 143, 'message'),
    ('LayerParameter', 'scale_param', 142, 'message'),
    ('V1LayerParameter', 'blobs_lr', 7, 'float'),
    ('V1LayerParameter', 'weight_decay', 8, 'float'),
    ('V1LayerParameter', 'convolution_param', 10, 'message'),
    ('V1LayerParameter', 'layer', 1, 'message'), ('V1LayerParameter', 'type', 5, 'enum'),
    ('V0LayerParameter', 'kernelsize', 8, 'uint32'),
    ('ParamSpec', 'lr_mult', 3, 'float'), ('ParamSpec', 'decay_mult', 4, 'float'),
    ('ConvolutionParameter', 'num_output', 1, 'uint32'),
    ('ConvolutionParameter', 'pad', 3, 'uint32'),
    ('ConvolutionParameter', 'kernel_size', 4, 'uint32'),
    ('ConvolutionParameter', 'dilation', 18, 'uint32'),
    ('ConvolutionParameter', 'group', 5, 'uint32'),
    ('CropParameter', 'axis', 1, 'int32'), ('CropParameter', 'offset', 2, 'uint32'),
    ('LossParameter', 'ignore_label', 1, 'int32'),
    ('LossParameter', 'normalization', 3, 'enum'),
    ('LossParameter', 'normalize', 2, 'bool'),
    ('SolverParameter', 'base_lr', 5, 'float'), ('SolverParameter', 'momentum', 11, 'float'),
    ('SolverParameter', 'iter_size', 36, 'int32'), ('SolverParameter', 'type', 40, 'string'),
    ('SolverParameter', 'clip_gradients', 35, 'float'),
    ('SolverParameter', 'random_seed', 20, 'int64'),
    ('SolverState', 'history', 3, 'message'), ('SolverState', 'current_step', 4, 'int32'),
    ('PythonParameter', 'param_str', 3, 'string'),
]

_TYPE_NAMES = {FieldDescriptor.TYPE_MESSAGE: 'message', FieldDescriptor.TYPE_FLOAT: 'float',
               FieldDescriptor.TYPE_DOUBLE: 'double', FieldDescriptor.TYPE_INT32: 'int32',
               FieldDescriptor.TYPE_INT64: 'int64', FieldDescriptor.TYPE_UINT32: 'uint32',
               FieldDescriptor.TYPE_BOOL: 'bool', FieldDescriptor.TYPE_STRING: 'string',
               FieldDescriptor.TYPE_BYTES: 'bytes', FieldDescriptor.TYPE_ENUM: 'enum'}

ALL_MESSAGES = sorted(caffe_pb2.DESCRIPTOR.message_types_by_name)


@pytest.mark.parametrize('message, field, number, kind', KNOWN_FIELDS)
def test_field_numbers_match_bvlc(message, field, number, kind):
    """Field numbers and types equal BVLC master's, so files from Caffe parse unchanged."""
    descriptor = getattr(caffe_pb2, message).DESCRIPTOR.fields_by_name[field]
    assert (descriptor.number, _TYPE_NAMES[descriptor.type]) == (number, kind)


def test_defaults_match_bvlc():
    """Defaults that change behaviour when absent are Caffe's."""
    assert caffe_pb2.NetState().phase == caffe_pb2.TEST
    assert caffe_pb2.FillerParameter().type == 'constant'
    assert caffe_pb2.ConvolutionParameter().bias_term is True
    assert caffe_pb2.LossParameter().normalization == caffe_pb2.LossParameter.VALID
    assert caffe_pb2.SolverParameter().type == 'SGD'
    assert caffe_pb2.SolverParameter().random_seed == -1
    assert caffe_pb2.SolverParameter().test_initialization is True
    assert caffe_pb2.ParamSpec().lr_mult == 1 and caffe_pb2.ParamSpec().decay_mult == 1
    assert caffe_pb2.DropoutParameter().dropout_ratio == pytest.approx(0.5)
    assert caffe_pb2.LRNParameter().local_size == 5
    assert caffe_pb2.CropParameter().axis == 2
    assert caffe_pb2.SoftmaxParameter().axis == 1


def _populate(message, depth=0):
    """Set every field of `message` to a value derived from its number (two for repeated)."""
    for field in message.DESCRIPTOR.fields:
        values = [_value(field, message, depth, i) for i in range(2 if field.is_repeated else 1)]
        if any(v is None for v in values):
            continue
        if field.is_repeated:
            container = getattr(message, field.name)
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                for v in values:
                    container.add().CopyFrom(v)
            else:
                container.extend(values)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            getattr(message, field.name).CopyFrom(values[0])
        else:
            setattr(message, field.name, values[0])
    return message


def _value(field, message, depth, i):
    n = field.number + i
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        if depth >= 2:
            return None
        return _populate(getattr(caffe_pb2, field.message_type.name)(), depth + 1)
    if field.type == FieldDescriptor.TYPE_ENUM:
        values = field.enum_type.values
        return values[n % len(values)].number
    if field.type in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
        return n + 0.25
    if field.type == FieldDescriptor.TYPE_BOOL:
        return n % 2 == 0
    if field.type == FieldDescriptor.TYPE_STRING:
        return f'{field.name}_{n}'
    if field.type == FieldDescriptor.TYPE_BYTES:
        return bytes([n % 256, 7])
    return n


@pytest.mark.parametrize('name', ALL_MESSAGES)
def test_every_message_round_trips_text_and_binary(name):
    """A message with every field set survives prototxt and binary serialization."""
    message = _populate(getattr(caffe_pb2, name)())
    assert message.ListFields(), f'{name} has no settable field'
    from_text = text_format.Parse(text_format.MessageToString(message),
                                  getattr(caffe_pb2, name)())
    from_binary = getattr(caffe_pb2, name).FromString(message.SerializeToString())
    assert from_text == message and from_binary == message


def test_golden_caffe_files_reserialize_byte_for_byte(golden):
    """Caffemodels and solverstates written by real Caffe parse and re-encode identically."""
    files = sorted((golden / 'tiny_fcn').glob('*.caffemodel')) + \
        sorted((golden / 'tiny_fcn').glob('*.solverstate'))
    assert len(files) == 7
    for path in files:
        kind = caffe_pb2.NetParameter if path.suffix == '.caffemodel' else caffe_pb2.SolverState
        data = path.read_bytes()
        message = kind.FromString(data)
        assert message.SerializeToString() == data, path.name
