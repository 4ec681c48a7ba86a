"""Softmax, the loss layers and Accuracy (softmax_layer.cpp, softmax_loss_layer.cpp,
euclidean_loss_layer.cpp, accuracy_layer.cpp, loss_layer.cpp).

Labels are float blobs read as Caffe reads them, `static_cast<int>` (truncation toward
zero), one per position of the score blob outside the class axis. Caffe only DCHECKs label
ranges (release builds read out of bounds); here a label outside [0, C) that is not the
ignore_label is an error naming the value.
"""
import numpy as np
import torch

from caffe_torch.layer import Layer
from caffe_torch.layer_factory import register
from caffe_torch.proto import caffe_pb2

FLT_MIN = float(np.finfo(np.float32).tiny)
Normalization = caffe_pb2.LossParameter.NormalizationMode


def softmax(x, axis):
    """Caffe's three steps: subtract the max over `axis`, exponentiate, divide by the sum."""
    shifted = x - x.amax(dim=axis, keepdim=True)
    exp = shifted.exp_()
    return exp.div_(exp.sum(dim=axis, keepdim=True))


def _softmax_backward(top_data, top_diff, axis):
    dot = (top_diff * top_data).sum(dim=axis, keepdim=True)
    return (top_diff - dot).mul_(top_data)




def check_first_dim(layer, bottom):
    """LossLayer::Reshape: the data and label bottoms agree in their first dimension."""
    a, b = bottom
    if a.num_axes == 0 or b.num_axes == 0 or a.shape[0] != b.shape[0]:
        layer.fail(f'the data and label should have the same first dimension: bottom 0 '
                   f'has shape {a.shape}, bottom 1 has shape {b.shape}')


def check_label_count(layer, score, label, axis, outer, inner):
    if outer * inner != label.count:
        layer.fail(f'number of labels must match number of predictions: score of shape '
                   f'{score.shape} with axis {axis} needs {outer} x {inner} = '
                   f'{outer * inner} labels, but label of shape {label.shape} has '
                   f'{label.count}; e.g. score (N, C, H, W) takes N*H*W labels in '
                   f'{{0, ..., C-1}}')


def read_labels(layer, label, outer, inner, channels, ignore_label):
    """(labels, valid): int64 labels (outer, inner), 0 where ignored, and the kept mask (None
    when every position is kept: no ignore_label)."""
    labels = label.data_tensor.reshape(outer, inner).long()
    valid = None
    if ignore_label is not None:
        valid = labels != ignore_label
        labels = labels.masked_fill(~valid, 0)
    if labels.numel():
        low, high = torch.aminmax(labels)
        if int(low) < 0 or int(high) >= channels:
            value = int(labels[(labels < 0) | (labels >= channels)][0])
            hint = f', and ignore_label is {ignore_label}' if ignore_label is not None else \
                '; set an ignore_label to skip such positions'
            layer.fail(f'label value {value} is outside [0, {channels}) for a score with '
                       f'{channels} classes{hint}')
    return labels, valid


def kept_count(valid, outer, inner):
    """How many positions count: a tensor under an ignore_label, else outer * inner."""
    return valid.sum() if valid is not None else outer * inner


def float_div(a, b):
    """Caffe's float a / b, divided on the host: on CUDA torch multiplies by a Python
    scalar's reciprocal instead, which may round the last bit differently."""
    return float(np.float32(a) / np.float32(b))


def top_loss_weight(top):
    """The loss top's diff: its loss_weight, or what the caller set there."""
    return top.diff_tensor.reshape(-1)[0]


@register('Softmax')
class SoftmaxLayer(Layer):
    """Softmax along softmax_param.axis (default 1).

    bottom: x (any shape with the axis). top: y, shape of x,
    y = exp(x - max_c x) / sum_c exp(x - max_c x) over the axis.
    backward: dE/dx = (dE/dy - sum_c(dE/dy * y)) * y. In place works: it reads only y.
    Written whenever backward is called, even with propagate_down false (Caffe's
    Backward_cpu does not look at it).
    """
    exact_bottoms = exact_tops = 1

    def reshape(self, bottom, top):
        self.axis = self.canonical_axis(bottom[0], self.layer_param.softmax_param.axis,
                                    'softmax_param.axis')
        top[0].reshape(*bottom[0].shape)

    def forward(self, bottom, top):
        top[0].data_tensor.copy_(softmax(bottom[0].data_tensor, self.axis))

    def backward(self, top, propagate_down, bottom):
        # No propagate_down test: Caffe's Backward_cpu writes the bottom diff whenever the
        # net calls it (propagate_down: false on a bottom that needs backward elsewhere).
        grad = _softmax_backward(top[0].data_tensor, top[0].diff_tensor, self.axis)
        bottom[0].diff_tensor.copy_(grad)


def loss_normalization(loss_param):
    """The deprecated `normalize` decides only when `normalization` is not set."""
    if not loss_param.HasField('normalization') and loss_param.HasField('normalize'):
        return Normalization.Value('VALID' if loss_param.normalize else 'BATCH_SIZE')
    return loss_param.normalization


