"""InfogainLoss, MultinomialLogisticLoss and SigmoidCrossEntropyLoss.

Infogain: H as a third bottom or from a source file (H.binaryproto in the case folder, 4-d
legacy or N-d shape), its axis, normalization modes, ignore_label, the probability top
(loss weights for both tops), loss weights; `normalize` and a probability top without loss
weights, on which Caffe aborts. H as a bottom cannot be forced (Caffe aborts in Backward),
so those cases run without force_backward, the scores from a Parameter layer.
MultinomialLogistic: probabilities in (0, 1] (softmax rows, or any values), (N, C) and
(N, C, 1, 1). SigmoidCE: hard and soft targets in [0, 1], ignore_label (-1, 255, and 0,
which Caffe compares with static_cast<int>(target): soft targets below 1 then count as
ignored), every normalization and the deprecated normalize, targets of another shape.
All: propagate_down (overridden by force_backward, and holding without it), TRAIN/TEST.
Labels are whole numbers in [0, C) stored as float, or the ignore_label.
"""
import numpy as np

from caffe_torch.proto import caffe_pb2
from real_caffe.cases import Case, Enum, layer, net
from real_caffe.layer_cases.reduction import parameter, scores_held

_MODES = ['FULL', 'VALID', 'BATCH_SIZE', 'NONE']


def _blobproto(h, legacy):
    proto = caffe_pb2.BlobProto()
    if legacy:
        proto.num, proto.channels, proto.height, proto.width = 1, 1, *h.shape
    else:
        proto.shape.dim.extend(h.shape)
    proto.data.extend(h.ravel().tolist())
    return proto.SerializeToString()


