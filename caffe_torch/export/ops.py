"""Differentiable functional forms of Caffe's layers, one per type, for `to_module`.

Each op is `op(layer_param, bottoms, params) -> tops` on torch tensors: what the engine's
layer computes in its TEST forward (its checked semantics: Caffe's ceil-mode pooling with
windows clipped to the padded input, Crop offsets, Eltwise coefficients, LRN's alpha / n),
written with torch functions so that autograd, AMP, torch.compile, TorchScript tracing,
torch.export and ONNX export all see it. Dropout follows nn.Module.training (Caffe's
scaling by 1 / (1 - ratio)); everything else is the TEST phase.
"""
import math

import torch
import torch.nn.functional as F

from caffe_torch.proto import caffe_pb2

OPS = {}


class NoFunctionalForm(ValueError):
    """A layer that to_module cannot express as a differentiable function."""


def op(*types):
    def register(function):
        for name in types:
            OPS[name] = function
        return function
    return register


def _pair(repeated, h, w, default):
    """Caffe's geometry fields: the repeated (or single) value for both axes, else the
    _h/_w pair, else the default."""
    if repeated:
        return repeated[0], repeated[-1]
    if h is not None:
        return h, w
    return default, default


def _conv_geometry(p):
    pad = _pair(list(p.pad), p.pad_h if p.HasField('pad_h') else None, p.pad_w, 0)
    stride = _pair(list(p.stride), p.stride_h if p.HasField('stride_h') else None,
                   p.stride_w, 1)
    return pad, stride, _pair(list(p.dilation), None, None, 1)


def _optional(p, field):
    return [getattr(p, field)] if p.HasField(field) else []


def _spatial_2d(layer, x, what):
    if x.dim() != 4:
        raise NoFunctionalForm(f'layer "{layer.name}" ({layer.type}): {what} of a '
                               f'{x.dim()}-axis bottom; to_module handles N x C x H x W')


@op('Convolution')
def convolution(layer, bottoms, params):
    p = layer.convolution_param
    pad, stride, dilation = _conv_geometry(p)
    tops = []
    for x in bottoms:
        _spatial_2d(layer, x, 'a convolution')
        bias = params[1] if p.bias_term else None
        tops.append(F.conv2d(x, params[0], bias, stride, pad, dilation, p.group or 1))
    return tops


@op('Deconvolution')
def deconvolution(layer, bottoms, params):
    p = layer.convolution_param
    pad, stride, dilation = _conv_geometry(p)
    bias = params[1] if p.bias_term else None
    for x in bottoms:
        _spatial_2d(layer, x, 'a deconvolution')
    return [F.conv_transpose2d(x, params[0], bias, stride, pad, 0, p.group or 1, dilation)
            for x in bottoms]


@op('Pooling')
def pooling(layer, bottoms, params):
    """Caffe's output size, ceil((H + 2p - k) / s) + 1 less one where the last window
    would start in the padding, is torch's ceil_mode; so are AVE's divisors (windows
    clipped to the padded input). torch needs pad <= kernel / 2, as Caffe's nets have."""
    p, x = layer.pooling_param, bottoms[0]
    _spatial_2d(layer, x, 'pooling')
    if p.global_pooling:
        kernel, pad, stride = tuple(x.shape[2:]), (0, 0), (1, 1)
    else:
        kernel = _pair(_optional(p, 'kernel_size'), p.kernel_h or None, p.kernel_w, 1)
        pad = _pair(_optional(p, 'pad'), p.pad_h if p.HasField('pad_h') else None,
                    p.pad_w, 0)
        stride = _pair(_optional(p, 'stride'),
                       p.stride_h if p.HasField('stride_h') else None, p.stride_w, 1)
    if any(2 * q > k for q, k in zip(pad, kernel)):
        raise NoFunctionalForm(f'layer "{layer.name}": pad {pad} over half the kernel '
                               f'{kernel}, which torch pooling does not take')
    if p.pool == caffe_pb2.PoolingParameter.MAX:
        return [F.max_pool2d(x, kernel, stride, pad, ceil_mode=True)]
    if p.pool == caffe_pb2.PoolingParameter.AVE:
        return [F.avg_pool2d(x, kernel, stride, pad, ceil_mode=True, count_include_pad=True)]
    raise NoFunctionalForm(f'layer "{layer.name}": STOCHASTIC pooling is random in TRAIN '
                           f'and has no torch counterpart')


@op('InnerProduct')
def inner_product(layer, bottoms, params):
    p, x = layer.inner_product_param, bottoms[0]
    axis = p.axis % x.dim()
    flat = x.flatten(axis)
    weight = params[0].t() if p.transpose else params[0]
    return [F.linear(flat, weight, params[1] if p.bias_term else None)]


@op('ReLU')
def relu(layer, bottoms, params):
    slope = layer.relu_param.negative_slope
    return [F.leaky_relu(bottoms[0], slope) if slope else F.relu(bottoms[0])]


@op('Sigmoid')
def sigmoid(layer, bottoms, params):
    return [torch.sigmoid(bottoms[0])]


@op('TanH')
def tanh(layer, bottoms, params):
    return [torch.tanh(bottoms[0])]


@op('AbsVal')
def absval(layer, bottoms, params):
    return [bottoms[0].abs()]


@op('BNLL')
def bnll(layer, bottoms, params):
    return [F.softplus(bottoms[0])]  # log(1 + exp(x)), computed stably as Caffe does


@op('Power')
def power(layer, bottoms, params):
    p = layer.power_param
    return [(p.shift + p.scale * bottoms[0]) ** p.power]


@op('Exp')
def exp(layer, bottoms, params):
    p = layer.exp_param
    log_base = 1.0 if p.base == -1 else math.log(p.base)
    return [torch.exp(log_base * (p.shift + p.scale * bottoms[0]))]