def loss_normalizer(mode, outer, inner, valid_count):
    """LossLayer::GetNormalizer, floored at 1 so an all-ignored batch gives 0, not NaN."""
    if mode == Normalization.Value('VALID') and isinstance(valid_count, torch.Tensor):
        return valid_count.to(torch.float32).clamp_(min=1.0)
    if mode == Normalization.Value('VALID'):
        return max(1.0, float(valid_count))
    sizes = {Normalization.Value('FULL'): outer * inner,
             Normalization.Value('BATCH_SIZE'): outer,
             Normalization.Value('NONE'): 1}
    return max(1.0, float(sizes[mode]))


@register('SoftmaxWithLoss')
class SoftmaxWithLossLayer(Layer):
    """Multinomial logistic loss of the softmax of the scores.

    bottoms: score (N, C, ...) with the classes on softmax_param.axis; label with
      outer * inner = N * (...) values in {0, ..., C-1} (e.g. (N, 1, H, W) or (N, H, W)).
    tops: loss (scalar) = -sum over kept positions of log(max(p[label], FLT_MIN)) /
      normalizer. A second top (the probabilities) is refused, as BVLC Caffe aborts on
      it whatever the loss weights: without them LossLayer adds one weight for two tops,
      and with two the inner Softmax (a copy of this LayerParameter) has one top for
      two weights; a Softmax layer on the scores gives the probabilities.
    backward: d loss / d score = (p - onehot(label)) * loss_weight / normalizer, zero at
      positions whose label is loss_param.ignore_label. Labels get no diff.
    loss_param: ignore_label; normalization FULL (outer*inner), VALID (kept positions,
      default), BATCH_SIZE (outer), NONE (1); legacy normalize true/false = VALID/BATCH_SIZE.
    """
    exact_bottoms = 2
    min_tops, max_tops = 1, 2
    is_loss = True

    def setup(self, bottom, top):
        if len(top) > 1:
            self.fail('loss_weight must be unspecified or specified once per top blob: '
                      'BVLC Caffe cannot give SoftmaxWithLoss a second (probability) top, '
                      'its inner Softmax copies this layer\'s loss weights (one per top, '
                      'or one added by LossLayer) for its single top and aborts; take the '
                      'probabilities from a Softmax layer on the scores instead')
        loss_param = self.layer_param.loss_param
        self.ignore_label = (loss_param.ignore_label if loss_param.HasField('ignore_label')
                             else None)
        self.normalization = loss_normalization(loss_param)

    def reshape(self, bottom, top):
        score, label = bottom
        check_first_dim(self, bottom)
        self.axis = self.canonical_axis(score, self.layer_param.softmax_param.axis,
                                    'softmax_param.axis')
        self.outer = score.count_range(0, self.axis)
        self.inner = score.count_range(self.axis + 1)
        check_label_count(self, score, label, self.axis, self.outer, self.inner)
        top[0].reshape()

    def forward(self, bottom, top):
        channels = bottom[0].shape[self.axis]
        self.prob = softmax(bottom[0].data_tensor, self.axis)
        self.labels, self.valid = read_labels(self, bottom[1], self.outer, self.inner,
                                              channels, self.ignore_label)
        prob = self.prob.reshape(self.outer, channels, self.inner)
        log_prob = prob.gather(1, self.labels.unsqueeze(1)).clamp_(min=FLT_MIN).log_()
        if self.valid is not None:
            log_prob.masked_fill_(~self.valid.unsqueeze(1), 0)
        self.normalizer = loss_normalizer(self.normalization, self.outer, self.inner,
                                          kept_count(self.valid, self.outer, self.inner))
        top[0].data_tensor.fill_(float_div(-float(log_prob.sum()), float(self.normalizer)))
        if not self.backward_state:  # a forward-only net: backward's probabilities go
            self.prob = self.labels = self.valid = None

    def backward(self, top, propagate_down, bottom):
        if propagate_down[1]:
            self.fail('SoftmaxWithLoss cannot backpropagate to label inputs (bottom 1); '
                      'do not ask for the label diff')
        if not propagate_down[0]:
            return
        channels = bottom[0].shape[self.axis]
        grad = self.prob.reshape(self.outer, channels, self.inner).clone()
        labels = self.labels.unsqueeze(1)
        if self.valid is None:
            grad.scatter_add_(1, labels, grad.new_full(labels.shape, -1.0))
        else:
            valid = self.valid.unsqueeze(1)
            grad.scatter_add_(1, labels, -valid.to(grad.dtype))
            grad.masked_fill_(~valid, 0)
        scale = float_div(float(top_loss_weight(top[0])), float(self.normalizer))
        torch.mul(grad.reshape(bottom[0].shape), scale, out=bottom[0].diff_tensor)


