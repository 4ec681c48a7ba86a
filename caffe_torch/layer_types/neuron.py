"""Caffe's neuron layers: one bottom, one top of the same shape, element-wise.

Each may run in place (top blob is the bottom blob) except AbsVal, which Caffe refuses.
In place, forward overwrites the bottom data, and a backward that reads bottom data then
reads the output instead. That is harmless where the formula only needs what survives
(ReLU with negative_slope >= 0 needs the sign, Sigmoid/TanH/Exp read the top, Dropout its
mask). Caffe keeps no copy of the input for BNLL, Log and Power, so in place its gradient
is computed from the output. Worse, Power and Log write dy/dx into the bottom diff before
multiplying by the top diff, which in place is the same memory: Caffe's bottom diff is then
(dy/dx)^2 whatever the top diff (e.g. 9 everywhere for an in-place `scale: 3` Power). These
layers reproduce those numbers, as recorded from BVLC Caffe, rather than fix them: use them
out of place for the true gradient.

Constants derived from the proto (diff_scale_, inner_scale_, ...) are float32 products as in
Caffe's Dtype members, so results match Caffe's rounding.
"""
import math

import numpy as np
import torch

from caffe_torch import mode
from caffe_torch.layer import Layer
from caffe_torch.layer_factory import register
from caffe_torch.batch_invariant import scalar_pow
from caffe_torch.proto import caffe_pb2

_BNLL_THRESHOLD = 50.0  # kBNLL_THRESHOLD: keeps exp() finite in BNLL's backward


def _f32(value):
    """A Python float holding `value` rounded to float32, as a Caffe Dtype member."""
    return float(np.float32(value))


def _affine(x, scale, shift):
    """shift + scale * x as a new tensor, scaled then shifted as Caffe rounds it."""
    out = x * scale if scale != 1 else x.clone()
    return out.add_(shift) if shift != 0 else out


class NeuronLayer(Layer):
    """Base of the element-wise layers: exactly one bottom and one top, top shaped like it.

    Subclasses implement `activate(x)` (the forward result as a new tensor) and
    `gradient(top, bottom)` (dE/dx as a new tensor, top diff included).
    """
    exact_bottoms = 1
    exact_tops = 1

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].shape)

    def forward(self, bottom, top):
        top[0].data_tensor.copy_(self.activate(bottom[0].data_tensor))

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            bottom[0].diff_tensor.copy_(self.gradient(top, bottom))

    def activate(self, x):
        raise NotImplementedError

    def gradient(self, top, bottom):
        raise NotImplementedError


@register('ReLU')
class ReLULayer(NeuronLayer):
    """Rectified linear unit, optionally leaky.

    bottom: x, any shape. top: y = x if x > 0 else negative_slope * x.
    backward: dE/dx = dE/dy * (1 if x > 0 else negative_slope), with x read from the bottom
    data; in place that is y, of the same sign when negative_slope >= 0.
    relu_param: negative_slope (default 0); engine is ignored (same numbers).
    """

    def setup(self, bottom, top):
        self.negative_slope = self.layer_param.relu_param.negative_slope

    def forward(self, bottom, top):
        if self.negative_slope != 0:
            return super().forward(bottom, top)
        x, y = bottom[0].data_tensor, top[0].data_tensor
        torch.clamp_min(x, 0, out=y)  # in place (y is x) with no temporary

    def backward(self, top, propagate_down, bottom):
        if self.negative_slope != 0 or not propagate_down[0]:
            return super().backward(top, propagate_down, bottom)
        # dy where x > 0, else 0 (NaN x gives 0, as Caffe's (x > 0) mask), into place
        torch.ops.aten.threshold_backward.grad_input(
            top[0].diff_tensor, bottom[0].data_tensor, 0, grad_input=bottom[0].diff_tensor)

    def activate(self, x):
        return torch.where(x > 0, x, x * self.negative_slope)

    def gradient(self, top, bottom):
        x, top_diff = bottom[0].data_tensor, top[0].diff_tensor
        return torch.where(x > 0, top_diff, top_diff * self.negative_slope)


@register('Sigmoid')
class SigmoidLayer(NeuronLayer):
    """Logistic sigmoid, computed as Caffe does: y = 0.5 * tanh(0.5 * x) + 0.5.

    bottom: x, any shape. top: y in (0, 1).
    backward: dE/dx = dE/dy * y * (1 - y), from the top data (so in place is exact).
    """

    def activate(self, x):
        return torch.tanh(x * 0.5).mul_(0.5).add_(0.5)

    def gradient(self, top, bottom):
        y = top[0].data_tensor
        return top[0].diff_tensor * y * (1 - y)


@register('TanH')
class TanHLayer(NeuronLayer):
    """Hyperbolic tangent. bottom: x, any shape. top: y = tanh(x).

    backward: dE/dx = dE/dy * (1 - y^2), from the top data (so in place is exact).
    """

    def activate(self, x):
        return torch.tanh(x)

    def gradient(self, top, bottom):
        y = top[0].data_tensor
        return top[0].diff_tensor * (1 - y * y)