@op('Log')
def log(layer, bottoms, params):
    p = layer.log_param
    inverse_log_base = 1.0 if p.base == -1 else 1 / math.log(p.base)
    return [torch.log(p.shift + p.scale * bottoms[0]) * inverse_log_base]


@op('Threshold')
def threshold(layer, bottoms, params):
    return [(bottoms[0] > layer.threshold_param.threshold).to(bottoms[0].dtype)]


@op('Dropout')
def dropout(layer, bottoms, params, training=False):
    return [F.dropout(bottoms[0], layer.dropout_param.dropout_ratio, training)]


@op('Split')
def split(layer, bottoms, params):
    return [bottoms[0]] * len(layer.top)


@op('Silence')
def silence(layer, bottoms, params):
    return []


@op('Crop')
def crop(layer, bottoms, params):
    """bottom[0] cut to bottom[1]'s size from `axis` on, at the given offsets (one for
    all axes, or one per axis); the sizes are read at run time, so H and W may vary."""
    x, reference = bottoms
    p = layer.crop_param
    axis = p.axis % x.dim()
    offsets = list(p.offset) or [0]
    for i, dim in enumerate(range(axis, x.dim())):
        offset = offsets[0] if len(offsets) == 1 else offsets[i]
        x = x.narrow(dim, offset, reference.shape[dim])
    return [x]


@op('Eltwise')
def eltwise(layer, bottoms, params):
    p = layer.eltwise_param
    if p.operation == caffe_pb2.EltwiseParameter.PROD:
        out = bottoms[0]
        for b in bottoms[1:]:
            out = out * b
    elif p.operation == caffe_pb2.EltwiseParameter.MAX:
        out = bottoms[0]
        for b in bottoms[1:]:
            out = torch.maximum(out, b)
    else:
        coeff = list(p.coeff) or [1.0] * len(bottoms)
        out = sum(c * b if c != 1 else b for c, b in zip(coeff, bottoms))
    return [out]


@op('Concat')
def concat(layer, bottoms, params):
    p = layer.concat_param
    axis = p.concat_dim if p.HasField('concat_dim') else p.axis
    return [torch.cat(bottoms, dim=axis % bottoms[0].dim())]


@op('Slice')
def slice_(layer, bottoms, params):
    p, x = layer.slice_param, bottoms[0]
    axis = (p.slice_dim if p.HasField('slice_dim') else p.axis) % x.dim()
    points = [0] + list(p.slice_point) + [x.shape[axis]]
    if not p.slice_point:
        step = x.shape[axis] // len(layer.top)
        points = [i * step for i in range(len(layer.top) + 1)]
    return [x.narrow(axis, a, b - a) for a, b in zip(points, points[1:])]


def _broadcast(value, x, axis):
    """`value` laid along x's axes axis .. axis + its rank, for Scale and Bias."""
    shape = [1] * x.dim()
    shape[axis:axis + value.dim()] = value.shape
    return value.reshape(shape)


@op('Scale')
def scale(layer, bottoms, params):
    p, x = layer.scale_param, bottoms[0]
    axis = p.axis % x.dim()
    factor = bottoms[1] if len(bottoms) > 1 else params[0]
    out = x * _broadcast(factor, x, axis)
    if p.bias_term:
        out = out + _broadcast(params[-1], x, axis)
    return [out]


@op('Bias')
def bias(layer, bottoms, params):
    p, x = layer.bias_param, bottoms[0]
    value = bottoms[1] if len(bottoms) > 1 else params[0]
    return [x + _broadcast(value, x, p.axis % x.dim())]


@op('Flatten')
def flatten(layer, bottoms, params):
    p, x = layer.flatten_param, bottoms[0]
    return [x.flatten(p.axis % x.dim(), p.end_axis % x.dim())]


@op('Reshape')
def reshape(layer, bottoms, params):
    p, x = layer.reshape_param, bottoms[0]
    start = p.axis % (x.dim() + 1)
    end = x.dim() if p.num_axes == -1 else start + p.num_axes
    dims = [x.shape[start + i] if d == 0 else d for i, d in enumerate(p.shape.dim)]
    return [x.reshape(list(x.shape[:start]) + dims + list(x.shape[end:]))]


@op('Softmax')
def softmax(layer, bottoms, params):
    return [F.softmax(bottoms[0], dim=layer.softmax_param.axis % bottoms[0].dim())]


@op('LRN')
def lrn(layer, bottoms, params):
    p, x = layer.lrn_param, bottoms[0]
    if p.norm_region == caffe_pb2.LRNParameter.ACROSS_CHANNELS:
        return [F.local_response_norm(x, p.local_size, p.alpha, p.beta, p.k)]
    pad = (p.local_size - 1) // 2  # WITHIN_CHANNEL: Caffe's pooled squares, pad counted
    mean = F.avg_pool2d(x * x, p.local_size, 1, pad, count_include_pad=True)
    return [x * (1 + p.alpha * mean) ** -p.beta]


@op('ArgMax')
def argmax(layer, bottoms, params):
    """The top_k largest along `axis` (their values with out_max_val), or per item over
    everything but the batch: indices, and values beside them with out_max_val. Ties may
    come in another order than Caffe's partial_sort gives them."""
    p, x = layer.argmax_param, bottoms[0]
    if p.HasField('axis'):
        values, indices = x.topk(p.top_k, dim=p.axis % x.dim())
        return [values if p.out_max_val else indices.to(x.dtype)]
    values, indices = x.flatten(1).topk(p.top_k, dim=1)
    if p.out_max_val:
        return [torch.stack([indices.to(x.dtype), values], dim=1)]
    return [indices.to(x.dtype).unsqueeze(1)]
