"""Coordinate maps between tops of a NetSpec graph (pycaffe's coord_map).

A coordinate map is a triple ``(axis, a, b)``: a position ``x`` along the spatial axes
after `axis` of one blob lines up with position ``a * x + b`` of another.  ``a`` and
``b`` are numpy arrays with one entry per spatial axis (or one entry for all of them);
``axis`` is the last non-spatial axis (1 for N x C x H x W), or None for a map that
holds on every axis (the identity of element-wise layers).

Each layer maps its bottom's coordinates to its top's:

* Convolution, Pooling, Im2col (kernel k, stride s, pad p, dilation d, extent
  e = (k - 1) d + 1): ``a = 1 / s``, ``b = (p - (e - 1) / 2) / s``;
* Deconvolution: ``a = s``, ``b = (e - 1) / 2 - p``;
* Crop (offset o): ``a = 1``, ``b = -o``;
* the element-wise layers in PASS_THROUGH_LAYERS: the identity ``(None, 1, 0)``.

`coord_map_from_to` walks back from two tops to a common ancestor, composing the maps
on the way, and `crop` turns the result into the Crop layer that aligns one top with
another: for FCN-32s, ``crop(n.upscore, n.data)`` finds offset 19.

Failures raise CoordMapError (a RuntimeError and ValueError) naming the tops, the values
and a fix; `crop`'s checks, which pycaffe asserts, raise CropError, an AssertionError too,
so code catching pycaffe's AssertionError still catches them. Departures from pycaffe: 2-D
``kernel_h`` / ``kernel_w``, ``pad_h`` / ``pad_w``, ``stride_h`` / ``stride_w`` are supported, as are
parameters given inside ``convolution_param`` / ``pooling_param`` dicts (pycaffe read only
``convolution_param`` and refused the _h/_w fields); global pooling stops the walk
instead of failing on a missing kernel size; `crop` of two tops related only by
element-wise layers gives a spatial crop (axis 2) with offset 0; scales and offsets are
compared with a 1e-9 tolerance, so strides like 3 x 3 against 9 are not rejected over
floating-point rounding.
"""
import numpy as np
from google.protobuf import message as pb_message

from caffe_torch.errors import CoordMapError
from caffe_torch.net_spec import Top, layers as L

__all__ = ['PASS_THROUGH_LAYERS', 'UndefinedMapException', 'AxisMismatchException',
           'conv_params', 'crop_params', 'coord_map', 'compose', 'inverse',
           'coord_map_from_to', 'crop']

PASS_THROUGH_LAYERS = ['AbsVal', 'BatchNorm', 'Bias', 'BNLL', 'Dropout',
                       'Eltwise', 'ELU', 'Log', 'LRN', 'Exp', 'MVN', 'Power',
                       'ReLU', 'PReLU', 'Scale', 'Sigmoid', 'Split', 'TanH',
                       'Threshold']

_CONV_LIKE = ('Convolution', 'Pooling', 'Im2col')
_TOLERANCE = 1e-9


class CropError(CoordMapError, AssertionError):
    """Two tops that no Crop can align: scale not 1, negative or fractional offset."""


class UndefinedMapException(CoordMapError):
    """A layer type with no coordinate map (InnerProduct, global pooling, ...)."""


class AxisMismatchException(CoordMapError):
    """Two coordinate maps over different axes cannot be composed."""


# --- layer parameters ----------------------------------------------------------------

def _message_dict(value):
    """A caffe_pb2 message given as a layer parameter, as a dict of its set fields."""
    return {field.name: (list(item) if field.is_repeated else item)
            for field, item in value.ListFields()}


def _spatial_params(fn, field):
    """`fn`'s keyword arguments, merged with those given inside its `field` dict."""
    nested = fn.params.get(field) or {}
    if isinstance(nested, pb_message.Message):
        nested = _message_dict(nested)
    merged = {key: value for key, value in fn.params.items() if key != field}
    merged.update(nested)
    return merged


def _layer_text(fn):
    name = fn.params.get('name')
    return '%s layer %r' % (fn.type_name, name) if name else '%s layer' % fn.type_name


def _given(params, key):
    value = params.get(key)
    return value is not None and not (isinstance(value, (list, tuple)) and not value)


