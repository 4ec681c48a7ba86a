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

import numpy as np

from caffe_torch.proto import caffe_pb2
from caffe_torch.proto_assign import (assign_proto, fill_layer, layer_label,  # noqa: F401
                                      param_name_dict)

__all__ = ['NetSpec', 'Top', 'Function', 'Layers', 'Parameters', 'layers', 'params',
           'to_proto', 'param_name_dict', 'assign_proto']


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
        label = layer_label(self.type_name, self.params.get('name'))
        fill_layer(caffe_pb2.LayerParameter(), self.type_name, self.params, label)

    def _update(self, params):
        for key in ('ntop', 'in_place'):
            if key in params:
                raise TypeError('%s: %s can only be given when the layer is declared'
                                % (layer_label(self.type_name, None), key))
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
        label = layer_label(self.type_name, self.params.get('name', layer.name))
        fill_layer(layer, self.type_name, self.params, label)
        return layer

    def __repr__(self):
        return '<Function %s, %d bottoms, %d tops>' % (
            self.type_name, len(self.inputs), self.ntop)


def _check_ntop(type_name, ntop):
    if isinstance(ntop, bool) or not isinstance(ntop, (int, np.integer)):
        raise TypeError('%s: ntop must be an int; got %s %r'
                        % (layer_label(type_name, None), type(ntop).__name__, ntop))
    if ntop < 0:
        raise ValueError('%s: ntop must be >= 0; got %d' % (layer_label(type_name, None), ntop))
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


layers = Layers()
params = Parameters()
