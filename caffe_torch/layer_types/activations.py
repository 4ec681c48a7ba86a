"""Parametric and bounded activations: PReLU, ELU, Swish and Clip, as BVLC Caffe has them.

All take one bottom and give one top of its shape, and may run in place. What a backward
reads decides what in place means:
  PReLU  keeps a copy of the bottom data in forward when in place (Caffe's bottom_memory_),
         so its gradients are those of separate blobs.
  ELU    reads the bottom data, which in place is the output y: exact for alpha > 0, as x > 0
         exactly when y > 0 and the negative branch is written in y.
  Swish  reads only y and the sigmoid it kept: exact in place.
  Clip   reads the bottom data, which in place is the clipped y: the gradient then passes
         everywhere (y always lies in [min, max]), as in Caffe.
Constants from the proto (alpha, beta, min, max) are float32, as Caffe's Dtype.
"""
import numpy as np
import torch

from caffe_torch.layer import Layer
from caffe_torch.layer_factory import register
from caffe_torch.layer_types.neuron import NeuronLayer
from caffe_torch.proto import caffe_pb2


def _f32(value):
    """A Python float holding `value` rounded to float32, as a Caffe Dtype member."""
    return float(np.float32(value))


def _legacy_channels(layer, blob):
    """Caffe's channels(): axis 1, and a CHECK failure beyond 4 axes (legacy accessors)."""
    if blob.num_axes > 4:
        layer.fail(f'the bottom has {blob.num_axes} axes {blob.shape}; Caffe reads its '
                   f'channels with the legacy accessors, which allow at most 4 axes '
                   f'(Reshape or Flatten it first)')
    return blob.channels


@register('PReLU')
class PReLULayer(Layer):
    """Parametric ReLU: y = max(x, 0) + a_c * min(x, 0), one learned slope per channel.

    bottom: (N, C, ...) with 2 to 4 axes (Caffe needs >= 2 and reads C with the legacy
            accessor). top: its shape.
    blobs[0]: the slopes a, shape (C,), or shape () (one value) with channel_shared.
    backward: slope diff += sum of dE/dy * x over the x <= 0 of the channel (of everything
    when shared), computed first, then dE/dx = dE/dy * (1 if x > 0 else a_c). In place,
    x is the copy of the bottom taken in forward.
    prelu_param: filler (default constant 0.25), channel_shared (false).
    """
    exact_bottoms = exact_tops = 1

    def setup(self, bottom, top):
        self._check_axes(bottom[0])
        param = self.layer_param.prelu_param
        self.channel_shared = param.channel_shared
        channels = _legacy_channels(self, bottom[0])
        if not self.blobs:
            filler = param.filler if param.HasField('filler') else \
                caffe_pb2.FillerParameter(type='constant', value=0.25)
            self.param_blob(() if self.channel_shared else (channels,), filler)
        expected = 1 if self.channel_shared else channels
        if self.blobs[0].count != expected:
            self.fail(f'negative slope size is inconsistent with prototxt config: '
                      f'blobs[0] has {self.blobs[0].count} value(s), expected {expected} '
                      f'({"channel_shared" if self.channel_shared else "one per channel"})')
        self.bottom_memory = None

    def _check_axes(self, blob):
        if blob.num_axes < 2:
            self.fail(f'number of axes of the bottom blob must be >= 2 (num, channels, '
                      f'...), got shape {blob.shape}')

    def reshape(self, bottom, top):
        self._check_axes(bottom[0])
        channels = _legacy_channels(self, bottom[0])
        if not self.channel_shared and channels != self.blobs[0].count:
            self.fail(f'the bottom has {channels} channels but the layer was set up with '
                      f'{self.blobs[0].count} slopes')
        top[0].reshape(*bottom[0].shape)

    def _slope(self, x):
        """The slopes shaped to broadcast against x (channels on axis 1)."""
        slope = self.blobs[0].data_tensor
        if self.channel_shared:
            return slope.reshape(())
        return slope.reshape((1, -1) + (1,) * (x.dim() - 2))

    def forward(self, bottom, top):
        x = bottom[0].data_tensor
        if top[0] is bottom[0]:
            self.bottom_memory = x.clone()
        y = torch.clamp(x, min=0) + self._slope(x) * torch.clamp(x, max=0)
        top[0].data_tensor.copy_(y)

    def backward(self, top, propagate_down, bottom):
        if top[0] is bottom[0]:
            if self.bottom_memory is None or self.bottom_memory.shape != bottom[0].shape:
                self.fail('in-place backward needs the copy of the bottom that forward '
                          'keeps; run forward first')
            x = self.bottom_memory
        else:
            x = bottom[0].data_tensor
        dy = top[0].diff_tensor
        negative = x <= 0
        # The slope diff first: in place, writing the bottom diff overwrites the top diff.
        if self.param_needs_diff(0):
            contribution = dy * x * negative
            if self.channel_shared:
                total = contribution.sum()
            else:
                total = contribution.reshape(x.shape[0], x.shape[1], -1).sum(dim=(0, 2))
            self.blobs[0].diff_tensor.add_(total.reshape(self.blobs[0].shape))
        if propagate_down[0]:
            gain = torch.where(negative, self._slope(x).expand_as(x), torch.ones_like(x))
            bottom[0].diff_tensor.copy_(dy * gain)


