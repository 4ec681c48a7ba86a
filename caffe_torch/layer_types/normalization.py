"""Normalization layers: BatchNorm and MVN, as BVLC Caffe has them.

BatchNorm keeps its statistics in three parameter blobs that no solver may learn: Caffe's
LayerSetUp appends `param { lr_mult: 0 }` to its own copy of the LayerParameter for each
one the net does not give, and refuses a given one whose lr_mult is not 0. This layer does
the same to `self.layer_param`, which the Net reads after set-up for lr_mult/decay_mult.
Caffe's Net decides param_propagate_down (and so whether the layer needs backward) from
the net's own copy instead, where those specs are absent (lr_mult 1); BatchNorm's backward
never writes the statistics' diffs either way.

Neither layer's backward looks at propagate_down: Caffe's writes the bottom diff whenever
it is called, and so do these.
"""
import numpy as np
import torch

from caffe_torch.layer import Layer
from caffe_torch.layer_factory import register
from caffe_torch.proto import caffe_pb2


def _f32(value):
    """A Python float holding `value` rounded to float32, as a Caffe Dtype member."""
    return float(np.float32(value))


@register('BatchNorm')
class BatchNormLayer(Layer):
    """Normalize each channel to zero mean and unit variance: y = (x - mean) / sqrt(var + eps).

    bottom: (N, C, ...), at least 2 axes, channels on axis 1; statistics are taken over
            every axis but 1. top: its shape (in place allowed).
    blobs: [0] mean * f, [1] variance * f, both (C,), [2] the factor f, shape (1,); all zero
           at first. With global stats, mean = blobs[0] / f and var = blobs[1] / f, where
           f == 0 reads as zero statistics (y = x / sqrt(eps)).
    Batch stats (use_global_stats false): mean and biased var of this batch; each forward
    also updates the running sums: f = maf * f + 1, blobs[0] = maf * blobs[0] + mean,
    blobs[1] = maf * blobs[1] + m / (m - 1) * var (m = count / C; factor 1 if m <= 1).
    backward: global stats: dE/dx = dE/dy / sqrt(var + eps); batch stats:
    (dE/dy - mean(dE/dy) - y * mean(dE/dy * y)) / sqrt(var + eps), means over all axes
    but 1. The statistics' diffs are never written. In place, the top diff is read before
    the bottom diff is written.
    batch_norm_param: use_global_stats (default: phase == TEST), moving_average_fraction
    maf (0.999), eps (1e-5).
    """
    exact_bottoms = exact_tops = 1

    def setup(self, bottom, top):
        param = self.layer_param.batch_norm_param
        self.moving_average_fraction = _f32(param.moving_average_fraction)
        self.use_global_stats = (param.use_global_stats if param.HasField('use_global_stats')
                                 else self.phase == caffe_pb2.TEST)
        self._check_axes(bottom[0])
        self.channels = bottom[0].shape[1]
        self.eps = _f32(param.eps)
        if not self.blobs:
            for shape in ((self.channels,), (self.channels,), (1,)):
                self.param_blob(shape).data_tensor.zero_()
        self._fix_param_specs()
        self.x_norm = self.std = None

    def _fix_param_specs(self):
        """Caffe's mask: lr_mult 0 for mean, variance and factor, added where not given."""
        specs = self.layer_param.param
        for i in range(len(self.blobs)):
            if len(specs) == i:
                specs.add().lr_mult = 0.0
            elif specs[i].lr_mult != 0:
                self.fail(f'cannot configure batch normalization statistics as layer '
                          f'parameters: param {i} has lr_mult {specs[i].lr_mult} (1 unless '
                          f'given); BatchNorm\'s mean, variance and factor are not learned, '
                          f'so give `param {{ lr_mult: 0 }}` or no param at all (add a Scale '
                          f'layer for a learned scale and shift)')

    def _check_axes(self, blob):
        if blob.num_axes < 2:
            self.fail(f'the bottom needs at least 2 axes (num, channels, ...): Caffe reads '
                      f'its channel count from axis 1, but it has shape {blob.shape}')

    def reshape(self, bottom, top):
        self._check_axes(bottom[0])
        if bottom[0].shape[1] != self.channels:
            self.fail(f'the bottom has {bottom[0].shape[1]} channels on axis 1, but the '
                      f'layer was set up for {self.channels} (shape {bottom[0].shape})')
        top[0].reshape(*bottom[0].shape)

    def _grouped(self, tensor):
        """(N, C, spatial) view of a bottom-shaped tensor."""
        return tensor.reshape(tensor.shape[0], self.channels, -1)

    @staticmethod
    def _per_channel(v):
        return v.reshape(1, -1, 1)

    def forward(self, bottom, top):
        x = self._grouped(bottom[0].data_tensor)
        num, _, spatial = x.shape
        if self.use_global_stats:
            factor = float(self.blobs[2].data_tensor.reshape(-1)[0])
            scale = 0.0 if factor == 0 else _f32(np.float32(1) / np.float32(factor))
            mean = self.blobs[0].data_tensor * scale
            var = self.blobs[1].data_tensor * scale
        else:
            mean = x.sum(dim=(0, 2)).mul_(_f32(1.0 / (num * spatial)))
        centered = x - self._per_channel(mean)
        if not self.use_global_stats:
            var = (centered * centered).sum(dim=(0, 2)).mul_(_f32(1.0 / (num * spatial)))
            self._update_running(mean, var, bottom[0].count)
        self.std = torch.sqrt(var + self.eps)
        y = centered / self._per_channel(self.std)
        self.x_norm = y
        top[0].data_tensor.copy_(y.reshape(top[0].shape))

    def _update_running(self, mean, var, count):
        maf = self.moving_average_fraction
        factor = self.blobs[2].data_tensor
        factor.mul_(maf).add_(1)
        self.blobs[0].data_tensor.mul_(maf).add_(mean)
        m = count // self.channels
        correction = _f32(np.float32(m) / np.float32(m - 1)) if m > 1 else 1.0
        self.blobs[1].data_tensor.mul_(maf).add_(var * correction)

    def backward(self, top, propagate_down, bottom):
        if self.x_norm is None or self.x_norm.numel() != top[0].count:
            self.fail('backward needs the normalized output of a forward on this shape; '
                      'run forward first')
        dy = self._grouped(top[0].diff_tensor)
        std = self._per_channel(self.std)
        if self.use_global_stats:
            dx = dy / std
        else:
            y = self.x_norm
            num, _, spatial = y.shape
            sums = y * self._per_channel((y * dy).sum(dim=(0, 2)))
            sums.add_(self._per_channel(dy.sum(dim=(0, 2))))
            dx = (dy - sums * _f32(1.0 / (num * spatial))) / std
        bottom[0].diff_tensor.copy_(dx.reshape(bottom[0].shape))