def infogain_loss(rng, i):
    n, c = int(rng.integers(1, 4)), int(rng.integers(1, 6))
    kind = i % 3  # (N, C); (N, C, H, W); classes on axis 2 of (N, A, C)
    shape = [(n, c), (n, c, int(rng.integers(1, 3)), int(rng.integers(1, 4))),
             (n, int(rng.integers(1, 3)), c)][kind]
    a = 2 if kind == 2 else 1
    param, loss_param = {}, {}
    if kind == 2:
        param['axis'] = int(rng.choice([2, -1]))
    mode = (i // 2) % 5
    if mode < 4:
        loss_param['normalization'] = Enum(_MODES[mode])
    ignore = None
    if i % 4 in (1, 2):
        ignore = int(rng.choice([-1, 255, 0]))
        loss_param['ignore_label'] = ignore
    if i == 17:
        loss_param['normalize'] = True  # Caffe: CHECK "normalize is deprecated"
    rest = shape[:a] + shape[a + 1:]
    label = rng.integers(0, c, rest).astype(np.float32)
    if ignore is not None:
        label[rng.random(rest) < (1.0 if i == 10 else 0.3)] = ignore
    h = rng.uniform(0, 2, (c, c)) if i % 6 != 3 else np.eye(c) + rng.uniform(-0.5, 0.5, (c, c))
    h = h.astype(np.float32)
    x = (rng.standard_normal(shape) * 2).astype(np.float32)
    fields = {'loss_param': loss_param or None}
    tops = ['out']
    if i % 5 == 2:
        tops, fields['loss_weight'] = ['out', 'prob'], [float(rng.choice([1.0, 0.5])), 0.0]
    elif i == 19:
        tops = ['out', 'prob']  # one loss weight (LossLayer's) for two tops: Caffe aborts
    elif i % 4 == 3:
        fields['loss_weight'] = float(rng.choice([0.5, 2.0]))
    if i % 2 == 0:  # H from the source file
        param['source'] = 'H.binaryproto'
        if i % 7 == 6:  # force_backward overrides it for the scores (not the label)
            fields['propagate_down'] = [False, False]
        body = layer('out', 'InfogainLoss', ['x', 'label'], tops, infogain_loss_param=param,
                     **fields)
        return Case(net({'x': shape, 'label': label.shape}, body), {'x': x, 'label': label},
                    files={'H.binaryproto': _blobproto(h, i % 4 == 0)},
                    phase='TEST' if i % 5 == 4 else 'TRAIN')
    if i == 13:  # propagate_down false on the scores: no diff
        fields['propagate_down'] = [False, False, False]
    h_in = h.reshape((1, 1, c, c)) if i % 4 == 1 else h
    body = [parameter('x', shape), layer('out', 'InfogainLoss', ['x', 'label', 'H'], tops,
                                         infogain_loss_param=param or None, **fields)]
    return Case(net({'label': label.shape, 'H': h_in.shape}, *body, force_backward=False),
                {'label': label, 'H': h_in}, params={'x/0': x}, no_bottom_diff=('label', 'H'),
                phase='TEST' if i % 5 == 4 else 'TRAIN')


def multinomial_logistic_loss(rng, i):
    n, c = int(rng.integers(1, 6)), int(rng.integers(1, 7))
    shape = (n, c) if i % 2 == 0 else (n, c, 1, 1)
    if i % 3 == 0:  # softmax rows
        z = np.exp(rng.standard_normal((n, c)) * 2)
        prob = z / z.sum(1, keepdims=True)
    else:
        prob = rng.uniform(1e-3, 1.0, (n, c))
        if i % 3 == 2:
            prob[rng.random((n, c)) < 0.2] = 1.0
    prob = prob.reshape(shape).astype(np.float32)
    label_shape = (n,) if i % 4 < 2 else (n, 1, 1, 1)
    label = rng.integers(0, c, label_shape).astype(np.float32)
    fields = {}
    if i % 5 == 3:
        fields['loss_weight'] = float(rng.choice([0.5, 2.0, -1.0]))
    if i == 13:  # force_backward off: propagate_down false on the probabilities
        body = [parameter('p', shape), layer('out', 'MultinomialLogisticLoss', ['p', 'label'],
                                             propagate_down=[False, False], **fields),
                layer('out2', 'MultinomialLogisticLoss', ['p', 'label'])]
        return Case(net({'label': label_shape}, *body, force_backward=False),
                    {'label': label}, params={'p/0': prob}, no_bottom_diff=('label',))
    if i % 7 == 6:  # force_backward overrides it for the probabilities
        fields['propagate_down'] = [False, False]
    body = layer('out', 'MultinomialLogisticLoss', ['p', 'label'], **fields)
    return Case(net({'p': shape, 'label': label_shape}, body), {'p': prob, 'label': label},
                phase='TEST' if i % 6 == 5 else 'TRAIN')


def sigmoid_cross_entropy_loss(rng, i):
    shape = (int(rng.integers(1, 4)),) + tuple(
        int(rng.integers(1, 5)) for _ in range(int(rng.integers(0, 4))))
    x = (rng.standard_normal(shape) * rng.choice([1.0, 3.0, 10.0])).astype(np.float32)
    kind = 2 if i == 16 else i % 3  # 16: ignore_label 0 keeps only the targets 1
    target = [rng.integers(0, 2, shape).astype(np.float64), rng.uniform(0, 1, shape),
              np.where(rng.random(shape) < 0.5, rng.integers(0, 2, shape), rng.random(shape))
              ][kind]
    loss_param = {}
    mode = i % 7
    if mode < 4:
        loss_param['normalization'] = Enum(_MODES[mode])
    elif mode < 6:
        loss_param['normalize'] = mode == 4
    if i % 7 == 3:
        loss_param['normalize'] = True  # normalization (NONE here) wins
    if i % 4 == 1 or i == 16:
        ignore = 0 if i == 16 else int(rng.choice([-1, 255]))
        loss_param['ignore_label'] = ignore
        if ignore:
            target[rng.random(shape) < (1.0 if i == 9 else 0.3)] = ignore
    target = target.astype(np.float32)
    if i % 4 == 3:  # another shape, the same count
        target = target.reshape(shape[0], -1)
    fields = {'loss_param': loss_param or None}
    if i % 5 == 2:
        fields['loss_weight'] = float(rng.choice([0.5, 2.0, -1.0]))
    if i == 13:  # force_backward off: propagate_down false on the scores: no diff
        return scores_held('SigmoidCrossEntropyLoss', x, 't', target, **fields)
    if i % 7 == 6:  # force_backward overrides it for the scores (not the targets)
        fields['propagate_down'] = [False, False]
    body = layer('out', 'SigmoidCrossEntropyLoss', ['x', 't'], **fields)
    return Case(net({'x': shape, 't': target.shape}, body), {'x': x, 't': target},
                phase='TEST' if i % 6 == 5 else 'TRAIN')


GENERATORS = {'InfogainLoss': infogain_loss, 'MultinomialLogisticLoss': multinomial_logistic_loss,
              'SigmoidCrossEntropyLoss': sigmoid_cross_entropy_loss}
