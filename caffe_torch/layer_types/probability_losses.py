"""SigmoidCrossEntropyLoss, InfogainLoss and MultinomialLogisticLoss
(sigmoid_cross_entropy_loss_layer.cpp, infogain_loss_layer.cpp,
multinomial_logistic_loss_layer.cpp).

Normalization, label reading and the loss weight come from loss.py, so these layers read
loss_param exactly as SoftmaxWithLoss does. Labels are read as Caffe reads them,
`static_cast<int>` (truncation toward zero); a label outside [0, C) that is not the
ignore_label is an error naming it (Caffe only DCHECKs and reads out of bounds).
The probability losses clip at Caffe's kLOG_THRESHOLD (1e-20) before the log.
"""
import numpy as np
import torch

from caffe_torch import formats, io
from caffe_torch.layer import Layer
from caffe_torch.layer_factory import register
from caffe_torch.layer_types.loss import (Normalization, check_first_dim, check_label_count,
                                          float_div, kept_count, loss_normalization,
                                          loss_normalizer, read_labels, softmax,
                                          top_loss_weight)

LOG_THRESHOLD = float(np.float32(1e-20))  # kLOG_THRESHOLD in loss_layer.hpp


def _ignore_label(loss_param):
    return loss_param.ignore_label if loss_param.HasField('ignore_label') else None


def _refuse_label_diff(layer, propagate_down):
    if propagate_down[1]:
        layer.fail(f'{layer.type} cannot backpropagate to label inputs (bottom 1); do not '
                   f'ask for the label diff (propagate_down: false for it)')


@register('SigmoidCrossEntropyLoss')
class SigmoidCrossEntropyLossLayer(Layer):
    """Cross entropy of sigmoid(x) against targets t in [0, 1] (soft targets allowed).

    bottoms: scores x (N, ...), targets t with the same count (first dimensions equal).
    top: loss (scalar) = sum over kept elements of
      -[x (t - [x >= 0]) - log(1 + exp(x - 2 x [x >= 0]))] / normalizer
      (Caffe's overflow-free form of -t log p - (1 - t) log(1 - p), p = sigmoid(x)).
      Float32 throughout, log(1 + exp(.)) as written (a term below float's epsilon
      is lost, as in Caffe); sigmoid(x) = 0.5 tanh(0.5 x) + 0.5 in double, rounded, as
      Caffe's SigmoidLayer.
    backward: dE/dx = (sigmoid(x) - t) * loss_weight / normalizer, zero where ignored.
    loss_param: ignore_label (an element is ignored when static_cast<int>(t) equals it);
      normalization VALID (kept elements), FULL (N * count/N), BATCH_SIZE (N), NONE (1).
      Unlike SoftmaxWithLoss the default, with neither normalization nor normalize set,
      is BATCH_SIZE; legacy normalize true/false means VALID/BATCH_SIZE. The normalizer
      is floored at 1.
    """
    exact_bottoms, exact_tops = 2, 1
    is_loss = True

    def setup(self, bottom, top):
        loss_param = self.layer_param.loss_param
        self.ignore_label = _ignore_label(loss_param)
        if loss_param.HasField('normalization') or loss_param.HasField('normalize'):
            self.normalization = loss_normalization(loss_param)
        else:
            self.normalization = Normalization.Value('BATCH_SIZE')

    def reshape(self, bottom, top):
        check_first_dim(self, bottom)
        score, target = bottom
        if score.count != target.count:
            self.fail(f'inputs must have the same count: scores of shape {score.shape} '
                      f'({score.count} values), targets of shape {target.shape} '
                      f'({target.count}); give one target per score')
        self.outer, self.inner = score.shape[0], score.count_range(1)
        top[0].reshape()

    def forward(self, bottom, top):
        x = bottom[0].data_tensor
        target = bottom[1].data_tensor.reshape(x.shape)
        # Caffe's SigmoidLayer: 0.5 * tanh(0.5 * x) + 0.5 in double, rounded to float
        self.prob = torch.tanh(x.double() * 0.5).mul_(0.5).add_(0.5).to(x.dtype)
        self.target = target
        positive = (x >= 0).to(x.dtype)
        # log(1 + exp(.)) in float as Caffe (not log1p): terms below float's epsilon vanish
        loss = x * (target - positive) - torch.log(1 + torch.exp(x - 2 * x * positive))
        self.valid = None
        if self.ignore_label is not None:
            self.valid = torch.trunc(target) != float(self.ignore_label)
            loss = loss.masked_fill(~self.valid, 0)
            valid_count = self.valid.sum()
        else:
            valid_count = torch.tensor(x.numel(), device=x.device)
        self.normalizer = loss_normalizer(self.normalization, self.outer, self.inner,
                                          valid_count)
        top[0].data_tensor.copy_(-loss.sum() / self.normalizer)

    def backward(self, top, propagate_down, bottom):
        _refuse_label_diff(self, propagate_down)
        if not propagate_down[0]:
            return
        grad = self.prob - self.target
        if self.valid is not None:
            grad.masked_fill_(~self.valid, 0)
        grad *= top_loss_weight(top[0]) / self.normalizer
        bottom[0].diff_tensor.copy_(grad)