@register('Dropout')
class DropoutLayer(NeuronLayer):
    """Inverted dropout.

    bottom: x, any shape (Caffe shapes its mask like the bottom). top: TRAIN:
    y = x * m / (1 - p) with m ~ Bernoulli(1 - p) drawn per element every forward and kept
    in `rand_vec` (int32, Caffe's unsigned mask); TEST: y = x.
    backward: TRAIN: dE/dx = dE/dy * m / (1 - p) with the forward's mask; TEST: dE/dy.
    dropout_param: dropout_ratio p (default 0.5), in [0, 1).
    Random numbers come from the device's seeded generator, not Caffe's boost stream, so
    masks differ from Caffe's while their distribution does not.
    """

    def setup(self, bottom, top):
        self.ratio = self.layer_param.dropout_param.dropout_ratio
        if not 0 <= self.ratio < 1:
            self.fail(f'dropout_ratio must be in [0, 1), got {self.ratio}; it is the '
                      f'probability of dropping a unit')
        self.scale = _f32(1.0 / (1.0 - self.ratio))
        self.rand_vec = None

    def forward(self, bottom, top):
        x = bottom[0].data_tensor
        if self.phase != caffe_pb2.TRAIN:
            top[0].data_tensor.copy_(x)
            return
        uniform = torch.rand(x.shape, generator=mode.generator(x.device), device=x.device)
        self.rand_vec = (uniform < 1 - self.ratio).to(torch.int32)
        top[0].data_tensor.copy_(x * self.rand_vec * self.scale)

    def gradient(self, top, bottom):
        top_diff = top[0].diff_tensor
        if self.phase != caffe_pb2.TRAIN:
            return top_diff.clone()
        if self.rand_vec is None or self.rand_vec.shape != top_diff.shape:
            self.fail('backward in TRAIN needs the mask of a forward on this shape; run '
                      'forward first')
        return top_diff * self.rand_vec * self.scale


@register('Power')
class PowerLayer(NeuronLayer):
    """y = (shift + scale * x) ^ power.

    bottom: x, any shape. top: y; when scale * power is 0 the input is ignored and y is
    1 (power 0) or shift ^ power.
    backward (power_layer.cpp): dE/dx = dE/dy * dy/dx with dy/dx = scale * power if power
    is 1 or scale * power is 0 (then dE/dx = 0, top diff not read); 2 * scale *
    (shift + scale * x) if power is 2; power * y / x if shift is 0; else
    scale * power * y / (shift + scale * x). In place (as Caffe, see the module docstring)
    y stands for x in the last three cases and the result is (dy/dx)^2, top diff unread.
    power_param: power (1), scale (1), shift (0). The pow is scalar_pow's
    (caffe_torch.batch_invariant): one rounding for every element, as Caffe's std::pow.
    """

    def setup(self, bottom, top):
        param = self.layer_param.power_param
        self.power, self.scale, self.shift = param.power, param.scale, param.shift
        self.diff_scale = _f32(np.float32(self.power) * np.float32(self.scale))

    def activate(self, x):
        if self.diff_scale == 0:
            value = 1.0 if self.power == 0 else _f32(np.float32(self.shift) **
                                                     np.float32(self.power))
            return torch.full_like(x, value)
        inner = _affine(x, self.scale, self.shift)
        return scalar_pow(inner, self.power) if self.power != 1 else inner

    def backward(self, top, propagate_down, bottom):
        # Caffe's order: dy/dx into the bottom diff first, then times the top diff (the same
        # memory when in place, which squares dy/dx); never reads the top diff for 0 * x.
        if not propagate_down[0]:
            return
        bottom_diff = bottom[0].diff_tensor
        if self.diff_scale == 0 or self.power == 1:
            bottom_diff.fill_(self.diff_scale)
        else:
            bottom_diff.copy_(self._local_gradient(top, bottom))
        if self.diff_scale != 0:
            bottom_diff.mul_(top[0].diff_tensor)

    def _local_gradient(self, top, bottom):
        x, y = bottom[0].data_tensor, top[0].data_tensor
        if self.power == 2:
            out = x * _f32(np.float32(self.diff_scale) * np.float32(self.scale))
            if self.shift != 0:
                out.add_(_f32(np.float32(self.diff_scale) * np.float32(self.shift)))
            return out
        if self.shift == 0:
            return (y / x).mul_(self.power)
        out = torch.div(y, _affine(x, self.scale, self.shift))
        return out.mul_(self.diff_scale) if self.diff_scale != 1 else out


