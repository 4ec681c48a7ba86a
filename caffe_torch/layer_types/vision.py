"""Vision layers: Convolution, Deconvolution and Crop, as BVLC Caffe has them.

PyTorch's convolution kernels do the work, writing straight into the top blobs. A batch of
several images goes one image per call, for the top and the bottom diff, as Caffe's
forward_cpu_gemm does: oneDNN and cuDNN pick their algorithm by the batch size, so a batched
call would round one image differently alone and among others (caffe_torch.batch_invariant).
FCN nets run a batch of one, where nothing changes.
"""
import math

import torch

from caffe_torch import winograd
from caffe_torch.layer import Layer
from caffe_torch.layer_factory import register


# oneDNN's convolution with the ReLU as a post-op (the one inductor fuses into), where
# this torch build has it: the rectified top is written once instead of twice.
_POINTWISE = getattr(getattr(torch.ops, 'mkldnn', None), '_convolution_pointwise', None) \
    if torch.backends.mkldnn.is_available() else None


class _BaseConvolution(Layer):
    """Shared set-up of Convolution and Deconvolution (Caffe's BaseConvolutionLayer)."""
    min_bottoms = min_tops = 1
    equal_bottom_top = True
    transposed = False
    fuse_relu = False  # may apply the in-place ReLU after it (net_memory.mark_transient)
    relu_next = False  # ... and that ReLU runs next in this pass, unwatched (MemoryPlan.runs)
    applied_relu = False  # whether this pass's forward applied it

    def setup(self, bottom, top):
        conv = self.layer_param.convolution_param
        self.channel_axis = self.canonical_axis(bottom[0], conv.axis, 'axis')
        n = bottom[0].num_axes - self.channel_axis - 1
        if not 1 <= n <= 3:
            self.fail(f'supports 1 to 3 spatial axes after the channel axis '
                      f'{self.channel_axis}; the bottom of shape {bottom[0].shape} has {n}')
        self.num_spatial = n
        self.kernel = self._spatial_param(conv, 'kernel_size', 'kernel', None)
        self.stride = self._spatial_param(conv, 'stride', 'stride', 1)
        self.pad = self._spatial_param(conv, 'pad', 'pad', 0)
        self.dilation = self._spatial_param(conv, 'dilation', 'dilation', 1)
        for name in ('kernel', 'stride', 'dilation'):
            if min(getattr(self, name)) <= 0:
                self.fail(f'{name} must be positive on every spatial axis, got '
                          f'{getattr(self, name)}')
        self._set_up_channels(conv, bottom[0].shape[self.channel_axis])
        self.param_blob(self.weight_shape(), conv.weight_filler)
        if self.bias_term:
            self.param_blob((self.num_output,), conv.bias_filler)

    def _spatial_param(self, conv, name, prefix, default):
        """One value per spatial axis from repeated `name` or `prefix`_h / `prefix`_w."""
        values, n = list(getattr(conv, name)), self.num_spatial
        h, w = prefix + '_h', prefix + '_w'
        if h in conv.DESCRIPTOR.fields_by_name and (conv.HasField(h) or conv.HasField(w)):
            if n != 2:
                self.fail(f'{h} & {w} can only be used for 2-D convolution, but the bottom '
                          f'has {n} spatial axes; use {name}')
            if values:
                self.fail(f'give either {name} or {h}/{w}, not both')
            return [getattr(conv, h), getattr(conv, w)]
        if not values and default is not None:
            return [default] * n
        if len(values) not in (1, n):
            self.fail(f'{name} must be given once, or once per spatial axis: got '
                      f'{len(values)} value(s) for {n} spatial axes')
        return [values[0] if len(values) == 1 else values[i] for i in range(n)]

    def _set_up_channels(self, conv, channels):
        self.channels, self.num_output = channels, conv.num_output
        self.group, self.bias_term = conv.group, conv.bias_term
        if self.num_output <= 0:
            self.fail(f'num_output must be positive, got {self.num_output}')
        if self.group <= 0 or channels % self.group or self.num_output % self.group:
            self.fail(f'group {self.group} must divide both the bottom channels '
                      f'({channels}) and num_output ({self.num_output})')

    def weight_shape(self):
        out_c, in_c = ((self.channels, self.num_output) if self.transposed
                       else (self.num_output, self.channels))
        return (out_c, in_c // self.group) + tuple(self.kernel)

    def reshape(self, bottom, top):
        shape = bottom[0].shape
        if len(shape) != self.channel_axis + 1 + self.num_spatial:
            self.fail(f'bottom num_axes may not change: set up with '
                      f'{self.channel_axis + 1 + self.num_spatial} axes, now {shape}')
        if shape[self.channel_axis] != self.channels:
            self.fail(f'bottom has {shape[self.channel_axis]} channels on axis '
                      f'{self.channel_axis}, but the weights expect {self.channels} '
                      f'(input size incompatible with the convolution kernel)')
        for i, blob in enumerate(bottom[1:], 1):
            if blob.shape != shape:
                self.fail(f'all bottoms must have the same shape: bottom[0] is {shape}, '
                          f'bottom[{i}] is {blob.shape}')
        self._check_param_shapes()
        spatial = shape[self.channel_axis + 1:]
        out = tuple(self._output_size(d, i) for i, d in enumerate(spatial))
        for blob in top:
            blob.reshape(*(shape[:self.channel_axis] + (self.num_output,) + out))

    def _check_param_shapes(self):
        expected = [self.weight_shape()] + ([(self.num_output,)] if self.bias_term else [])
        got = [tuple(b.shape) for b in self.blobs]
        if got != expected:
            self.fail(f'parameter blobs have shapes {got}, expected {expected} '
                      f'(weights, then bias if bias_term)')

    def _extent(self, i):
        return self.dilation[i] * (self.kernel[i] - 1) + 1

    def _batched(self, shape):
        """The blob's shape as (num, channels, spatial...) for torch's kernels."""
        return (math.prod(shape[:self.channel_axis]),) + tuple(shape[self.channel_axis:])

    def _as_batched(self, tensor, shape):
        """`tensor` (a blob's, of `shape`) as (num, channels, spatial...): itself when it
        already is (a reshape would give a channels-last view's batch axis an odd stride,
        and torch's kernels would then take it for NCHW)."""
        batched = self._batched(shape)
        return tensor if tuple(tensor.shape) == batched else tensor.reshape(batched)

    def _conv_args(self):
        return (self.stride, self.pad, self.dilation, self.transposed,
                [0] * self.num_spatial, self.group)

    def forward(self, bottom, top):
        weight = self.blobs[0].data_tensor
        bias = self.blobs[1].data_tensor if self.bias_term else None
        relu = self.fuse_relu and self.relu_next and not self.backward_state
        self.applied_relu = False
        for x_blob, y_blob in zip(bottom, top):
            x = self._as_batched(x_blob.data_tensor, x_blob.shape)
            if len(x) == 1 and y_blob.adoptable:
                y_blob._data.adopt(self._forward_one(x, weight, bias, y_blob, relu))
                self.applied_relu = relu
                continue
            y = y_blob.data_tensor.view(self._batched(y_blob.shape))
            for i in range(len(x)):  # one image per call: see the module docstring
                torch.ops.aten.convolution.out(x[i:i + 1], weight, bias, *self._conv_args(),
                                               out=y[i:i + 1])

    def _forward_one(self, x, weight, bias, y_blob, relu=False):
        """One image into a fresh tensor for a transient top. In a forward-only net
        (keep_blobs without backward) the faster forms of the same sums: channels-last
        where the plan allows it (Blob.channels_last: oneDNN's kernels and torch's pooling
        are 1.2-3x faster so for VGG's early layers), Caffe's own im2col + gemm where
        the filters outweigh the image (FCN's fc6, fc7, score layers), and Winograd's
        F(2x2, 3x3) where the channels are many (VGG's conv4 and conv5, 1.4-1.5x)."""
        if self.backward_state:
            return torch.ops.aten.convolution(x, weight, bias, *self._conv_args())
        last = y_blob.channels_last and x.dim() == 4
        if last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self._gemm_pays(x):
            y = self._by_gemm(x, weight, bias, last)
            return y.clamp_min_(0) if relu else y
        if last and self._winograd_pays(x):
            return winograd.convolve(x, weight, bias, self.pad, relu)
        if relu and last and not self.transposed and _POINTWISE is not None \
                and x.device.type == 'cpu':
            return _POINTWISE(x, weight, bias, self.pad, self.stride, self.dilation,
                              self.group, 'relu', [], '')
        y = torch.ops.aten.convolution(x, weight, bias, *self._conv_args())
        if relu:
            y.clamp_min_(0)
        return y if last else y.contiguous()

    def _gemm_pays(self, x):
        """2-D, ungrouped, undilated, and either 1 x 1 (no im2col at all) or filters of at
        least 8 times as many taps as output pixels (fc6: 25088 taps, 256 pixels, 1.9x
        faster than oneDNN; VGG's 3 x 3 layers stay with oneDNN, which is 2x faster there)."""
        if self.transposed or self.num_spatial != 2 or self.group != 1 \
                or self.dilation != [1, 1]:
            return False
        taps = self.channels * self.kernel[0] * self.kernel[1]
        pixels = math.prod(self._output_size(d, i) for i, d in enumerate(x.shape[2:]))
        pointwise = self.kernel == [1, 1] and self.stride == [1, 1] and self.pad == [0, 0]
        return pointwise or 8 * pixels <= taps

    def _winograd_pays(self, x):
        """3 x 3, stride 1, ungrouped, undilated, on the CPU, and channels enough for
        F(2x2, 3x3) to beat oneDNN (winograd.pays: VGG's 512-channel layers)."""
        return (not self.transposed and x.device.type == 'cpu' and self.group == 1
                and self.kernel == [3, 3] and self.stride == [1, 1]
                and self.dilation == [1, 1] and winograd.pays(self.channels, self.num_output))

    def _by_gemm(self, x, weight, bias, last):
        """x (1, C, H, W) convolved as Caffe does it: im2col, then one gemm with the
        (num_output, taps) filters; the product is laid out channels-last when `last`."""
        out = [self._output_size(d, i) for i, d in enumerate(x.shape[2:])]
        filters = weight.reshape(self.num_output, -1)
        if self.kernel == [1, 1] and self.stride == [1, 1] and self.pad == [0, 0]:
            cols = x[0].permute(1, 2, 0).reshape(-1, self.channels) if last \
                else x[0].reshape(self.channels, -1).t()
        else:
            cols = torch.nn.functional.unfold(x, self.kernel, padding=self.pad,
                                              stride=self.stride)[0].t()
        if last:  # (pixels, num_output): NHWC
            y = cols @ filters.t() if bias is None else torch.addmm(bias, cols, filters.t())
            return y.view(1, out[0], out[1], -1).permute(0, 3, 1, 2)
        y = filters @ cols.t() if bias is None else torch.addmm(bias[:, None], filters, cols.t())
        return y.view(1, -1, out[0], out[1])

    def backward(self, top, propagate_down, bottom):
        weight = self.blobs[0].data_tensor
        need_weight = self.param_needs_diff(0)
        need_bias = self.bias_term and self.param_needs_diff(1)
        bias_sizes = [self.num_output] if self.bias_term else None
        for i, (y_blob, x_blob) in enumerate(zip(top, bottom)):
            mask = [bool(propagate_down[i]), need_weight, need_bias]
            if not any(mask):
                continue
            dy = y_blob.diff_tensor.reshape(self._batched(y_blob.shape))
            x = self._as_batched(x_blob.data_tensor, x_blob.shape)
            if len(x) > 1:
                self._backward_by_image(dy, x, x_blob, mask)
                continue
            if all(mask):  # the common case: the bottom diff goes straight into place
                dx = x_blob.diff_tensor.view(x.shape)
                dw, db = torch.empty_like(weight), torch.empty(self.num_output, device=dy.device)
                torch.ops.aten.convolution_backward.out(
                    dy, x, weight, bias_sizes, *self._conv_args(), mask,
                    out0=dx, out1=dw, out2=db)
            else:
                dx, dw, db = torch.ops.aten.convolution_backward(
                    dy, x, weight, bias_sizes, *self._conv_args(), mask)
                if mask[0]:
                    x_blob.diff_tensor.copy_(dx.reshape(x_blob.shape))
            self._accumulate(dw, db, mask)

    def _accumulate(self, dw, db, mask):
        if mask[1]:
            self.blobs[0].diff_tensor.add_(dw)
        if mask[2]:
            self.blobs[1].diff_tensor.add_(db)

    def _backward_by_image(self, dy, x, x_blob, mask):
        """Parameter diffs over the whole batch in one call (a sum: no per-image result to
        keep), the bottom diff one image per call."""
        weight = self.blobs[0].data_tensor
        if mask[1] or mask[2]:
            bias_sizes = [self.num_output] if self.bias_term else None
            _, dw, db = torch.ops.aten.convolution_backward(
                dy, x, weight, bias_sizes, *self._conv_args(), [False] + mask[1:])
            self._accumulate(dw, db, mask)
        if mask[0]:
            dx = x_blob.diff_tensor.view(x.shape)
            for i in range(len(x)):
                dx[i:i + 1].copy_(torch.ops.aten.convolution_backward(
                    dy[i:i + 1], x[i:i + 1], weight, None, *self._conv_args(),
                    [True, False, False])[0])


@register('Convolution')
class ConvolutionLayer(_BaseConvolution):
    """Convolves each bottom with the same learned filters (N bottoms -> N tops).

    bottom: (batch axes..., C, spatial...), channels on `axis` (default 1), 1 to 3 spatial
            axes; all bottoms one shape.
    top:    (batch axes..., num_output, out...),
            out = floor((in + 2 pad - (dilation (kernel - 1) + 1)) / stride) + 1.
    Forward: top = W * bottom + b, per group (channels split into `group` blocks).
    Backward: bottom diff (where propagate_down), and weight/bias diffs accumulated.
    Params: num_output, bias_term, kernel_size/stride/pad/dilation (once or per axis) or
    kernel_h/_w, stride_h/_w, pad_h/_w; group; axis; weight_filler, bias_filler.
    blobs[0] is (num_output, C / group, kernel...), blobs[1] is (num_output,).
    force_nd_im2col and engine only choose Caffe's implementation and are ignored.
    """

    def _output_size(self, size, i):
        span = size + 2 * self.pad[i] - self._extent(i)
        if span < 0:
            self.fail(f'spatial axis {i}: the kernel extent {self._extent(i)} exceeds the '
                      f'padded bottom size {size} + 2 * {self.pad[i]}; increase pad or '
                      f'use a smaller kernel or dilation')
        return span // self.stride[i] + 1


@register('Deconvolution')
class DeconvolutionLayer(_BaseConvolution):
    """Transposed convolution: the backward of Convolution used as a forward.

    bottom: (batch axes..., C, spatial...), as Convolution; top: (..., num_output, out...),
            out = stride (in - 1) + dilation (kernel - 1) + 1 - 2 pad.
    Forward: each bottom pixel adds W scaled by its value into a kernel-sized window of
    the top (stride apart), plus b. Backward: bottom diff, weight/bias diffs accumulated.
    blobs[0] is (C, num_output / group, kernel...), blobs[1] is (num_output,). With the
    `bilinear` weight_filler and group = C = num_output it is bilinear upsampling (FCN).
    """
    transposed = True

    def _output_size(self, size, i):
        out = self.stride[i] * (size - 1) + self._extent(i) - 2 * self.pad[i]
        if out < 1:
            self.fail(f'spatial axis {i}: output size {self.stride[i]} * ({size} - 1) + '
                      f'{self._extent(i)} - 2 * {self.pad[i]} = {out} is not positive; '
                      f'reduce pad')
        return out

    def forward(self, bottom, top):
        if not self._by_phases(bottom[0].data_tensor.device):
            return super().forward(bottom, top)
        self.applied_relu = False  # by phases the ReLU after it runs as a layer
        weight = self.blobs[0].data_tensor
        for x_blob, y_blob in zip(bottom, top):
            x = self._as_batched(x_blob.data_tensor, x_blob.shape)
            if len(x) == 1 and y_blob.adoptable:
                y_blob._data.adopt(upsample_by_phases(
                    x, weight, self.stride[0], self.pad, self.group).contiguous())
                y = y_blob.data_tensor.view(self._batched(y_blob.shape))
            else:
                y = y_blob.data_tensor.view(self._batched(y_blob.shape))
                for i in range(len(x)):  # one image per call, as Convolution
                    upsample_by_phases(x[i:i + 1], weight, self.stride[0], self.pad,
                                       self.group, y[i:i + 1])
            if self.bias_term:
                y += self.blobs[1].data_tensor.view(-1, 1, 1)

    def _by_phases(self, device):
        """On the CPU, 2-D, one stride for both axes, no dilation: FCN's upsampling. There
        oneDNN's transposed convolution is slow and erratic (42 ms for the demo's upscore16,
        6 x 16 x 16 -> 6 x 272 x 272, on 2 cores); by phases it takes 2 ms."""
        return (device.type == 'cpu' and self.num_spatial == 2 and self.dilation == [1, 1] and
                self.stride[0] == self.stride[1] and self.kernel[0] == self.kernel[1])


def upsample_by_phases(x, weight, stride, pad, group, out=None):
    """The transposed convolution of x (N, C, H, W) with weight (C, O / group, k, k), of
    size stride (H - 1) + k - 2 pad, ..., as a plain convolution: into `out`, or a fresh
    contiguous tensor. Output pixel (h s + i, w s + j) sums x over an m x m window
    (m = ceil(k / s)) with the kernel taps of phase (i, j): one m x m convolution to O s^2
    channels, a phase each, then a depth-to-space shuffle. A kernel padded with zeros to
    m s taps adds only past the end, which the crop to the output size drops."""
    channels, per_group, k = weight.shape[:3]
    s, m = stride, -(-k // stride)
    if m * s != k:
        weight = torch.nn.functional.pad(weight, (0, m * s - k, 0, m * s - k))
    taps = weight.view(group, channels // group, per_group, m, s, m, s).flip(3, 5).permute(
        0, 2, 4, 6, 1, 3, 5).reshape(group * per_group * s * s, channels // group, m, m)
    phases = torch.nn.functional.conv2d(x, taps, padding=m - 1, groups=group)
    n, _, height, width = phases.shape
    size = [s * (i - 1) + k - 2 * p for i, p in zip(x.shape[2:], pad)]
    if tuple(pad) == (0, 0) and size == [height * s, width * s]:  # FCN's: nothing to crop
        if out is None:
            return torch.nn.functional.pixel_shuffle(phases, s)
        out.view(n, -1, height, s, width, s).copy_(
            phases.view(n, -1, s, s, height, width).permute(0, 1, 4, 2, 5, 3))
        return out
    whole = torch.nn.functional.pixel_shuffle(phases, s)
    cropped = whole[:, :, pad[0]:pad[0] + size[0], pad[1]:pad[1] + size[1]]
    return cropped.contiguous() if out is None else out.copy_(cropped)


@register('Crop')
class CropLayer(Layer):
    """Crops bottom[0] to bottom[1]'s shape on the axes from `axis` on.

    bottom[0]: the data; bottom[1]: only its shape is used. top: bottom[0]'s shape before
    `axis`, bottom[1]'s from `axis` on; top = bottom[0][..., offset : offset + size, ...].
    Params: axis (default 2), offset: none (0), one for every cropped axis, or one per
    cropped axis. Backward: bottom[0] diff is the top diff placed at the offsets, zero
    elsewhere; nothing goes to bottom[1].
    """
    exact_bottoms, exact_tops = 2, 1

    def setup(self, bottom, top):
        crop = self.layer_param.crop_param
        self.axis = self.canonical_axis(bottom[0], crop.axis, 'crop axis')
        cropped = bottom[0].num_axes - self.axis
        if len(crop.offset) > 1 and len(crop.offset) != cropped:
            self.fail(f'give one offset, or one per cropped axis: {len(crop.offset)} '
                      f'offsets for the {cropped} axes from axis {self.axis} of a bottom '
                      f'of shape {bottom[0].shape}')

    def reshape(self, bottom, top):
        offsets = list(self.layer_param.crop_param.offset) or [0]
        data, ref = bottom[0].shape, bottom[1].shape
        if len(ref) < len(data):
            self.fail(f'bottom[1] of shape {ref} has fewer axes than bottom[0] {data}')
        self.slices = [slice(None)] * self.axis
        for i, size in enumerate(data[self.axis:], self.axis):
            offset = offsets[0] if len(offsets) == 1 else offsets[i - self.axis]
            if size - offset < ref[i]:
                self.fail(f'the crop on axis {i} is out of bounds: offset {offset} + size '
                          f'{ref[i]} > bottom[0] size {size}')
            self.slices.append(slice(offset, offset + ref[i]))
        top[0].reshape(*(data[:self.axis] + ref[self.axis:len(data)]))

    def forward(self, bottom, top):
        top[0].data_tensor.copy_(bottom[0].data_tensor[tuple(self.slices)])

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            diff = bottom[0].diff_tensor
            diff.zero_()
            diff[tuple(self.slices)] = top[0].diff_tensor