@register('InfogainLoss')
class InfogainLossLayer(Layer):
    """Multinomial logistic loss of the softmax of the scores, weighted by a matrix H.

    bottoms: scores (N, C, ...) with the C classes on infogain_loss_param.axis (default
      1); labels, one per position outside that axis (outer * inner values in [0, C));
      optional third bottom H with C * C values (any shape). Without it H comes from
      infogain_loss_param.source, a BlobProto binaryproto (count C * C).
    tops: loss (scalar) = -sum over kept positions of sum_k H[label, k] log(max(p_k,
      1e-20)) / normalizer, p = softmax(scores) along the axis; optional second top: p
      (shape of the scores), which backward ignores.
    backward: dE/dscore_k = (p_k * sum_j H[label, j] - H[label, k]) * loss_weight /
      normalizer, zero at ignored positions. H and the labels get no diff: Caffe aborts
      when asked for either, and force_backward does ask for H's (only a loss layer's
      bottom 1 is exempt), so a net giving H as a bottom must not set force_backward.
    loss_param: ignore_label; normalization (default VALID, FULL, BATCH_SIZE, NONE);
      the deprecated `normalize` is refused, as in Caffe.
    """
    min_bottoms, max_bottoms = 2, 3
    min_tops, max_tops = 1, 2
    is_loss = True

    def setup(self, bottom, top):
        loss_param = self.layer_param.loss_param
        self.ignore_label = _ignore_label(loss_param)
        if loss_param.HasField('normalize'):
            self.fail('loss_param.normalize is deprecated and InfogainLoss refuses it; use '
                      'loss_param.normalization (VALID for normalize: true, BATCH_SIZE for '
                      'normalize: false)')
        self.normalization = loss_param.normalization
        self.infogain = None
        if len(bottom) < 3:
            self.infogain = self._read_source(bottom[0].data_tensor.device)

    def _read_source(self, device):
        param = self.layer_param.infogain_loss_param
        if not param.HasField('source'):
            self.fail('Infogain matrix source must be specified: give '
                      'infogain_loss_param.source (a binaryproto holding the C x C matrix '
                      'H) or H as a third bottom')
        try:
            array = io.blobproto_to_array(formats.read_binaryproto(param.source))
        except (OSError, ValueError) as e:
            self.fail(f'cannot read the infogain matrix from infogain_loss_param.source '
                      f'"{param.source}": {e}')
        return torch.as_tensor(np.asarray(array, np.float32), device=device)

    def _matrix(self, bottom):
        if self.infogain is not None:
            return self.infogain.to(bottom[0].data_tensor.device)
        return bottom[2].data_tensor

    def reshape(self, bottom, top):
        check_first_dim(self, bottom[:2])
        score, label = bottom[0], bottom[1]
        self.axis = self.canonical_axis(score, self.layer_param.infogain_loss_param.axis,
                                        'infogain_loss_param.axis')
        self.outer = score.count_range(0, self.axis)
        self.inner = score.count_range(self.axis + 1)
        check_label_count(self, score, label, self.axis, self.outer, self.inner)
        self.num_labels = score.shape[self.axis]
        count = self.infogain.numel() if self.infogain is not None else bottom[2].count
        if count != self.num_labels ** 2:
            where = ('infogain_loss_param.source' if self.infogain is not None
                     else f'bottom 2 of shape {bottom[2].shape}')
            self.fail(f'H must be {self.num_labels}x{self.num_labels} for the '
                      f'{self.num_labels} classes on axis {self.axis} of the scores '
                      f'{score.shape}, but {where} holds {count} values')
        top[0].reshape()
        if len(top) > 1:
            top[1].reshape(*score.shape)

    def forward(self, bottom, top):
        channels = self.num_labels
        self.prob = softmax(bottom[0].data_tensor, self.axis)
        self.labels, self.valid = read_labels(self, bottom[1], self.outer, self.inner,
                                              channels, self.ignore_label)
        matrix = self._matrix(bottom).reshape(channels, channels)
        log_prob = self.prob.reshape(self.outer, channels, self.inner) \
            .clamp(min=LOG_THRESHOLD).log_()
        rows = matrix[self.labels]  # (outer, inner, C): H[label] at each position
        per_position = (rows * log_prob.transpose(1, 2)).sum(dim=2)
        if self.valid is not None:
            per_position.masked_fill_(~self.valid, 0)
        self.normalizer = loss_normalizer(self.normalization, self.outer, self.inner,
                                          kept_count(self.valid, self.outer, self.inner))
        top[0].data_tensor.fill_(float_div(-float(per_position.sum()), float(self.normalizer)))
        if len(top) > 1:
            top[1].data_tensor.copy_(self.prob)

    def backward(self, top, propagate_down, bottom):
        _refuse_label_diff(self, propagate_down)
        if len(propagate_down) > 2 and propagate_down[2]:
            self.fail('InfogainLoss cannot backpropagate to infogain inputs (bottom 2, the '
                      'matrix H); drop force_backward from the net or set propagate_down: '
                      'false for H')
        if not propagate_down[0]:
            return
        channels = self.num_labels
        matrix = self._matrix(bottom).reshape(channels, channels)
        row_sums = matrix.sum(dim=1)
        prob = self.prob.reshape(self.outer, channels, self.inner)
        grad = prob * row_sums[self.labels].unsqueeze(1) \
            - matrix[self.labels].transpose(1, 2)
        if self.valid is not None:
            grad.masked_fill_(~self.valid.unsqueeze(1), 0)
        grad *= float_div(float(top_loss_weight(top[0])), float(self.normalizer))
        bottom[0].diff_tensor.copy_(grad.reshape(bottom[0].shape))


