"""Reduction: SUM, ASUM, SUMSQ and MEAN over every axis from `axis` (negative, 0 for a 0-d
top, default) on, coeff given or not, loss weights, propagate_down, TRAIN and TEST.

`branches` (used by other modules too) builds a net where propagate_down: false counts:
with force_backward true Caffe overrides it (net.cpp ORs in AllowForceBackward), so there
the bottoms come from Parameter layers and force_backward is off; each copy of the layer
under test feeds an ASUM Reduction with loss weight 1. Caffe still calls the backward of a
copy with propagate_down false when its bottom needs backward for another copy, passing
propagate_down false: most layers then leave the bottom diff alone, some (Im2col, Softmax,
MVN, BatchNorm, LRN across channels) write it anyway.
"""
import numpy as np

from real_caffe.cases import Case, Enum, layer, net


def parameter(name, shape):
    """A Parameter layer whose blob (given as params[f'{name}/0']) is the top `name`."""
    return layer(name, 'Parameter', top=[name], parameter_param={'shape': {'dim': list(shape)}})


def branches(type_name, values, copies, op='ASUM', **fields):
    """force_backward off; each of `values` ({name: array}) from a Parameter layer; one layer
    per (name, bottoms, extra fields) in `copies`, each top reduced by `op` into a loss."""
    body = [parameter(name, np.shape(v)) for name, v in values.items()]
    for name, bottoms, extra in copies:
        body.append(layer(name, type_name, bottoms, **fields, **extra))
        body.append(layer(f'{name}_loss', 'Reduction', [name], loss_weight=1.0,
                          reduction_param={'operation': Enum(op)}))
    params = {f'{name}/0': np.asarray(v, np.float32) for name, v in values.items()}
    return Case(net({}, *body, force_backward=False), params=params)


def scores_held(type_name, x, label_name, label, **fields):
    """A loss on scores from a Parameter, force_backward off, twice: with propagate_down
    false on both bottoms (no diff from it) and without."""
    body = [parameter('x', x.shape), layer('out', type_name, ['x', label_name],
                                           propagate_down=[False, False], **fields),
            layer('out2', type_name, ['x', label_name], **fields)]
    return Case(net({label_name: label.shape}, *body, force_backward=False),
                {label_name: label}, params={'x/0': x}, no_bottom_diff=(label_name,))


def one_bottom(rng, i, type_name, x, loss_at=(5, 2), test_at=(6, 5), **fields):
    """The usual variants of a layer on one bottom x: case 13 a propagate_down that holds
    (force_backward off: only b's gradient), a loss weight where i % m == r for (m, r) =
    `loss_at`, a propagate_down that force_backward overrides (Caffe still computes the
    diff) where i % 7 == 6, the TEST phase where `test_at` says."""
    if i == 13:
        return branches(type_name, {'x': x}, [('a', ['x'], {'propagate_down': False}),
                                              ('b', ['x'], {})], **fields)
    extra = {}
    if i % loss_at[0] == loss_at[1]:
        extra['loss_weight'] = float(rng.choice([0.5, 2.0]))
    if i % 7 == 6:
        extra['propagate_down'] = False
    body = layer('out', type_name, ['x'], **fields, **extra)
    return Case(net({'x': x.shape}, body), {'x': x},
                phase='TEST' if i % test_at[0] == test_at[1] else 'TRAIN')


def reduction(rng, i):
    ops = ['SUM', 'ASUM', 'SUMSQ', 'MEAN']
    shape = tuple(int(rng.integers(1, 6)) for _ in range(int(rng.integers(1, 5))))
    if i == 13:  # two axes or more, so that its top can be reduced again
        shape = (int(rng.integers(1, 4)),) + shape
    param = {}
    if not (i % 8 == 0):  # else the default op, SUM
        param['operation'] = Enum(ops[i % 4])
    if i % 5 != 1:
        param['axis'] = int(rng.integers(-len(shape), len(shape)))
        if i == 13 and param['axis'] % len(shape) == 0:
            param['axis'] = 1
    if i % 3 != 0:
        param['coeff'] = float(np.float32(rng.choice([rng.uniform(-2.0, 2.0), 0.5, -1.0])))
    x = (rng.standard_normal(shape) * rng.uniform(0.5, 2.0)).astype(np.float32)
    fields = {'reduction_param': param or None}
    if i == 13:  # propagate_down that holds: only the second copy's gradient reaches x
        return branches('Reduction', {'x': x}, [('a', ['x'], {'propagate_down': False}),
                                                ('b', ['x'], {})], **fields)
    if i == 19:  # a Reduction of a 0-d top: Caffe aborts (no axis 0 in a 0-d blob)
        body = [layer('s', 'Reduction', ['x']), layer('out', 'Reduction', ['s'], **fields)]
        return Case(net({'x': shape}, *body), {'x': x})
    extra = {}
    if i % 6 == 5:
        extra['loss_weight'] = float(rng.choice([0.5, 2.0, -1.0]))
    if i % 7 == 6:  # force_backward overrides it: Caffe still computes the diff
        extra['propagate_down'] = False
    body = layer('out', 'Reduction', ['x'], **fields, **extra)
    return Case(net({'x': shape}, body), {'x': x}, phase='TEST' if i % 5 == 4 else 'TRAIN',
                tolerance=(_sum_tolerance(x, param.get('axis', 0)), 2e-5))


def _sum_tolerance(x, axis):
    """Forward tolerance of a sum of mixed signs: Caffe's BLAS dot and torch add in other
    orders, and cancellation magnifies their rounding by sum |x| / |sum x| per output."""
    groups = x.reshape(int(np.prod(x.shape[:axis % x.ndim])), -1).astype(np.float64)
    ratio = np.linalg.norm(np.abs(groups).sum(1)) / max(np.linalg.norm(groups.sum(1)), 1e-30)
    return max(2e-6, 1.2e-7 * groups.shape[1] * ratio)


GENERATORS = {'Reduction': reduction}