@register('MVN')
class MVNLayer(Layer):
    """Mean-variance normalization per sample and channel (or per sample across channels).

    bottom: up to 4 axes, read with Caffe's legacy accessors: top is shaped (num,
            channels, height, width), missing axes 1 (so a (N, C) bottom gives (N, C, 1, 1)).
    Each group (one (n, c) plane, or all of sample n with across_channels) becomes
    y = x - mean, then with normalize_variance y = (x - mean) / (std + eps), where
    std = sqrt(mean((x - mean)^2)): eps is added to the standard deviation.
    backward: normalize_variance: dE/dx = (dE/dy - mean(dE/dy) - y * mean(dE/dy * y)) /
    (std + eps) (the exact gradient when eps is negligible); else dE/dx = dE/dy -
    mean(dE/dy). Means are over the group. In place the top diff is the bottom diff, and
    Caffe's BLAS sequence overwrites it while still reading it; this layer runs the same
    sequence (scal then axpy for axpby, as Caffe without MKL), so it gives Caffe's numbers
    rather than the gradient there. Use it out of place for the true gradient.
    mvn_param: normalize_variance (default true), across_channels (false), eps (1e-9).
    """
    exact_bottoms = exact_tops = 1

    def setup(self, bottom, top):
        param = self.layer_param.mvn_param
        self.normalize_variance = param.normalize_variance
        self.across_channels = param.across_channels
        self.eps = _f32(param.eps)
        self.std = None

    def reshape(self, bottom, top):
        blob = bottom[0]
        if blob.num_axes > 4:
            self.fail(f'the bottom has {blob.num_axes} axes {blob.shape}; Caffe\'s MVN '
                      f'reads num/channels/height/width, which allow at most 4 axes')
        top[0].reshape(blob.num, blob.channels, blob.height, blob.width)

    def _groups(self, blob):
        num = blob.num if self.across_channels else blob.num * blob.channels
        return num, (blob.count // num if num else 0)

    def forward(self, bottom, top):
        num, dim = self._groups(bottom[0])
        if not num or not dim:
            return
        x = bottom[0].data_tensor.reshape(num, dim)
        inv_dim = _f32(1.0 / dim)
        out = x - x.sum(dim=1, keepdim=True).mul_(inv_dim)
        if self.normalize_variance:
            var = (out * out).sum(dim=1, keepdim=True).mul_(inv_dim)
            self.std = var.pow_(0.5).add_(self.eps)
            out.div_(self.std)
        top[0].data_tensor.copy_(out.reshape(top[0].shape))

    def backward(self, top, propagate_down, bottom):
        num, dim = self._groups(bottom[0])
        if not num or not dim:
            return
        # Caffe's steps, one for one, on the diff memory itself (shared when in place).
        dy = top[0].diff_tensor.view(num, dim)
        dx = bottom[0].diff_tensor.view(num, dim)
        if not self.normalize_variance:
            dx.copy_(dy - dy.sum(dim=1, keepdim=True).mul_(_f32(1.0 / dim)))
            return
        if self.std is None or self.std.shape[0] != num:
            self.fail('backward needs the statistics of a forward on this shape; run '
                      'forward first')
        y = top[0].data_tensor.view(num, dim)
        dx.copy_(y * dy)
        dx.copy_(dx.sum(dim=1, keepdim=True).expand(num, dim))
        dx.mul_(y)
        dx.add_(dy.sum(dim=1, keepdim=True))
        dx.mul_(_f32(-1.0 / dim))  # axpby(1, dy, -1 / dim, dx): scal, then axpy
        dx.add_(dy)
        dx.div_(self.std)