@register('MultinomialLogisticLoss')
class MultinomialLogisticLossLayer(Layer):
    """Negative log of given probabilities at the true class (no softmax inside).

    bottoms: probabilities (N, ...) read as N rows of D = count / N values; labels with
      one value per item, shape (N,) or (N, 1, 1, 1), each in [0, D).
    top: loss (scalar) = -sum_n log(max(p[n, label_n], 1e-20)) / N.
    backward: dE/dp[n, label_n] = -loss_weight / N / max(p[n, label_n], 1e-20), zero
      elsewhere. No ignore_label and no normalization options (Caffe has none here).
    """
    exact_bottoms, exact_tops = 2, 1
    is_loss = True

    def reshape(self, bottom, top):
        check_first_dim(self, bottom)
        prob, label = bottom
        if (label.channels, label.height, label.width) != (1, 1, 1) \
                or label.count != prob.num:
            self.fail(f'the label must hold one value per item, shape ({prob.num},) or '
                      f'({prob.num}, 1, 1, 1); got shape {label.shape}')
        top[0].reshape()

    def forward(self, bottom, top):
        num = bottom[0].num
        dim = bottom[0].count // num
        self.labels, _ = read_labels(self, bottom[1], num, 1, dim, None)
        rows = bottom[0].data_tensor.reshape(num, dim)
        self.picked = rows.gather(1, self.labels).clamp_(min=LOG_THRESHOLD)
        top[0].data_tensor.copy_(-self.picked.log().sum() / num)

    def backward(self, top, propagate_down, bottom):
        _refuse_label_diff(self, propagate_down)
        if not propagate_down[0]:
            return
        num = bottom[0].num
        scale = -top_loss_weight(top[0]) / num
        grad = torch.zeros_like(bottom[0].data_tensor).reshape(num, -1)
        grad.scatter_(1, self.labels, scale / self.picked)
        bottom[0].diff_tensor.copy_(grad.reshape(bottom[0].shape))
