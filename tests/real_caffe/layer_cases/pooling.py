"""Pooling and LRN: MAX/AVE pooling with square, _h/_w and mixed kernel/stride/pad forms,
global pooling, CEIL/FLOOR rounding, odd sizes, pad < kernel, the MAX mask top; LRN across
and within channels with local_size, alpha, beta and k.

Tie rule: Caffe's MAX pooling keeps the first strictly greater value in row-major order of
the window (padding never wins). The bottoms are continuous random values, so no window
holds a tie and that rule never decides. STOCHASTIC pooling has no CPU path in Caffe and is
not drawn. Windows that would start past the bottom's end (CEIL, stride > kernel, no pad
on either axis) are not drawn either: Caffe pools nothing there (MAX gives -FLT_MAX and
its backward writes at index -1, out of bounds; AVE gives 0 / 0 or -0), and the engine
refuses them.
"""
import math

import numpy as np

from real_caffe.cases import Case, Enum, layer, net
from real_caffe.layer_cases.reduction import branches


def pooled_size(size, k, s, p, ceil, any_pad):
    """Caffe's pooled size along one axis (float ceil/floor; clip only if some pad)."""
    span = (size + 2 * p - k) / s
    n = (math.ceil(span) if ceil else math.floor(span)) + 1
    if any_pad and (n - 1) * s >= size + p:
        n -= 1
    return n


def _fits(size, k, s, p, ceil, any_pad):
    n = pooled_size(size, k, s, p, ceil, any_pad)
    return n >= 1 and (n - 1) * s - p < size


def _geometry(rng, ceil, square, padded):
    """(h, w, (kh, kw), (sh, sw), (ph, pw)) Caffe pools without phantom windows."""
    while True:
        h, w = int(rng.integers(1, 10)), int(rng.integers(1, 10))
        k = [int(rng.integers(1, 6)) for _ in range(2)]
        s = [int(rng.integers(1, k_ + 2)) for k_ in k]  # stride up to kernel + 1
        p = [int(rng.integers(0, k_)) if padded else 0 for k_ in k]
        if square:
            k, s, p = [k[0]] * 2, [s[0]] * 2, [p[0]] * 2
        any_pad = bool(p[0] or p[1])
        if all(_fits(n, *g, ceil, any_pad) for n, g in zip((h, w), zip(k, s, p))):
            return h, w, k, s, p


def pooling(rng, i):
    method = 'MAX' if i % 2 == 0 else 'AVE'
    form = i % 5  # 0 square, 1 all _h/_w, 2 global, 3 kernel_h/w + scalars, 4 mixed
    round_mode = [None, 'CEIL', 'FLOOR'][i % 3]
    ceil = round_mode != 'FLOOR'
    padded = i % 4 != 1
    param = {'pool': Enum(method)}
    n, c = int(rng.integers(1, 3)), int(rng.integers(1, 4))
    if i == 18:  # pad on H only: Caffe clips the last W window too (it checks pad_h || pad_w)
        h, w = int(rng.integers(3, 8)), 2 * int(rng.integers(1, 4))
        param.update(kernel_h=3, kernel_w=1, stride_h=2, stride_w=2, pad_w=0,
                     pad_h=int(rng.integers(1, 3)))  # 2: the engine's framed path
    elif i == 19:  # a kernel larger than the bottom: CEIL still gives one window
        h, w = 2, int(rng.integers(2, 4))
        param.update(kernel_h=3, kernel_w=w + 1, stride=2)
    elif form == 2:
        h, w = int(rng.integers(1, 8)), int(rng.integers(1, 8))
        param['global_pooling'] = True
        if i % 3 == 0:
            param.update(stride=1, pad=0)  # the only values Caffe allows with it
    else:
        h, w, k, s, p = _geometry(rng, ceil, form == 0, padded)
        if form == 0:
            param.update(kernel_size=k[0], stride=s[0], pad=p[0])
        elif form == 1:
            param.update(kernel_h=k[0], kernel_w=k[1], stride_h=s[0], stride_w=s[1],
                         pad_h=p[0], pad_w=p[1])
        elif form == 3:
            while s[0] != s[1] or p[0] != p[1]:
                h, w, k, s, p = _geometry(rng, ceil, False, padded)
            param.update(kernel_h=k[0], kernel_w=k[1], stride=s[0], pad=p[0])
        else:
            while k[0] != k[1]:
                h, w, k, s, p = _geometry(rng, ceil, False, padded)
            param.update(kernel_size=k[0], stride_h=s[0], stride_w=s[1], pad_h=p[0],
                         pad_w=p[1])
            if p[0] == 0 and p[1] == 0 and i % 3 == 1:
                del param['pad_h'], param['pad_w']  # pad and stride forms are separate
    if round_mode:
        param['round_mode'] = Enum(round_mode)
    if i % 9 == 4:
        param['engine'] = Enum('CAFFE')
    tops = ['out', 'mask'] if method == 'MAX' and i % 4 == 0 else ['out']
    extra = {}
    if i % 6 == 5:
        extra['loss_weight'] = [float(rng.choice([0.5, 2.0]))] + [0.0] * (len(tops) - 1)
    if i % 7 == 6:  # force_backward overrides it: Caffe still computes the diff
        extra['propagate_down'] = False
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    if i == 13:  # propagate_down that holds (force_backward off): only b's gradient
        return branches('Pooling', {'x': x}, [('a', ['x'], {'propagate_down': False}),
                                              ('b', ['x'], {})], pooling_param=param)
    body = layer('out', 'Pooling', ['x'], tops, pooling_param=param, **extra)
    return Case(net({'x': x.shape}, body), {'x': x}, phase='TEST' if i % 8 == 7 else 'TRAIN')


def lrn(rng, i):
    across = i % 2 == 0
    param = {} if across and i % 4 == 0 else {
        'norm_region': Enum('ACROSS_CHANNELS' if across else 'WITHIN_CHANNEL')}
    if i % 5 != 3:  # else the defaults: local_size 5, alpha 1, beta 0.75, k 1
        param['local_size'] = int(rng.choice([1, 3, 3, 5, 7]))
        param['alpha'] = float(np.float32(rng.uniform(0.05, 3.0)))
        param['beta'] = float(np.float32(rng.uniform(0.2, 1.5)))
        if i % 3 != 2:  # WITHIN_CHANNEL ignores k, as in Caffe
            param['k'] = float(np.float32(rng.uniform(0.5, 3.0)))
    shape = (int(rng.integers(1, 3)), int(rng.integers(1, 9)), int(rng.integers(1, 7)),
             int(rng.integers(1, 7)))
    x = (rng.standard_normal(shape) * rng.uniform(0.5, 3.0)).astype(np.float32)
    if i in (12, 13):  # force_backward off, a with propagate_down false: Caffe still
        # runs a's backward (x needs one) and ACROSS_CHANNELS ignores propagate_down
        return branches('LRN', {'x': x}, [('a', ['x'], {'propagate_down': False}),
                                          ('b', ['x'], {})], lrn_param=param or None)
    extra = {}
    if i % 5 == 2:
        extra['loss_weight'] = float(rng.choice([0.5, 3.0]))
    if i % 7 == 6:  # force_backward overrides it: Caffe still computes the diff
        extra['propagate_down'] = False
    body = layer('out', 'LRN', ['x'], lrn_param=param or None, **extra)
    return Case(net({'x': shape}, body), {'x': x}, phase='TEST' if i % 6 == 5 else 'TRAIN')


GENERATORS = {'Pooling': pooling, 'LRN': lrn}
