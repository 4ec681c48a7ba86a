"""Nets written in Python: pycaffe's NetSpec DSL, producing caffe_pb2 messages.

`L.<Type>(*bottoms, **kwargs)` declares a layer of Caffe type `<Type>` and returns
its Top (or a tuple of Tops when `ntop` > 1, or the Function itself when
`ntop=0`).  Assigning Tops to attributes of a `NetSpec` names them; `NetSpec.to_proto()`
(or the free `to_proto(*tops)`, which names everything automatically) serializes the
graph into a `NetParameter`, bottoms before the layers that consume them.

Keyword arguments are routed as pycaffe routes them:

* `ntop` (number of tops, default 1) and `in_place` (tops take the bottom names)
  belong to the DSL and never reach the proto;
* keys ending in ``param`` (``param``, ``convolution_param``, ``loss_param``, ...) go on
  the LayerParameter;
* any other key goes into the layer type's own ``<type>_param`` message when that
  message has such a field, else on the LayerParameter (``name``, ``loss_weight``,
  ``include``, ``propagate_down``, ...).

Values follow the field: a list fills a repeated field, a dict fills a message, a list
of dicts adds repeated messages, and a single value given to a repeated field is a
one-element list.  Unnamed tops and layers are named ``<Type><count>`` (``Convolution1``),
a layer being named after its first top.

Departures from pycaffe, each turning one of its crashes or late errors into the
evident meaning or an earlier, clearer error:

* arguments are checked when the layer is declared (and again by `to_proto`, after any
  `NetSpec.update`), not only on serialization; an unknown name or a value of the wrong
  type raises TypeError naming the layer, the argument, what was expected and what was
  given; an out-of-range value raises LayerSetupError (a ValueError);
* Deconvolution and Im2col take their keywords into ``convolution_param``, the message
  Caffe reads for them (pycaffe raised AttributeError);
* tuples and numpy arrays count as lists, an empty list leaves a repeated field empty,
  and a caffe_pb2 message may be given where a dict is expected;
* reading a missing top off a NetSpec raises an error that is both a KeyError (as in
  pycaffe) and an AttributeError (so ``hasattr`` works); assigning something other than
  a Top or a Function to a NetSpec raises TypeError at once;
* the layer graph is walked without recursion, so very deep nets serialize.
"""
from collections import Counter, OrderedDict
import difflib

import numpy as np
from google.protobuf import message as pb_message
from google.protobuf.descriptor import FieldDescriptor

from caffe_torch.errors import LayerSetupError
from caffe_torch.proto import caffe_pb2

__all__ = ['NetSpec', 'Top', 'Function', 'Layers', 'Parameters', 'layers', 'params',
           'to_proto', 'param_name_dict', 'assign_proto']

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


def _fill_layer(layer, type_name, kwargs, label):
    """Write the keyword arguments of a layer declaration into `layer`."""
    type_field = _type_param_field(type_name)
    for key, value in kwargs.items():
        target, prefix = _route(layer, type_field, key, label)
        _assign(target, key, value, label, key, prefix)


def _layer_label(type_name, name):
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


# --- graph ---------------------------------------------------------------------------

class Top:
    """One output blob: top number `n` of the layer `fn`."""

    def __init__(self, fn, n):
        self.fn = fn
        self.n = n

    def to_proto(self):
        """NetParameter with every layer this top depends on, names generated."""
        return to_proto(self)

    def _to_proto(self, layers, names, autonames):
        return self.fn._to_proto(layers, names, autonames)

    def _update(self, params):
        self.fn._update(params)

    def __repr__(self):
        return '<Top %d of %s>' % (self.n, self.fn.type_name)


