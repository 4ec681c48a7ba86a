"""Convolution, Deconvolution and Crop: kernel, stride, pad, dilation, group, rectangular
and N-d kernels, bias or none, shared weights, loss weights, propagate_down, odd sizes."""
import numpy as np

from real_caffe.cases import Case, layer, net


def _window(rng, sizes, deconv=False):
    """(kernel, stride, pad, dilation) that leave at least one output along every size."""
    while True:
        k, s, p, d = (int(rng.integers(1, 6)), int(rng.integers(1, 4)), int(rng.integers(0, 3)),
                      int(rng.integers(1, 3)))
        extent = d * (k - 1) + 1
        fits = [(s * (n - 1) + extent - 2 * p if deconv else n + 2 * p - extent + 1) >= 1
                for n in sizes]
        if all(fits):
            return k, s, p, d


def _conv_param(rng, i, h, w, group, deconv):
    """Square (one value per field), per-axis lists, or the _h/_w fields, by i % 3."""
    if i % 3 == 0:
        k, s, p, d = _window(rng, [h, w], deconv)
        param = {'kernel_size': k, 'stride': s, 'pad': p, 'dilation': d}
    else:
        (kh, sh, ph, dh), (kw, sw, pw, dw) = _window(rng, [h], deconv), _window(rng, [w], deconv)
        if i % 3 == 1:
            param = {'kernel_size': [kh, kw], 'stride': [sh, sw], 'pad': [ph, pw],
                     'dilation': [dh, dw]}
        else:  # the _h/_w fields take no dilation: keep it 1
            (kh, sh, ph, _), (kw, sw, pw, _) = (_window(rng, [h], deconv),
                                                _window(rng, [w], deconv))
            while not all(_fits(deconv, n, k_, s_, p_) for n, k_, s_, p_ in
                          [(h, kh, sh, ph), (w, kw, sw, pw)]):
                (kh, sh, ph, _), (kw, sw, pw, _) = (_window(rng, [h], deconv),
                                                    _window(rng, [w], deconv))
            param = {'kernel_h': kh, 'kernel_w': kw, 'stride_h': sh, 'stride_w': sw,
                     'pad_h': ph, 'pad_w': pw}
    param['group'] = group
    param['num_output'] = group * int(rng.integers(1, 4))
    param['bias_term'] = bool(i % 4 != 3)
    return param


def _fits(deconv, n, k, s, p):
    return (s * (n - 1) + k - 2 * p if deconv else n + 2 * p - k + 1) >= 1


def _convolution_like(type_name, rng, i):
    deconv = type_name == 'Deconvolution'
    group = int(rng.choice([1, 1, 2, 3]))
    n, c = int(rng.integers(1, 3)), group * int(rng.integers(1, 3))
    h, w = int(rng.integers(1, 9)), int(rng.integers(1, 9))
    if not deconv:
        h, w = h + 2, w + 2
    param = _conv_param(rng, i, h, w, group, deconv)
    field = 'convolution_param'
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    if i % 5 == 4:  # two layers share one weight and one bias by name
        params = [{'name': f'w{i}'}, {'name': f'b{i}'}][:1 + param['bias_term']]
        body = [layer('a', type_name, ['x'], param=params, **{field: param}),
                layer('b', type_name, ['y'], param=params, **{field: param})]
        return Case(net({'x': x.shape, 'y': x.shape}, *body),
                    {'x': x, 'y': rng.standard_normal(x.shape).astype(np.float32)})
    extra = {}
    if i % 5 == 2:
        extra['loss_weight'] = float(rng.choice([0.5, 2.0]))
    if i % 7 == 6:
        extra['propagate_down'] = False
    lr = [{'lr_mult': 1}, {'lr_mult': 2, 'decay_mult': 0}][:1 + param['bias_term']]
    return Case(net({'x': x.shape}, layer('out', type_name, ['x'], param=lr, **extra,
                                           **{field: param})), {'x': x})


def convolution(rng, i):
    if i == 19:  # a 3-d convolution: Caffe's N-d im2col path
        x = rng.standard_normal((1, 2, 4, 5, 3)).astype(np.float32)
        param = {'num_output': 3, 'kernel_size': [2, 3, 1], 'stride': [1, 2, 1],
                 'pad': [1, 0, 1]}
        return Case(net({'x': x.shape}, layer('out', 'Convolution', ['x'],
                                               convolution_param=param)), {'x': x})
    return _convolution_like('Convolution', rng, i)


def deconvolution(rng, i):
    return _convolution_like('Deconvolution', rng, i)


def crop(rng, i):
    """Crop x to the shape of ref from `axis` on, with one offset or one per axis."""
    n, c = int(rng.integers(1, 3)), int(rng.integers(1, 4))
    big = [n, c, int(rng.integers(3, 10)), int(rng.integers(3, 10))]
    axis = int(rng.integers(0, 4)) if i % 4 else 2
    small = [int(rng.integers(1, d + 1)) if a >= axis else d for a, d in enumerate(big)]
    per_axis = i % 2 == 1
    offsets = [int(rng.integers(0, big[a] - small[a] + 1)) for a in range(axis, 4)]
    if not per_axis:
        offsets = [min(big[a] - small[a] for a in range(axis, 4))] if axis < 4 else [0]
        offsets = [int(rng.integers(0, offsets[0] + 1))]
    param = {'axis': axis, 'offset': offsets}
    if i % 6 == 5:
        param = {'axis': axis}  # no offset: 0 along every axis
    x = rng.standard_normal(big).astype(np.float32)
    ref = rng.standard_normal(small).astype(np.float32)
    return Case(net({'x': big, 'ref': small}, layer('out', 'Crop', ['x', 'ref'],
                                                    crop_param=param)),
                {'x': x, 'ref': ref})


GENERATORS = {'Convolution': convolution, 'Deconvolution': deconvolution, 'Crop': crop}
