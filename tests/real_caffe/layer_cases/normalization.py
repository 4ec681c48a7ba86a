"""BatchNorm and MVN: batch and global statistics in TRAIN and TEST, use_global_stats given or
not, moving_average_fraction, eps, 2-d to 5-d bottoms, in place, propagate_down with and
without the statistics' `param { lr_mult: 0 }`; MVN normalize_variance, across_channels,
eps, 2-d to 4-d bottoms, in place. No loss_weight on MVN or on BatchNorm with batch
statistics: the gradient of a constant top diff is zero there, and only float noise.

BatchNorm's params are given explicitly: mean * f, variance * f > 0 and the factor f > 0
(f = 0 in some cases: zero statistics), so that global statistics have a positive variance.
"""
import numpy as np

from real_caffe.cases import Case, layer, net
from real_caffe.layer_cases.reduction import branches

_SHAPES = [lambda r: (int(r.integers(1, 4)), int(r.integers(1, 5)), int(r.integers(1, 5)),
                      int(r.integers(1, 6))),
           lambda r: (int(r.integers(1, 7)), int(r.integers(1, 6))),
           lambda r: (int(r.integers(1, 4)), int(r.integers(1, 5)), int(r.integers(1, 7))),
           lambda r: (int(r.integers(1, 3)), int(r.integers(1, 4)), 2, int(r.integers(1, 4)),
                      int(r.integers(1, 3)))]


def _before(x_shape, tiled, in_place):
    """The bottom the layer under test reads: x itself, or x tiled (for in-place use)."""
    if not in_place:
        return 'x', [], x_shape
    shape = list(x_shape)
    shape[0] *= tiled
    return 't', [layer('t', 'Tile', ['x'], tile_param={'axis': 0, 'tiles': tiled})], shape


def batch_norm(rng, i):
    shape = _SHAPES[i % 4](rng)
    mode = i % 5  # TRAIN, TEST, TRAIN global, TEST batch, TRAIN batch (explicit)
    phase = 'TEST' if mode in (1, 3) else 'TRAIN'
    param = {}
    if mode >= 2:
        param['use_global_stats'] = mode == 2
    if i % 3 != 1:
        param['moving_average_fraction'] = float(np.float32(rng.uniform(0.5, 1.0)))
    if i % 4 != 2:
        param['eps'] = float(np.float32(rng.choice([1e-5, 1e-3, 0.1, 1.0])))
    in_place = i % 6 == 5
    source, head, shape_in = _before(shape, int(rng.integers(1, 3)), in_place)
    channels = shape_in[1]
    factor = 0.0 if i % 10 == 7 else float(rng.choice([1.0, rng.uniform(0.3, 5.0)]))
    params = {'bn/0': rng.uniform(-1, 1, channels) * max(factor, 1.0),
              'bn/1': rng.uniform(0.05, 2.0, channels) * max(factor, 1.0),
              'bn/2': np.array([factor])}
    x = (rng.standard_normal(shape) * rng.uniform(0.5, 3.0) + rng.uniform(-2, 2))
    if i == 13:  # force_backward off. a: propagate_down false, yet Caffe runs its backward
        # (the net's own param specs say lr_mult 1) and it writes the bottom diff anyway;
        # b: the same with the statistics' lr_mult 0 given: no backward; c: plain.
        case = branches('BatchNorm', {'x': x}, [
            ('a', ['x'], {'propagate_down': False}),
            ('b', ['x'], {'propagate_down': False, 'param': [{'lr_mult': 0}] * 3}),
            ('c', ['x'], {})], batch_norm_param=param or None)
        case.params.update({f'{name}/{k}': v for name in 'abc' for k, v in
                            enumerate(params.values())})
        case.phase = phase
        return case
    extra = {}
    if i % 7 == 6:  # force_backward overrides it: Caffe still computes the diff
        extra['propagate_down'] = False
    if i % 4 == 3 and mode in (1, 2):  # with batch statistics a constant top diff
        extra['loss_weight'] = float(rng.choice([0.5, 2.0]))  # has a zero bottom diff
    top = source if in_place else 'bn'
    body = head + [layer('bn', 'BatchNorm', [source], [top], batch_norm_param=param or None,
                         **extra)]
    return Case(net({'x': shape}, *body), {'x': x.astype(np.float32)}, params=params,
                phase=phase, forwards=2 if i % 3 == 0 else 1)


def mvn(rng, i):
    shape = _SHAPES[i % 3](rng)
    param = {}
    if i % 9 != 0:
        param['normalize_variance'] = i % 2 == 0
        param['across_channels'] = (i // 2) % 2 == 1
        if i % 5 != 1:
            param['eps'] = float(np.float32(rng.choice([1e-9, 1e-6, 1e-3, 0.1])))
    in_place = i % 6 == 5
    source, head, _ = _before(shape, int(rng.integers(1, 3)), in_place)
    x = rng.standard_normal(shape) * rng.uniform(0.5, 3.0) + rng.uniform(-3, 3)
    if i == 13:  # propagate_down that holds (force_backward off): only b's gradient
        return branches('MVN', {'x': x}, [('a', ['x'], {'propagate_down': False}),
                                          ('b', ['x'], {})], mvn_param=param or None)
    extra = {}
    if i % 7 == 6:  # force_backward overrides it: Caffe still computes the diff
        extra['propagate_down'] = False
    body = head + [layer('mvn', 'MVN', [source], [source if in_place else 'mvn'],
                         mvn_param=param or None, **extra)]
    return Case(net({'x': shape}, *body), {'x': x.astype(np.float32)},
                phase='TEST' if i % 8 == 7 else 'TRAIN')


GENERATORS = {'BatchNorm': batch_norm, 'MVN': mvn}