class Function:
    """A layer declaration: Caffe type, bottom Tops, keyword parameters and its Tops."""

    def __init__(self, type_name, inputs, params):
        self.type_name = type_name
        for index, bottom in enumerate(inputs):
            if not isinstance(bottom, Top):
                raise TypeError('%s input %d is not a Top (type is %s)'
                                % (type_name, index, type(bottom)))
        self.inputs = tuple(inputs)
        self.params = params
        self.ntop = _check_ntop(type_name, self.params.pop('ntop', 1))
        self.in_place = self.params.pop('in_place', False)
        self.tops = tuple(Top(self, n) for n in range(self.ntop))
        self._check_params()

    def _check_params(self):
        """Fill a scratch LayerParameter so bad arguments fail at the declaration."""
        label = _layer_label(self.type_name, self.params.get('name'))
        _fill_layer(caffe_pb2.LayerParameter(), self.type_name, self.params, label)

    def _update(self, params):
        for key in ('ntop', 'in_place'):
            if key in params:
                raise TypeError('%s: %s can only be given when the layer is declared'
                                % (_layer_label(self.type_name, None), key))
        self.params.update(params)
        self._check_params()

    def _get_name(self, names, autonames):
        if self not in names:
            if self.ntop > 0:
                names[self] = self._get_top_name(self.tops[0], names, autonames)
            else:
                names[self] = _autoname(self.type_name, autonames)
        return names[self]

    def _get_top_name(self, top, names, autonames):
        if top not in names:
            names[top] = _autoname(top.fn.type_name, autonames)
        return names[top]

    def _to_proto(self, layers, names, autonames):
        _emit(self, layers, names, autonames)

    def _make_layer(self, layers, names, autonames):
        """This layer's LayerParameter; its bottoms' layers must be in `layers`."""
        layer = caffe_pb2.LayerParameter()
        layer.type = self.type_name
        layer.bottom.extend(layers[b.fn].top[b.n] for b in self.inputs)
        if self.in_place:
            layer.top.extend(layer.bottom)
        else:
            for top in self.tops:
                layer.top.append(self._get_top_name(top, names, autonames))
        layer.name = self._get_name(names, autonames)
        label = _layer_label(self.type_name, self.params.get('name', layer.name))
        _fill_layer(layer, self.type_name, self.params, label)
        return layer

    def __repr__(self):
        return '<Function %s, %d bottoms, %d tops>' % (
            self.type_name, len(self.inputs), self.ntop)


def _check_ntop(type_name, ntop):
    if isinstance(ntop, bool) or not isinstance(ntop, (int, np.integer)):
        raise TypeError('%s: ntop must be an int; got %s %r'
                        % (_layer_label(type_name, None), type(ntop).__name__, ntop))
    if ntop < 0:
        raise ValueError('%s: ntop must be >= 0; got %d' % (_layer_label(type_name, None), ntop))
    return int(ntop)


def _autoname(type_name, autonames):
    autonames[type_name] += 1
    return type_name + str(autonames[type_name])


def _function_of(node, what):
    if isinstance(node, Top):
        return node.fn
    if isinstance(node, Function):
        return node
    raise TypeError('%s must be a Top or a Function (a layer declared with ntop=0); '
                    'got %s%s' % (what, type(node).__name__, _tuple_hint(node)))


def _tuple_hint(node):
    if isinstance(node, tuple):
        return (' (a layer with ntop > 1 returns a tuple: unpack it, '
                'e.g. n.a, n.b = L.X(..., ntop=2))')
    return ''


def _emit(fn, layers, names, autonames):
    """Add `fn`'s layer to `layers` after all the layers it depends on (depth first)."""
    if fn in layers:
        return
    stack = [(fn, iter(fn.inputs))]
    while stack:
        node, pending = stack[-1]
        bottom_fn = next((b.fn for b in pending if b.fn not in layers), None)
        if bottom_fn is not None:
            stack.append((bottom_fn, iter(bottom_fn.inputs)))
            continue
        stack.pop()
        if node not in layers:
            layers[node] = node._make_layer(layers, names, autonames)


def _net_of(layers):
    net = caffe_pb2.NetParameter()
    net.layer.extend(layers.values())
    return net


def to_proto(*tops):
    """NetParameter with every layer needed to compute `tops`, all names generated."""
    layers = OrderedDict()
    autonames = Counter()
    for index, top in enumerate(tops):
        fn = _function_of(top, 'to_proto argument %d' % index)
        _emit(fn, layers, {}, autonames)
    return _net_of(layers)


