"""Reduction (reduction_layer.cpp): sum-like reductions over all axes from `axis` on."""
import numpy as np
import torch

from caffe_torch.layer import Layer
from caffe_torch.layer_factory import register
from caffe_torch.proto import caffe_pb2

Op = caffe_pb2.ReductionParameter.ReductionOp


@register('Reduction')
class ReductionLayer(Layer):
    """Reduce every axis from reduction_param.axis (default 0) to the end.

    bottom: x; top: x.shape[:axis] (a 0-d scalar for axis 0), each entry
      coeff * op(the x values it covers): SUM (default) sum x, ASUM sum |x|, SUMSQ sum x^2,
      MEAN sum x / D, D = count from axis on. Reducing only leading or middle axes is not
      possible (Caffe's restriction too), nor reducing a 0-d bottom (Caffe has no axis
      0 there).
    backward: dx = coeff * dy for SUM, coeff / D * dy for MEAN, coeff * sign(x) * dy for
      ASUM (0 at x = 0), 2 coeff x * dy for SUMSQ.
    coeff (default 1) is float32, and MEAN's coeff / D is divided in float32, as Caffe's
    Dtype member.
    """
    exact_bottoms = exact_tops = 1

    def setup(self, bottom, top):
        self.op = self.layer_param.reduction_param.operation

    def reshape(self, bottom, top):
        p = self.layer_param.reduction_param
        if bottom[0].num_axes == 0:  # Caffe's CanonicalAxisIndex: no axis of a 0-d blob
            self.fail(f'reduction_param.axis = {p.axis} is out of range for a 0-d bottom '
                      f'(a scalar, e.g. the top of a Reduction over axis 0); it has '
                      f'nothing to reduce: feed the scalar on directly')
        axis = self.canonical_axis(bottom[0], p.axis, 'reduction_param.axis')
        top[0].reshape(*bottom[0].shape[:axis])
        self.num = bottom[0].count_range(0, axis)
        self.dim = bottom[0].count_range(axis)
        coeff = np.float32(p.coeff)
        if self.op == Op.Value('MEAN'):
            with np.errstate(divide='ignore', invalid='ignore'):
                coeff = coeff / np.float32(self.dim)
        self.coeff = float(coeff)

    def forward(self, bottom, top):
        x = bottom[0].data_tensor.reshape(self.num, self.dim)
        if self.op in (Op.Value('SUM'), Op.Value('MEAN')):
            result = x.sum(dim=1)
        elif self.op == Op.Value('ASUM'):
            result = x.abs().sum(dim=1)
        else:
            result = (x * x).sum(dim=1)
        if self.coeff != 1.0:
            result *= self.coeff
        top[0].data_tensor.copy_(result.reshape(top[0].shape))

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        scale = (top[0].diff_tensor.reshape(self.num, 1) * self.coeff)
        x = bottom[0].data_tensor.reshape(self.num, self.dim)
        if self.op in (Op.Value('SUM'), Op.Value('MEAN')):
            grad = scale.expand(self.num, self.dim)
        elif self.op == Op.Value('ASUM'):
            grad = torch.sign(x) * scale
        else:
            grad = x * (2 * scale)
        bottom[0].diff_tensor.copy_(grad.reshape(bottom[0].shape))