@register('Exp')
class ExpLayer(NeuronLayer):
    """y = base ^ (shift + scale * x), computed as outer * exp(inner * x) with
    inner = scale * ln(base) and outer = base ^ shift.

    bottom: x, any shape. top: y.
    backward: dE/dx = dE/dy * y * inner, from the top data (so in place is exact).
    exp_param: base (-1 means e; else > 0), scale (1), shift (0).
    """

    def setup(self, bottom, top):
        param = self.layer_param.exp_param
        base = np.float32(param.base)
        if base != -1 and not base > 0:
            self.fail(f'exp_param.base must be strictly positive (or -1 for e), '
                      f'got {param.base}')
        log_base = np.float32(1) if base == -1 else np.log(base)
        self.inner_scale = _f32(log_base * np.float32(param.scale))
        outer = np.exp(np.float32(param.shift)) if base == -1 else base ** np.float32(
            param.shift)
        self.outer_scale = 1.0 if param.shift == 0 else _f32(outer)

    def activate(self, x):
        y = torch.exp(x) if self.inner_scale == 1 else torch.exp(x * self.inner_scale)
        return y.mul_(self.outer_scale) if self.outer_scale != 1 else y

    def gradient(self, top, bottom):
        out = top[0].data_tensor * top[0].diff_tensor
        return out.mul_(self.inner_scale) if self.inner_scale != 1 else out


@register('Log')
class LogLayer(NeuronLayer):
    """y = log_base(shift + scale * x).

    bottom: x, any shape, with shift + scale * x > 0. top: y.
    backward: dE/dx = dE/dy * scale / (ln(base) * (shift + scale * x)), reading x from the
    bottom data. In place (as Caffe, see the module docstring) y stands for x and the
    result is (dy/dx)^2, top diff unread.
    log_param: base (-1 means e; else > 0 and not 1), scale (1), shift (0).
    """

    def setup(self, bottom, top):
        param = self.layer_param.log_param
        base = np.float32(param.base)
        if base != -1 and not base > 0:
            self.fail(f'log_param.base must be strictly positive (or -1 for e), '
                      f'got {param.base}')
        log_base = np.float32(1) if base == -1 else np.log(base)
        if not math.isfinite(log_base) or log_base == 0:
            self.fail(f'log_param.base {param.base} gives log(base) = {log_base}, so '
                      f'1 / log(base) is not finite; use a base other than 1')
        self.base_scale = _f32(np.float32(1) / log_base)
        self.input_scale, self.input_shift = param.scale, param.shift
        self.backward_num_scale = _f32(np.float32(param.scale) / log_base)

    def activate(self, x):
        y = _affine(x, self.input_scale, self.input_shift).log_()
        return y.mul_(self.base_scale) if self.base_scale != 1 else y

    def backward(self, top, propagate_down, bottom):
        # Caffe's order, as Power's: dy/dx into the bottom diff, then times the top diff.
        if not propagate_down[0]:
            return
        x = bottom[0].data_tensor
        local = _affine(x, self.input_scale, self.input_shift).reciprocal_()
        if self.backward_num_scale != 1:
            local.mul_(self.backward_num_scale)
        bottom_diff = bottom[0].diff_tensor
        bottom_diff.copy_(local)
        bottom_diff.mul_(top[0].diff_tensor)


@register('AbsVal')
class AbsValLayer(NeuronLayer):
    """y = |x|. bottom: x, any shape. top: y (a different blob: Caffe forbids in place).

    backward: dE/dx = dE/dy * sign(x), sign(0) = 0.
    """

    def setup(self, bottom, top):
        if top[0] is bottom[0]:
            self.fail('AbsVal does not allow in-place computation (its backward needs the '
                      'sign of the input); give the top a different name than the bottom')

    def activate(self, x):
        return torch.abs(x)

    def gradient(self, top, bottom):
        return torch.sign(bottom[0].data_tensor).mul_(top[0].diff_tensor)


@register('BNLL')
class BNLLLayer(NeuronLayer):
    """Binomial normal log likelihood (softplus): y = log(1 + exp(x)), evaluated as
    x + log(1 + exp(-x)) for x > 0 so that exp() cannot overflow.

    bottom: x, any shape. top: y.
    backward: dE/dx = dE/dy * e / (e + 1), e = exp(min(x, 50)), reading x from the bottom
    data: in place Caffe (and so this layer) uses y there instead.
    """

    def activate(self, x):
        positive = x + torch.log1p(torch.exp(-x))
        return torch.where(x > 0, positive, torch.log1p(torch.exp(x)))

    def gradient(self, top, bottom):
        e = torch.exp(torch.clamp(bottom[0].data_tensor, max=_BNLL_THRESHOLD))
        return top[0].diff_tensor * e / (e + 1)


@register('Threshold')
class ThresholdLayer(NeuronLayer):
    """Step function: y = 1 if x > threshold else 0.

    bottom: x, any shape. top: y.
    backward: not differentiable; Caffe aborts (NOT_IMPLEMENTED) when asked for the bottom
    diff, and this layer raises BackwardNotImplementedError (a NotImplementedError).
    threshold_param: threshold (default 0).
    """

    def setup(self, bottom, top):
        self.threshold = self.layer_param.threshold_param.threshold

    def activate(self, x):
        return (x > self.threshold).to(x.dtype)

    def backward(self, top, propagate_down, bottom):
        self.refuse_backward(propagate_down, 'the step function has no gradient')
