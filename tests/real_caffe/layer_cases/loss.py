"""Accuracy, EuclideanLoss, Softmax and SoftmaxWithLoss: axes (default, negative, spatial),
top_k, ignore_label (outside and inside the class range), Accuracy's per-class top,
normalization FULL/VALID/BATCH_SIZE/NONE and the deprecated normalize, loss weights,
propagate_down (overridden by force_backward, and holding without it), TRAIN and TEST.

Ties: scores are continuous random values, so Accuracy never meets a tie (Caffe counts a
tie with the true class against it). Labels are whole numbers in [0, C) stored as float,
or the ignore_label. SoftmaxWithLoss with a second top aborts in BVLC Caffe whatever its
loss weights (one weight: the outer layer's count check; two: the inner Softmax copies
them), and so does Accuracy with top_k above the class count.
"""
import numpy as np

from real_caffe.cases import Case, Enum, layer, net
from real_caffe.layer_cases.reduction import branches, parameter


def _scores(rng, i, spatial=True):
    """(shape, axis field or None, axis index): the class axis and its shape."""
    n, c = int(rng.integers(1, 4)), int(rng.integers(1, 7))
    kind = i % 4
    if kind == 0 or not spatial:
        return (n, c), None, 1
    if kind == 1:
        shape = (n, c, int(rng.integers(1, 4)), int(rng.integers(1, 5)))
        return shape, (1 if i % 8 == 1 else None), 1
    if kind == 2:  # classes on axis 2, given as a negative axis
        shape = (n, int(rng.integers(1, 4)), c, int(rng.integers(1, 4)))
        return shape, -2, 2
    return (n, int(rng.integers(1, 3)), c), 2, 2  # classes last


def _labels(rng, shape, axis, ignore=None, share=0.3):
    """Labels of the prediction shape without the class axis, some set to `ignore`."""
    rest = shape[:axis] + shape[axis + 1:]
    label = rng.integers(0, shape[axis], rest).astype(np.float32)
    if ignore is not None:
        label[rng.random(rest) < share] = ignore
    return label


def accuracy(rng, i):
    shape, axis, a = _scores(rng, i)
    param = {}
    if axis is not None:
        param['axis'] = axis
    if i % 3 != 0:
        param['top_k'] = int(rng.integers(1, shape[a] + 1))
    if i == 19:
        param['top_k'] = shape[a] + 1  # Caffe: CHECK_LE(top_k_, classes)
    ignore = None
    if i % 5 in (1, 3):
        ignore = [-1, 255, 0][i % 3]
        param['ignore_label'] = ignore
    label = _labels(rng, shape, a, ignore, share=1.0 if i == 16 else 0.3)
    if i % 6 == 4:  # a label blob of another shape with the same count
        label = label.reshape(shape[0], -1, 1)
    tops = ['out', 'per_class'] if i % 3 == 0 else ['out']
    x = rng.standard_normal(shape).astype(np.float32)
    body = layer('out', 'Accuracy', ['x', 'label'], tops, accuracy_param=param or None)
    return Case(net({'x': shape, 'label': label.shape}, body), {'x': x, 'label': label},
                backward=False, phase='TEST' if i % 2 == 1 else 'TRAIN')


def euclidean_loss(rng, i):
    n = int(rng.integers(1, 5))
    dims = [int(rng.integers(1, 4)) for _ in range(int(rng.integers(0, 3)))]
    shape_a = (n, *dims)
    shape_b = (n, int(np.prod(dims))) if i % 4 == 1 else shape_a  # count(1) must agree
    a = (rng.standard_normal(shape_a) * rng.uniform(0.5, 3)).astype(np.float32)
    b = (rng.standard_normal(shape_b) * rng.uniform(0.5, 3)).astype(np.float32)
    extra = {}
    if i % 3 == 1:
        extra['loss_weight'] = float(rng.choice([0.5, 2.0, -1.0]))
    if i == 13:  # force_backward off: propagate_down false on b holds
        body = [parameter('a', shape_a), parameter('b', shape_b),
                layer('out', 'EuclideanLoss', ['a', 'b'], propagate_down=[True, False],
                      **extra)]
        return Case(net({}, *body, force_backward=False), params={'a/0': a, 'b/0': b})
    if i % 7 == 6:  # force_backward overrides it: Caffe still computes both diffs
        extra['propagate_down'] = [False, True]
    body = layer('out', 'EuclideanLoss', ['a', 'b'], **extra)
    return Case(net({'a': shape_a, 'b': shape_b}, body), {'a': a, 'b': b},
                phase='TEST' if i % 5 == 3 else 'TRAIN')


