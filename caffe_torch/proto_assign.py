"""Keyword arguments into LayerParameter messages: NetSpec's routing and type checks.

A key goes on the LayerParameter when it ends in ``param`` or when the layer type's own
``<type>_param`` message lacks it; otherwise into that message. Values follow the field:
lists fill repeated fields, dicts fill messages, lists of dicts add repeated messages.
Wrong names and wrong value types raise TypeError naming the layer, the argument, the
field's path, what was expected and what was given.
"""
import difflib

import numpy as np
from google.protobuf import message as pb_message
from google.protobuf.descriptor import FieldDescriptor

from caffe_torch.errors import LayerSetupError
from caffe_torch.proto import caffe_pb2

# Layer types whose parameters live in another type's message.
_SHARED_PARAM_MESSAGES = {'Deconvolution': 'convolution', 'Im2col': 'convolution'}

_SCALAR_TYPE_NAMES = {
    FieldDescriptor.TYPE_DOUBLE: 'double', FieldDescriptor.TYPE_FLOAT: 'float',
    FieldDescriptor.TYPE_INT64: 'int64', FieldDescriptor.TYPE_UINT64: 'uint64',
    FieldDescriptor.TYPE_INT32: 'int32', FieldDescriptor.TYPE_UINT32: 'uint32',
    FieldDescriptor.TYPE_FIXED64: 'fixed64', FieldDescriptor.TYPE_FIXED32: 'fixed32',
    FieldDescriptor.TYPE_SFIXED32: 'sfixed32', FieldDescriptor.TYPE_SFIXED64: 'sfixed64',
    FieldDescriptor.TYPE_SINT32: 'sint32', FieldDescriptor.TYPE_SINT64: 'sint64',
    FieldDescriptor.TYPE_BOOL: 'bool', FieldDescriptor.TYPE_STRING: 'string',
    FieldDescriptor.TYPE_BYTES: 'bytes',
}


# --- parameter routing ---------------------------------------------------------------

def param_name_dict():
    """Map layer type names to their LayerParameter field stems, read off caffe_pb2.

    Each field ``<stem>_param`` of message type ``<Type>Parameter`` gives the entry
    ``'<Type>': '<stem>'``, e.g. ``'InnerProduct': 'inner_product'``.
    """
    names = {}
    for field in caffe_pb2.LayerParameter.DESCRIPTOR.fields:
        message = field.message_type
        if field.name.endswith('_param') and message is not None \
                and message.name.endswith('Parameter'):
            names[message.name[:-len('Parameter')]] = field.name[:-len('_param')]
    return names


def _type_param_field(type_name):
    """The LayerParameter field holding `type_name`'s own parameters, or None."""
    stem = _param_names.get(type_name) or _SHARED_PARAM_MESSAGES.get(type_name)
    return None if stem is None else stem + '_param'


def _fields(descriptor):
    return descriptor.fields_by_name


def _route(layer, type_field, key, label):
    """Pick the message (LayerParameter or its type's param) that receives `key`."""
    layer_fields = _fields(layer.DESCRIPTOR)
    if key.endswith('param') and key in layer_fields:
        return layer, ''
    if type_field is not None:
        type_message = layer_fields[type_field].message_type
        if key in _fields(type_message):
            return getattr(layer, type_field), type_field + '.'
    if key in layer_fields:
        return layer, ''
    raise TypeError(_unknown_argument_message(layer, type_field, key, label))


def _unknown_argument_message(layer, type_field, key, label):
    known = list(_fields(layer.DESCRIPTOR))
    where = 'not a field of LayerParameter'
    if type_field is not None:
        type_message = _fields(layer.DESCRIPTOR)[type_field].message_type
        known += list(_fields(type_message))
        where = 'a field neither of %s (%s) nor of LayerParameter' % (
            type_message.name, type_field)
    return ("%s got an unexpected keyword argument '%s': it is %s%s"
            % (label, key, where, _did_you_mean(key, known)))


def fill_layer(layer, type_name, kwargs, label):
    """Write the keyword arguments of a layer declaration into `layer`."""
    type_field = _type_param_field(type_name)
    for key, value in kwargs.items():
        target, prefix = _route(layer, type_field, key, label)
        _assign(target, key, value, label, key, prefix)


def layer_label(type_name, name):
    return '%s layer %r' % (type_name, name) if name else '%s layer' % type_name


# --- value assignment ----------------------------------------------------------------

def assign_proto(proto, name, val):
    """Set field `name` of message `proto` from a Python value (lists, dicts, scalars)."""
    _assign(proto, name, val, proto.DESCRIPTOR.name, name, '')


def _assign(message, name, value, label, argument, prefix):
    """Set `message.<name>`; `argument`/`prefix` say where it came from, for errors."""
    field = _fields(message.DESCRIPTOR).get(name)
    path = prefix + name
    if field is None:
        raise TypeError("%s, argument %s (%s): %s has no field '%s'%s"
                        % (label, argument, path, message.DESCRIPTOR.name, name,
                           _did_you_mean(name, _fields(message.DESCRIPTOR))))
    where = (label, argument, path, field)
    if field.is_repeated:
        _assign_repeated(message, field, value, where)
    elif field.message_type is not None:
        _fill_message(getattr(message, name), value, where)
    else:
        _assign_scalar(message, field, value, where)


def _did_you_mean(name, known):
    close = difflib.get_close_matches(name, list(known), n=3)
    return ' (did you mean %s?)' % ' or '.join(repr(c) for c in close) if close else ''


def _as_list(value):
    if isinstance(value, np.ndarray):
        return value.tolist() if value.ndim else [value.item()]
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _assign_repeated(message, field, value, where):
    container = getattr(message, field.name)
    for item in _as_list(value):
        if field.message_type is not None:
            _fill_message(container.add(), item, where)
        else:
            _store(lambda v: container.append(v), item, where)


def _assign_scalar(message, field, value, where):
    if isinstance(value, (list, tuple, dict, np.ndarray)):
        raise TypeError(_wrong_type_message(where, value))
    _store(lambda v: setattr(message, field.name, v), value, where)


def _store(setter, value, where):
    """Run `setter(value)`, turning protobuf's type/range errors into ours."""
    try:
        setter(value)
    except TypeError:
        raise TypeError(_wrong_type_message(where, value)) from None
    except ValueError as error:
        label, argument, path, field = where
        raise LayerSetupError('%s, argument %s (%s): value %r is not a valid %s (%s)'
                              % (label, argument, path, value,
                                 _expected(field, singular=True), error)) from None


def _fill_message(submessage, value, where):
    label, argument, path, field = where
    if isinstance(value, pb_message.Message) \
            and value.DESCRIPTOR.full_name == submessage.DESCRIPTOR.full_name:
        submessage.CopyFrom(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _assign(submessage, key, item, label, argument, path + '.')
    else:
        raise TypeError(_wrong_type_message(where, value))


def _expected(field, singular=False):
    if field.enum_type is not None:
        values = ', '.join(v.name for v in field.enum_type.values)
        kind = '%s value (one of %s)' % (field.enum_type.name, values)
    elif field.message_type is not None:
        kind = 'dict of %s fields' % field.message_type.name
    else:
        kind = _SCALAR_TYPE_NAMES.get(field.type, 'value')
    if field.is_repeated and not singular:
        return '%s, or a list of them' % kind
    return kind


def _wrong_type_message(where, value):
    label, argument, path, field = where
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + '...'
    return ('%s, argument %s (%s): expected %s; got %s %s'
            % (label, argument, path, _expected(field), type(value).__name__, shown))


_param_names = param_name_dict()