@register('EuclideanLoss')
class EuclideanLossLayer(Layer):
    """Half the squared Euclidean distance per item.

    bottoms: a and b, same first dimension and same count from axis 1 on.
    top: loss (scalar) = sum((a - b)^2) / N / 2, N = a.shape[0].
    backward: both bottoms (b too, under force_backward): da = +(a - b) * w / N,
      db = -(a - b) * w / N, w = the top diff (loss_weight).
    """
    exact_bottoms, exact_tops = 2, 1
    is_loss = True

    def allow_force_backward(self, bottom_index):
        """Either input may be the one being fitted, so both can be forced."""
        return True

    def reshape(self, bottom, top):
        check_first_dim(self, bottom)
        a, b = bottom
        if a.count_range(1) != b.count_range(1):
            self.fail(f'inputs must have the same dimension: bottom 0 of shape {a.shape} '
                      f'has {a.count_range(1)} values per item, bottom 1 of shape '
                      f'{b.shape} has {b.count_range(1)}')
        top[0].reshape()

    def forward(self, bottom, top):
        a, b = bottom
        self.diff = a.data_tensor - b.data_tensor.reshape(a.shape)
        dot = torch.dot(self.diff.reshape(-1), self.diff.reshape(-1))
        top[0].data_tensor.copy_(dot / a.num / 2.0)

    def backward(self, top, propagate_down, bottom):
        for index, sign in ((0, 1.0), (1, -1.0)):
            if propagate_down[index]:
                alpha = sign * top_loss_weight(top[0]) / bottom[index].num
                grad = self.diff * alpha
                bottom[index].diff_tensor.copy_(grad.reshape(bottom[index].shape))


@register('Accuracy')
class AccuracyLayer(Layer):
    """Top-k classification accuracy (a metric; no backward).

    bottoms: score (N, C, ...) with the classes on accuracy_param.axis; label with one
      value per position outside that axis.
    tops: accuracy (scalar) = correct / counted positions (0 if none); optional second
      top: per-class accuracy (C,) = correct / seen for each true class (0 if unseen).
    A position counts as correct when fewer than top_k scores are >= the true class's
      score, the true class excluded: ties count against it, as in Caffe's loop.
    accuracy_param: top_k (default 1), axis (default 1), ignore_label (skipped positions).
    """
    exact_bottoms = 2
    min_tops, max_tops = 1, 2

    def setup(self, bottom, top):
        param = self.layer_param.accuracy_param
        self.top_k = param.top_k
        self.ignore_label = param.ignore_label if param.HasField('ignore_label') else None

    def reshape(self, bottom, top):
        score, label = bottom
        classes = score.count // label.count if label.count else 0
        if self.top_k > classes:
            self.fail(f'top_k must be less than or equal to the number of classes: top_k '
                      f'{self.top_k}, but score of shape {score.shape} over label of '
                      f'shape {label.shape} gives {classes}')
        self.axis = self.canonical_axis(score, self.layer_param.accuracy_param.axis,
                                    'accuracy_param.axis')
        self.outer = score.count_range(0, self.axis)
        self.inner = score.count_range(self.axis + 1)
        check_label_count(self, score, label, self.axis, self.outer, self.inner)
        top[0].reshape()
        if len(top) > 1:
            top[1].reshape(score.shape[self.axis])

    def forward(self, bottom, top):
        channels = bottom[0].shape[self.axis]
        scores = bottom[0].data_tensor.reshape(self.outer, channels, self.inner)
        labels, valid = read_labels(self, bottom[1], self.outer, self.inner, channels,
                                    self.ignore_label)
        true_score = scores.gather(1, labels.unsqueeze(1))
        # the true class always meets its own score: fewer than top_k others means <= top_k
        correct = (scores >= true_score).sum(dim=1) <= self.top_k
        if valid is not None:
            correct &= valid
        count = int(kept_count(valid, self.outer, self.inner))
        top[0].data_tensor.fill_(float_div(int(correct.sum()), count) if count else 0.0)
        if len(top) > 1:
            top[1].data_tensor.copy_(self._per_class(labels, valid, correct, channels))

    @staticmethod
    def _per_class(labels, valid, correct, channels):
        flat = labels.reshape(-1)
        seen = torch.zeros(channels, dtype=torch.float32, device=flat.device)
        kept = (valid.reshape(-1).to(torch.float32) if valid is not None
                else torch.ones(flat.shape, dtype=torch.float32, device=flat.device))
        seen.scatter_add_(0, flat, kept)
        right = torch.zeros_like(seen).scatter_add_(0, flat,
                                                    correct.reshape(-1).to(torch.float32))
        return torch.where(seen > 0, right / seen.clamp(min=1), 0.0)

    def backward(self, top, propagate_down, bottom):
        if any(propagate_down):
            self.fail('Accuracy has no backward (Caffe: NOT_IMPLEMENTED); it cannot be '
                      'used as a loss. Keep its bottoms out of backward (no loss_weight '
                      'on it, or propagate_down: false)')
