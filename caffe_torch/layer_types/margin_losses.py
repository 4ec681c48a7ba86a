"""HingeLoss and ContrastiveLoss (hinge_loss_layer.cpp, contrastive_loss_layer.cpp).

Constants from the proto (margin) are float32, as Caffe's Dtype members.
"""
import numpy as np
import torch

from caffe_torch.layer import Layer
from caffe_torch.layer_factory import register
from caffe_torch.layer_types.loss import check_first_dim, read_labels, top_loss_weight
from caffe_torch.proto import caffe_pb2

Norm = caffe_pb2.HingeLossParameter.Norm


@register('HingeLoss')
class HingeLossLayer(Layer):
    """One-versus-all hinge loss.

    bottoms: scores (N, ...) read as N rows of D = count / N values; labels, one per
      item (count N), each in [0, D).
    top: loss (scalar) = sum_{n,k} t[n, k]^p / N, p = 1 (norm L1, default) or 2 (L2),
      t[n, k] = max(0, 1 - delta(k == label_n) x[n, k]) with delta = +1 at the true class
      and -1 elsewhere, i.e. max(0, 1 - x) at the label and max(0, 1 + x) elsewhere.
    backward: dE/dx[n, k] = -delta * [t > 0] * w / N (L1), -delta * 2 t * w / N (L2),
      w = loss_weight. Caffe's forward writes t into the scores' diff and its backward
      re-signs it there; so does this forward (unless the net is forward-only), since the
      diff shows where backward does not overwrite it: with propagate_down false on the
      scores, t stays there and reaches a Split above (another branch's gradient).
      Caffe reads the first N label values whatever the label's shape; here the label
      must hold exactly N values.
    """
    exact_bottoms, exact_tops = 2, 1
    is_loss = True

    def setup(self, bottom, top):
        self.norm = self.layer_param.hinge_loss_param.norm

    def reshape(self, bottom, top):
        check_first_dim(self, bottom)
        score, label = bottom
        if label.count != score.num:
            self.fail(f'the label must hold one value per item: scores of shape '
                      f'{score.shape} need {score.num} labels, got shape {label.shape}')
        top[0].reshape()

    def forward(self, bottom, top):
        num = bottom[0].num
        x = bottom[0].data_tensor.reshape(num, -1)
        labels, _ = read_labels(self, bottom[1], num, 1, x.shape[1], None)
        self.delta = torch.ones_like(x).scatter_(1, labels, -1.0)
        self.margin = (1 + self.delta * x).clamp_(min=0)
        if self.backward_state:  # Caffe computes t in bottom[0]'s diff (caffe_copy, max)
            bottom[0].diff_tensor.copy_(self.margin.reshape(bottom[0].shape))
        if self.norm == Norm.Value('L1'):
            loss = self.margin.abs().sum()
        else:
            loss = torch.dot(self.margin.reshape(-1), self.margin.reshape(-1))
        top[0].data_tensor.copy_(loss / num)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[1]:
            self.fail('HingeLoss cannot backpropagate to label inputs (bottom 1); do not '
                      'ask for the label diff (propagate_down: false for it)')
        if not propagate_down[0]:
            return
        signed = self.margin * self.delta
        weight = top_loss_weight(top[0])
        num = bottom[0].num
        if self.norm == Norm.Value('L1'):
            grad = torch.sign(signed) * (weight / num)
        else:
            grad = signed * (weight * 2 / num)
        bottom[0].diff_tensor.copy_(grad.reshape(bottom[0].shape))


@register('ContrastiveLoss')
class ContrastiveLossLayer(Layer):
    """Contrastive loss of feature pairs (Hadsell, Chopra & LeCun 2006).

    bottoms: a (N, C, 1, 1) or (N, C), b of a's shape, y (N, 1, 1, 1) or (N,): a pair is
      similar when static_cast<int>(y) != 0.
    top: loss (scalar) = sum_n E_n / N / 2, d_n = ||a_n - b_n||, with E_n = d_n^2 for
      similar pairs and, for dissimilar ones, max(margin - d_n, 0)^2, or with
      legacy_version max(margin - d_n^2, 0).
    backward (a; b gets the negative): similar alpha (a - b), dissimilar with
      m = margin - d_n > 0: -alpha m / (d_n + 1e-4) (a - b) (legacy: m = margin - d_n^2,
      -alpha (a - b)), otherwise 0; alpha = loss_weight / N. Both features may be
      forced by force_backward; y is not (AllowForceBackward: bottom_index != 2) and
      gets no diff.
    contrastive_loss_param: margin (default 1), legacy_version (default false).
    """
    exact_bottoms, exact_tops = 3, 1
    is_loss = True

    def allow_force_backward(self, bottom_index):
        return bottom_index != 2

    def setup(self, bottom, top):
        p = self.layer_param.contrastive_loss_param
        self.margin = float(np.float32(p.margin))
        self.legacy = p.legacy_version

    def reshape(self, bottom, top):
        a, b, y = bottom
        check_first_dim(self, bottom[:2])
        if a.channels != b.channels or (a.height, a.width, b.height, b.width) != (1,) * 4:
            self.fail(f'the two features must have shape (N, C) or (N, C, 1, 1) with the '
                      f'same C: bottom 0 has shape {a.shape}, bottom 1 {b.shape}')
        if (y.channels, y.height, y.width) != (1, 1, 1) or y.count != a.num:
            self.fail(f'the similarity label (bottom 2) must hold one value per pair, '
                      f'shape ({a.num},) or ({a.num}, 1, 1, 1); got {y.shape}')
        top[0].reshape()

    def forward(self, bottom, top):
        a, b, y = bottom
        num = a.num
        self.diff = a.data_tensor.reshape(num, -1) - b.data_tensor.reshape(num, -1)
        self.dist_sq = (self.diff * self.diff).sum(dim=1)
        self.similar = torch.trunc(y.data_tensor.reshape(-1)) != 0
        if self.legacy:
            dissimilar = (self.margin - self.dist_sq).clamp(min=0)
        else:
            dissimilar = (self.margin - self.dist_sq.sqrt()).clamp(min=0).square()
        loss = torch.where(self.similar, self.dist_sq, dissimilar).sum()
        top[0].data_tensor.copy_(loss / num / 2)

    def backward(self, top, propagate_down, bottom):
        weight = top_loss_weight(top[0])
        for index, sign in ((0, 1.0), (1, -1.0)):
            if not propagate_down[index]:
                continue
            alpha = sign * weight / bottom[index].num
            if self.legacy:
                short = self.margin - self.dist_sq
                beta = -alpha * torch.ones_like(short)
            else:
                dist = self.dist_sq.sqrt()
                short = self.margin - dist
                beta = -alpha * short / (dist + float(np.float32(1e-4)))
            coeff = torch.where(self.similar, alpha * torch.ones_like(beta),
                                torch.where(short > 0, beta, torch.zeros_like(beta)))
            grad = coeff.unsqueeze(1) * self.diff
            bottom[index].diff_tensor.copy_(grad.reshape(bottom[index].shape))
