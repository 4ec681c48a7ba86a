"""ContrastiveLoss and HingeLoss: margin (default and drawn), legacy_version, similarity
labels that Caffe truncates to int (0.7 is dissimilar, 1.5 similar), (N, C) and (N, C, 1, 1)
features; hinge norm L1/L2/default, 2-d and 4-d scores; loss weights, propagate_down
(overridden by force_backward, and holding without it), TRAIN and TEST.

Pair distances are drawn around the margin, so both sides of the hinge occur; the values
are continuous, so none sits on a kink. Hinge labels are whole numbers in [0, C).
"""
import numpy as np

from real_caffe.cases import Case, Enum, layer, net
from real_caffe.layer_cases.reduction import parameter, scores_held


def contrastive_loss(rng, i):
    n, c = int(rng.integers(1, 7)), int(rng.integers(1, 6))
    shape = (n, c) if i % 2 == 0 else (n, c, 1, 1)
    param = {}
    if i % 4 != 0:
        param['margin'] = float(np.float32(rng.uniform(0.2, 3.0)))
    if i % 3 == 1:
        param['legacy_version'] = True
    elif i % 3 == 2:
        param['legacy_version'] = False
    margin = param.get('margin', 1.0)
    a = rng.standard_normal(shape)
    step = rng.standard_normal(shape)
    step /= np.sqrt((step.reshape(n, -1) ** 2).sum(1)).reshape((n,) + (1,) * (len(shape) - 1))
    dist = rng.uniform(0.2, 1.8, (n,) + (1,) * (len(shape) - 1)) * (  # around the margin
        np.sqrt(margin) if param.get('legacy_version') else margin)
    b = a + step * dist
    y_shape = (n,) if i % 3 == 0 else (n, 1, 1, 1)
    y = rng.integers(0, 2, y_shape).astype(np.float32)
    if i % 5 == 4:  # Caffe reads static_cast<int>(y): fractions toward zero
        y = rng.choice([0.0, 1.0, 0.7, 1.5, -0.3, 2.0], y_shape).astype(np.float32)
    a, b = a.astype(np.float32), b.astype(np.float32)
    fields = {'contrastive_loss_param': param or None}
    if i % 4 == 3:
        fields['loss_weight'] = float(rng.choice([0.5, 2.0]))
    if i == 13:  # force_backward off: propagate_down false on b holds
        body = [parameter('a', shape), parameter('b', shape),
                layer('out', 'ContrastiveLoss', ['a', 'b', 'y'],
                      propagate_down=[True, False, False], **fields)]
        return Case(net({'y': y_shape}, *body, force_backward=False), {'y': y},
                    params={'a/0': a, 'b/0': b}, no_bottom_diff=('y',))
    if i % 7 == 6:  # force_backward overrides it for a and b (not for y)
        fields['propagate_down'] = [False, True, False]
    body = layer('out', 'ContrastiveLoss', ['a', 'b', 'y'], **fields)
    return Case(net({'a': shape, 'b': shape, 'y': y_shape}, body), {'a': a, 'b': b, 'y': y},
                phase='TEST' if i % 5 == 2 else 'TRAIN')


def hinge_loss(rng, i):
    n, c = int(rng.integers(1, 6)), int(rng.integers(2, 7))
    shape = (n, c) if i % 3 != 2 else (n, c, int(rng.integers(1, 3)), int(rng.integers(1, 4)))
    param = {}
    if i % 3 != 0:
        param['norm'] = Enum('L1' if i % 2 else 'L2')
    elif i % 2:
        param['norm'] = Enum('L2')
    x = (rng.standard_normal(shape) * rng.uniform(0.5, 2.0)).astype(np.float32)
    label_shape = (n,) if i % 4 < 2 else (n, 1, 1, 1)
    label = rng.integers(0, c, label_shape).astype(np.float32)
    fields = {'hinge_loss_param': param or None}
    if i % 5 == 3:
        fields['loss_weight'] = float(rng.choice([0.5, 2.0, -1.0]))
    if i == 13:  # force_backward off: propagate_down false on the scores: no diff
        return scores_held('HingeLoss', x, 'label', label, **fields)
    if i % 7 == 6:  # force_backward overrides it for the scores (not for the label)
        fields['propagate_down'] = [False, False]
    body = layer('out', 'HingeLoss', ['x', 'label'], **fields)
    return Case(net({'x': shape, 'label': label_shape}, body), {'x': x, 'label': label},
                phase='TEST' if i % 6 == 5 else 'TRAIN')


GENERATORS = {'ContrastiveLoss': contrastive_loss, 'HingeLoss': hinge_loss}