def _per_axis(fn, params, key, stem, default, required=False):
    """`key` as an array over spatial axes: `key` (scalar or N-d) or `stem`_h/`stem`_w."""
    h_key, w_key = stem + '_h', stem + '_w'
    if _given(params, h_key) or _given(params, w_key):
        if _given(params, key):
            raise CoordMapError('%s: give either %s or %s/%s, not both'
                                % (_layer_text(fn), key, h_key, w_key))
        if required and not (_given(params, h_key) and _given(params, w_key)):
            raise CoordMapError('%s: a non-square kernel needs both %s and %s'
                                % (_layer_text(fn), h_key, w_key))
        return np.array([params.get(h_key, default), params.get(w_key, default)])
    if _given(params, key):
        return np.array(params[key], ndmin=1)
    if required:
        raise CoordMapError('%s has neither %s nor %s/%s: cannot map its coordinates '
                            'without a kernel size' % (_layer_text(fn), key, h_key, w_key))
    return np.array(default, ndmin=1)


def conv_params(fn):
    """(axis, stride, kernel extent, pad) of a Convolution/Deconvolution/Im2col/Pooling.

    The extent is the dilated kernel size ``(kernel_size - 1) * dilation + 1``.  Arrays
    hold one entry per spatial axis, or a single entry shared by all of them.
    """
    is_pooling = fn.type_name == 'Pooling'
    params = _spatial_params(fn, 'pooling_param' if is_pooling else 'convolution_param')
    if is_pooling and params.get('global_pooling'):
        raise UndefinedMapException('%s uses global pooling: its output does not depend '
                                    'on input position' % _layer_text(fn))
    kernel = _per_axis(fn, params, 'kernel_size', 'kernel', None, required=True)
    dilation = np.array(1 if is_pooling else params.get('dilation') or 1, ndmin=1)
    axis = 1 if is_pooling else params.get('axis', 1)
    return (axis, _per_axis(fn, params, 'stride', 'stride', 1), (kernel - 1) * dilation + 1,
            _per_axis(fn, params, 'pad', 'pad', 0))


def crop_params(fn):
    """(axis, offset) of a Crop layer, with Caffe's defaults (axis 2, offset 0)."""
    params = _spatial_params(fn, 'crop_param')
    offset = params.get('offset')
    if offset is None or (isinstance(offset, (list, tuple)) and not offset):
        offset = 0
    return params.get('axis', 2), np.array(offset, ndmin=1)


# --- the algebra ---------------------------------------------------------------------

def coord_map(fn):
    """The map (axis, a, b) from `fn`'s bottom coordinates to its top coordinates.

    Raises UndefinedMapException for layer types without one.
    """
    if fn.type_name in _CONV_LIKE:
        axis, stride, extent, pad = conv_params(fn)
        return axis, 1 / stride, (pad - (extent - 1) / 2) / stride
    if fn.type_name == 'Deconvolution':
        axis, stride, extent, pad = conv_params(fn)
        return axis, stride, (extent - 1) / 2 - pad
    if fn.type_name in PASS_THROUGH_LAYERS:
        return None, 1, 0
    if fn.type_name == 'Crop':
        axis, offset = crop_params(fn)
        return axis - 1, 1, -offset  # the crop axis is the first spatial one
    if fn.type_name == 'Concat' and _concat_axis(fn) == 1:
        return None, 1, 0  # stacking channels moves no pixel (GoogLeNet's inceptions)
    raise UndefinedMapException('%s has no coordinate map' % _layer_text(fn))


def _concat_axis(fn):
    params = _spatial_params(fn, 'concat_param')
    return params.get('axis', params.get('concat_dim', 1))


def compose(base_map, next_map):
    """The map doing `next_map` first, then `base_map`: x -> a1 (a2 x + b2) + b1."""
    ax1, a1, b1 = base_map
    ax2, a2, b2 = next_map
    if ax1 is None:
        axis = ax2
    elif ax2 is None or ax1 == ax2:
        axis = ax1
    else:
        raise AxisMismatchException('cannot compose coordinate maps over axis %s and '
                                    'axis %s' % (ax1, ax2))
    try:
        return axis, a1 * a2, a1 * b2 + b1
    except ValueError:
        raise CoordMapError('cannot compose coordinate maps over different numbers of '
                            'spatial axes (scales %s and %s)' % (a1, a2)) from None


def inverse(coord_map):
    """The map undoing `coord_map`: x -> (x - b) / a."""
    ax, a, b = coord_map
    return ax, 1 / a, -b / a


# --- walking the graph ---------------------------------------------------------------

def _mappable_bottoms(top):
    """Bottoms whose coordinates map to `top`: all, except a Crop's reference bottom; a
    channel Concat is walked through its first bottom (its bottoms share one geometry
    only if the net was built that way, which the first one stands for)."""
    bottoms = top.fn.inputs
    return bottoms[:1] if top.fn.type_name in ('Crop', 'Concat') else bottoms


