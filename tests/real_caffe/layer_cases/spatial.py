"""Im2col and SPP. Im2col: kernel/stride/pad/dilation once, per axis or as _h/_w, defaults,
1-d/2-d/3-d windows, convolution_param.axis (2, negative), force_nd_im2col, kernels wider
than the padded bottom (C's truncating division still gives one output). SPP: MAX and AVE
(default MAX), pyramid heights 1 to 4, odd sizes, and one size whose pyramid pads a level
by its whole kernel (Caffe's Pooling CHECK fails: pad < kernel).

Tie rule (SPP's MAX pooling): continuous random bottoms, so no window holds a tie.
"""
import numpy as np

from real_caffe.cases import Enum
from real_caffe.layer_cases.pooling import pooled_size
from real_caffe.layer_cases.reduction import one_bottom


def _axis_window(rng, size):
    """(kernel, stride, pad, dilation) with Caffe's output size (C division) >= 1."""
    while True:
        k, s = int(rng.integers(1, 5)), int(rng.integers(1, 4))
        p, d = int(rng.choice([0, 0, 1, 2])), int(rng.choice([1, 1, 2]))
        span = size + 2 * p - (d * (k - 1) + 1)
        if int(span / s) + 1 >= 1:  # int() truncates toward zero, as C
            return k, s, p, d


def im2col(rng, i):
    spatial = 2 if i % 5 != 4 else (1 if i % 10 == 4 else 3)
    lead = [int(rng.integers(1, 3))]
    axis = None
    if i % 6 == 1:  # one more leading axis: channels on axis 2
        lead.append(int(rng.integers(1, 3)))
        axis = 2 if i % 12 == 1 else -(spatial + 1)
    elif i % 6 == 2:
        axis = -(spatial + 1)  # axis 1 counted from the end
    sizes = [int(rng.integers(1, 8)) for _ in range(spatial)]
    windows = [_axis_window(rng, n) for n in sizes]
    k, s, p, d = (list(v) for v in zip(*windows))
    form = i % 3 if spatial == 2 else 1
    if form == 0:  # one value for every axis: draw the window again on the smallest size
        k, s, p, d = ([v] * spatial for v in _axis_window(rng, min(sizes)))
        param = {'kernel_size': k[0], 'stride': s[0], 'pad': p[0], 'dilation': d[0]}
    elif form == 1:
        param = {'kernel_size': k, 'stride': s, 'pad': p, 'dilation': d}
    else:
        param = {'kernel_h': k[0], 'kernel_w': k[1], 'stride_h': s[0], 'stride_w': s[1],
                 'pad_h': p[0], 'pad_w': p[1], 'dilation': d}
    if i % 4 == 3:  # the defaults: stride 1, pad 0, dilation 1 (kernels within the sizes)
        for key in list(param):
            if not key.startswith('kernel'):
                del param[key]
            elif key == 'kernel_size' and form == 1:
                param[key] = [min(k_, n) for k_, n in zip(k, sizes)]
            else:
                param[key] = min(param[key], *sizes)
    if axis is not None:
        param['axis'] = axis
    if i % 7 == 5:
        param['force_nd_im2col'] = True
    shape = lead + [int(rng.integers(1, 4))] + sizes
    x = rng.standard_normal(shape).astype(np.float32)
    return one_bottom(rng, i, 'Im2col', x, loss_at=(6, 5), test_at=(8, 7),
                      convolution_param=param)


def _spp_fits(size, height):
    """Whether every level's Pooling (kernel = stride = ceil(size / bins)) passes Caffe's
    CHECKs: pad < kernel, and the last window starting inside the bottom."""
    for level in range(height):
        bins = 2 ** level
        k = -(-size // bins)
        p = (k * bins - size + 1) // 2
        if p >= k or (p and (pooled_size(size, k, k, p, True, True) - 1) * k >= size + p):
            return False
    return True


def spp(rng, i):
    height = i % 4 + 1
    param = {'pyramid_height': height}
    if i % 2 == 1:
        param['pool'] = Enum('AVE')
    elif i % 4 == 2:
        param['pool'] = Enum('MAX')
    n, c = int(rng.integers(1, 3)), int(rng.integers(1, 4))
    while True:
        h, w = int(rng.integers(1, 14)), int(rng.integers(1, 14))
        if _spp_fits(h, height) and _spp_fits(w, height):
            break
    if i == 19:  # level 2 of height 3: kernel 1, pad (4 - 3 + 1) / 2 = 1: Caffe aborts
        param['pyramid_height'], h = 3, 3
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    return one_bottom(rng, i, 'SPP', x, spp_param=param)


GENERATORS = {'Im2col': im2col, 'SPP': spp}