class _MissingTop(KeyError, AttributeError):
    """A name not assigned in a NetSpec (KeyError as in pycaffe, AttributeError for hasattr)."""

    def __str__(self):
        return str(self.args[0]) if self.args else ''


class NetSpec:
    """Named tops: assign Tops as attributes (or items), then call `to_proto()`.

    Each assigned name becomes its top's blob name and, for a layer's first top, the
    layer's name; everything not assigned is named automatically.
    """

    def __init__(self):
        object.__setattr__(self, 'tops', OrderedDict())

    def __setattr__(self, name, value):
        _function_of(value, 'NetSpec.%s' % name)
        self.tops[name] = value
        if isinstance(value, Top):
            value._spec_name = name  # read by coord_map's error messages

    def __getattr__(self, name):
        tops = self.__dict__.get('tops')
        if name.startswith('__') or tops is None:
            raise AttributeError(name)
        if name not in tops:
            raise _MissingTop('NetSpec has no top %r; assigned: %s'
                              % (name, ', '.join(tops) or 'none'))
        return tops[name]

    def __setitem__(self, name, value):
        self.__setattr__(name, value)

    def __getitem__(self, name):
        return self.__getattr__(name)

    def __delitem__(self, name):
        del self.tops[name]

    def keys(self):
        """Assigned names, in assignment order."""
        return list(self.tops.keys())

    def vals(self):
        """Assigned Tops (and Functions), in assignment order."""
        return list(self.tops.values())

    def update(self, name, params):
        """Add or replace keyword parameters of the layer producing top `name`."""
        self.tops[name]._update(params)

    def to_proto(self):
        """NetParameter with every layer needed for the assigned tops, using their names."""
        names = {value: key for key, value in self.tops.items()}
        autonames = Counter()
        layers = OrderedDict()
        for value in self.tops.values():
            _emit(_function_of(value, 'NetSpec value'), layers, names, autonames)
        return _net_of(layers)


class Layers:
    """`L.<Type>(*bottoms, **kwargs)` declares a layer of Caffe type `<Type>`."""

    def __getattr__(self, type_name):
        if type_name.startswith('_'):
            raise AttributeError(type_name)

        def layer_fn(*args, **kwargs):
            fn = Function(type_name, args, kwargs)
            if fn.ntop == 0:
                return fn
            if fn.ntop == 1:
                return fn.tops[0]
            return fn.tops
        layer_fn.__name__ = layer_fn.__qualname__ = type_name
        return layer_fn


class _EnumScope:
    """`P.<Type>`: resolves enum value names of caffe_pb2's `<Type>Parameter`."""

    def __init__(self, type_name):
        self._type_name = type_name

    def __getattr__(self, value_name):
        if value_name.startswith('_'):
            raise AttributeError(value_name)
        owner, owner_name = self._owner()
        try:
            return getattr(owner, value_name)
        except AttributeError:
            raise AttributeError('%s has no enum value %r; known: %s'
                                 % (owner_name, value_name, _enum_names(owner))) from None

    def _owner(self):
        for owner_name in (self._type_name + 'Parameter', self._type_name):
            owner = getattr(caffe_pb2, owner_name, None)
            if owner is not None:
                return owner, owner_name
        raise AttributeError('caffe_pb2 has neither %sParameter nor an enum %s'
                             % (self._type_name, self._type_name))


def _enum_names(owner):
    descriptor = getattr(owner, 'DESCRIPTOR', None)
    if hasattr(descriptor, 'enum_values_by_name'):
        return ', '.join(descriptor.enum_values_by_name) or 'none'
    if hasattr(owner, 'keys'):
        return ', '.join(owner.keys())
    return 'none'


class Parameters:
    """`P.<Type>.<VALUE>` is the caffe_pb2 enum constant, e.g. `P.Pooling.MAX`."""

    def __getattr__(self, type_name):
        if type_name.startswith('_'):
            raise AttributeError(type_name)
        return _EnumScope(type_name)


_param_names = param_name_dict()
layers = Layers()
params = Parameters()