def _step_back(maps, top, frontier, stops):
    """Extend `maps` (ancestor -> start) from `top` to its bottoms."""
    bottoms = _mappable_bottoms(top)
    if not bottoms:
        return
    try:
        step = coord_map(top.fn)
    except UndefinedMapException:
        stops.add(top.fn.type_name)
        return
    for bottom in bottoms:
        try:
            maps[bottom] = compose(maps[top], step)
        except CoordMapError as error:
            raise type(error)('%s, at %s' % (error, _layer_text(top.fn))) from None
        frontier.add(bottom)


def _describe(top):
    """A top, for messages: its NetSpec name if it has one, and its layer."""
    name = getattr(top, '_spec_name', None)
    kind = 'top %d of %s' % (top.n, _layer_text(top.fn))
    return '%r (%s)' % (name, kind) if name else 'unnamed %s' % kind


def _check_top(top, role):
    if not isinstance(top, Top):
        raise TypeError('coord_map: %s must be a Top; got %s' % (role, type(top).__name__))


def coord_map_from_to(top_from, top_to):
    """The map (axis, a, b) taking coordinates of `top_from` to those of `top_to`.

    Both tops are walked back to a common ancestor through layers with a coordinate map;
    the result is the map ancestor -> `top_to` after the inverse of ancestor -> `top_from`.
    Raises CoordMapError when no common ancestor is reachable that way.
    """
    _check_top(top_from, 'top_from')
    _check_top(top_to, 'top_to')
    stops = set()
    from_maps = {top_from: (None, 1, 0)}
    frontier = {top_from}
    while frontier:
        _step_back(from_maps, frontier.pop(), frontier, stops)
    to_maps = {top_to: (None, 1, 0)}
    frontier = {top_to}
    while frontier:
        top = frontier.pop()
        if top in from_maps:
            return compose(to_maps[top], inverse(from_maps[top]))
        _step_back(to_maps, top, frontier, stops)
    raise CoordMapError(_unconnected_message(top_from, top_to, stops))


def _unconnected_message(top_from, top_to, stops):
    stopped = ('; the walk stopped at %s, which %s no coordinate map'
               % (', '.join(sorted(stops)), 'has' if len(stops) == 1 else 'have')
               if stops else '')
    return ('could not compute map from %s to %s: no common ancestor is reachable '
            'through Convolution, Pooling, Deconvolution, Im2col, Crop, channel Concat or '
            'element-wise '
            'layers%s; are they connected by spatial layers?'
            % (_describe(top_from), _describe(top_to), stopped))


def crop(top_from, top_to):
    """A Crop layer cutting `top_from` down to the region aligned with `top_to`.

    Returns ``L.Crop(top_from, top_to, crop_param=dict(axis=..., offset=[...]))`` with
    the offsets read off the coordinate map between the two tops.
    """
    axis, a, b = coord_map_from_to(top_from, top_to)
    a, b = np.atleast_1d(np.asarray(a, dtype=float)), np.atleast_1d(np.asarray(b, dtype=float))
    _check_crop(top_from, top_to, a, b)
    offset = [int(v) for v in np.round(-b)]
    crop_axis = 2 if axis is None else int(axis) + 1  # first spatial axis
    return L.Crop(top_from, top_to, crop_param=dict(axis=crop_axis, offset=offset))


def _check_crop(top_from, top_to, a, b):
    pair = 'cannot crop %s to %s' % (_describe(top_from), _describe(top_to))
    if not np.all(np.abs(a - 1) <= _TOLERANCE):
        raise CropError(
            '%s: scale mismatch, the coordinate map between them has scale a = %s where '
            'it must be 1 on every axis; make the upsampling (Deconvolution stride) equal '
            'the total downsampling (product of Convolution/Pooling strides) between them'
            % (pair, a.tolist()))
    if np.any(b > _TOLERANCE):
        raise CropError(
            '%s: it would need a negative offset (map shift b = %s, offset = -b); the '
            'first top does not cover the second. Pad the input more (FCN pads conv1_1 '
            'by 100) or lower the Deconvolution pad' % (pair, b.tolist()))
    if not np.all(np.abs(np.round(b) - b) <= _TOLERANCE):
        raise CropError(
            '%s: non-integer offset (map shift b = %s, offset = -b); the two grids are '
            'misaligned by a fraction of a pixel. Use odd kernel sizes, or kernel size '
            '= 2 x stride for the Deconvolution, so the centres align' % (pair, b.tolist()))