@register('ELU')
class ELULayer(NeuronLayer):
    """Exponential linear unit: y = max(x, 0) + alpha * (exp(min(x, 0)) - 1).

    bottom: x, any shape. top: y.
    backward: dE/dx = dE/dy * (1 if x > 0 else alpha + y), reading x from the bottom data
    (y in place; see the module docstring).
    elu_param: alpha (default 1).
    """

    def setup(self, bottom, top):
        self.alpha = _f32(self.layer_param.elu_param.alpha)

    def activate(self, x):
        negative = torch.exp(torch.clamp(x, max=0)).sub_(1).mul_(self.alpha)
        return torch.clamp(x, min=0).add_(negative)

    def gradient(self, top, bottom):
        x, y, dy = bottom[0].data_tensor, top[0].data_tensor, top[0].diff_tensor
        return dy * torch.where(x > 0, torch.ones_like(y), y + self.alpha)


@register('Swish')
class SwishLayer(NeuronLayer):
    """Swish: y = x * sigmoid(beta * x), the sigmoid as Caffe's Sigmoid layer computes it,
    0.5 * tanh(0.5 * beta x) + 0.5, and kept for backward.

    bottom: x, any shape. top: y.
    backward: dE/dx = dE/dy * (beta * y + s * (1 - beta * y)), s the kept sigmoid; it reads
    no bottom data, so in place is exact.
    swish_param: beta (default 1).
    """

    def setup(self, bottom, top):
        self.beta = _f32(self.layer_param.swish_param.beta)
        self.sigmoid_output = None

    def activate(self, x):
        self.sigmoid_output = torch.tanh((x * self.beta).mul_(0.5)).mul_(0.5).add_(0.5)
        return x * self.sigmoid_output

    def gradient(self, top, bottom):
        y, dy = top[0].data_tensor, top[0].diff_tensor
        s = self.sigmoid_output
        if s is None or s.shape != y.shape:
            self.fail('backward needs the sigmoid of a forward on this shape; run forward '
                      'first')
        beta_y = y * self.beta
        return dy * (beta_y + s * (1 - beta_y))


@register('Clip')
class ClipLayer(NeuronLayer):
    """Clip to an interval: y = max(min, min(x, max)).

    bottom: x, any shape. top: y. With min > max Caffe gives min everywhere; so does this.
    backward: dE/dx = dE/dy where min <= x <= max (bounds included), else 0; x is read
    from the bottom data (y in place; see the module docstring).
    clip_param: min, max (both required by the proto).
    """

    def setup(self, bottom, top):
        param = self.layer_param.clip_param
        self.min, self.max = _f32(param.min), _f32(param.max)

    def activate(self, x):
        return torch.clamp(x, max=self.max).clamp_(min=self.min)

    def gradient(self, top, bottom):
        x, dy = bottom[0].data_tensor, top[0].diff_tensor
        return dy * ((x >= self.min) & (x <= self.max))