def softmax(rng, i):
    shape = tuple(int(rng.integers(1, 5)) for _ in range(int(rng.integers(1, 6))))
    param = {}
    if i % 4 != 0 or len(shape) < 2:
        param['axis'] = int(rng.integers(-len(shape), len(shape)))
    scale = [1.0, 3.0, 20.0][i % 3]
    x = (rng.standard_normal(shape) * scale).astype(np.float32)
    fields = {'softmax_param': param or None}
    if i == 13:  # force_backward off: a has propagate_down false, yet Caffe runs its
        # backward (x needs one for b) and Softmax's ignores propagate_down
        return branches('Softmax', {'x': x}, [('a', ['x'], {'propagate_down': False}),
                                              ('b', ['x'], {})], op='SUMSQ', **fields)
    extra = {}
    if i % 7 == 6:  # force_backward overrides it: Caffe still computes the diff
        extra['propagate_down'] = False
    head, source = [], 'x'
    if i % 6 == 5:  # in place, after a Tile
        head, source = [layer('t', 'Tile', ['x'], tile_param={'axis': 0, 'tiles': 1})], 't'
    body = head + [layer('sm', 'Softmax', [source], [source if head else 'sm'], **fields,
                         **extra)]
    return Case(net({'x': shape}, *body), {'x': x}, phase='TEST' if i % 5 == 3 else 'TRAIN',
                tolerance=(2e-6, _softmax_backward_tolerance(rng, x, param.get('axis', 1))))


def _softmax_backward_tolerance(rng, x, axis):
    """Saturated softmaxes (large scores) cancel in y (dy - sum(dy y)): float rounding of
    the sum, which Caffe and torch take in other orders, grows relative to the result by
    the ratio below (estimated with a top diff like the recorded one and the float y),
    capped: where y rounds to exactly 1 both lose the same small terms."""
    z = np.moveaxis(x.astype(np.float64), axis % x.ndim, -1)
    y = np.exp(z - z.max(-1, keepdims=True))
    y = (y / y.sum(-1, keepdims=True)).astype(np.float32).astype(np.float64)  # as stored
    dy = rng.uniform(-1, 1, y.shape)
    dot = (dy * y).sum(-1, keepdims=True)
    bound, result = (np.linalg.norm(y * (np.abs(dy) + np.abs(dot))),
                     np.linalg.norm(y * (dy - dot)))
    if result <= 1e-12 * bound:  # one class along the axis: a zero diff, exactly
        return 2e-5
    return min(5e-3, max(2e-5, 1e-6 * bound / result))  # the estimate overshoots there


def softmax_with_loss(rng, i):
    shape, axis, a = _scores(rng, i)
    loss_param, ignore = {}, None
    mode = i % 6
    if mode < 4:
        loss_param['normalization'] = Enum(['FULL', 'VALID', 'BATCH_SIZE', 'NONE'][mode])
    if mode in (3, 4):
        loss_param['normalize'] = bool(i % 2)  # decides only without normalization
    if i % 3 != 2:
        ignore = int(rng.choice([-1, 255, 0, 1]))
        loss_param['ignore_label'] = ignore
    label = _labels(rng, shape, a, ignore, share=1.0 if i == 16 else 0.3)
    if i % 5 == 4:
        label = label.reshape(shape[0], -1)
    scale = 30.0 if i % 5 == 1 else 2.0  # large scores: some probabilities hit FLT_MIN
    x = (rng.standard_normal(shape) * scale).astype(np.float32)
    fields = {'loss_param': loss_param or None,
              'softmax_param': {'axis': axis} if axis is not None else None}
    if i % 4 == 3:
        fields['loss_weight'] = float(rng.choice([0.5, 2.0, 0.25]))
    tops = ['out']
    if i == 18:  # a probability top with one loss weight each: Caffe aborts (the inner
        tops, fields['loss_weight'] = ['out', 'prob'], [1.0, 0.0]  # Softmax copies them)
    if i == 19:  # a probability top and the default loss weight: Caffe aborts
        tops, fields['loss_weight'] = ['out', 'prob'], None
    if i == 13:  # force_backward off, propagate_down false on the score: no diff
        body = [parameter('x', shape), layer('out', 'SoftmaxWithLoss', ['x', 'label'],
                                             propagate_down=[False, False], **fields)]
        return Case(net({'label': label.shape}, *body, force_backward=False),
                    {'label': label}, params={'x/0': x}, no_bottom_diff=('label',))
    if i % 7 == 6:  # force_backward overrides it for the score (not for the label)
        fields['propagate_down'] = [False, False]
    body = layer('out', 'SoftmaxWithLoss', ['x', 'label'], tops, **fields)
    return Case(net({'x': shape, 'label': label.shape}, body), {'x': x, 'label': label},
                phase='TEST' if i % 5 == 2 else 'TRAIN')


GENERATORS = {'Accuracy': accuracy, 'EuclideanLoss': euclidean_loss, 'Softmax': softmax,
              'SoftmaxWithLoss': softmax_with_loss}
