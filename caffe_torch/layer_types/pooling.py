"""Window layers: Pooling and LRN, as BVLC Caffe has them.

PyTorch's pooling kernels do the work where their windows are Caffe's; where Caffe's
geometry is not one they take (padding up to kernel - 1), the bottom is padded or cropped
so that plain windows tile it, and Caffe's clipped AVE divisor is applied explicitly.
"""
import torch
import torch.nn.functional as F

from caffe_torch.layer import Layer
from caffe_torch.layer_factory import register
from caffe_torch.batch_invariant import scalar_pow
from caffe_torch.proto import caffe_pb2

PoolMethod = caffe_pb2.PoolingParameter.PoolMethod
RoundMode = caffe_pb2.PoolingParameter.RoundMode
NormRegion = caffe_pb2.LRNParameter.NormRegion


@register('Pooling')
class PoolingLayer(Layer):
    """MAX or AVE pooling over H x W windows of a (N, C, H, W) bottom.

    top[0]: (N, C, pooled_h, pooled_w), for each axis (Caffe's rule):
        pooled = ceil((in + 2 pad - kernel) / stride) + 1   (floor with round_mode FLOOR)
        if (pad_h or pad_w) and (pooled - 1) stride >= in + pad: pooled -= 1 (the last
        window must start inside the bottom or its left padding; Caffe clips both axes
        when either has padding, so also one with pad 0 and stride > kernel)
    top[1] (MAX only, optional): the argmax of each window as the float h * W + w.
    MAX takes the first maximum in row-major order; backward routes the top diff to it.
    AVE divides the sum of the window's bottom values by the window size clipped to the
    padded bottom, (min(start + kernel, in + pad) - start) per axis: padding counts.
    global_pooling: kernel = H x W (pad 0, stride 1). STOCHASTIC is GPU-only in Caffe and
    not provided. Params: pool, kernel_size | kernel_h + kernel_w, pad | pad_h + pad_w,
    stride | stride_h + stride_w, global_pooling, round_mode.
    """
    exact_bottoms = 1
    min_tops, max_tops = 1, 2

    def setup(self, bottom, top):
        pool = self.layer_param.pooling_param
        self.method, self.round_mode = pool.pool, pool.round_mode
        if self.method == PoolMethod.Value('STOCHASTIC'):
            self.fail('STOCHASTIC pooling exists only in Caffe\'s GPU code and is not '
                      'provided; use MAX or AVE')
        if len(top) > 1 and self.method != PoolMethod.Value('MAX'):
            self.fail('only MAX pooling has a second top (the argmax mask); give one top')
        self.global_pooling = pool.global_pooling
        self.kernel = self._kernel(pool, bottom[0])
        self.pad = self._pair(pool, 'pad')
        self.stride = self._pair(pool, 'stride')
        if min(self.stride) <= 0:
            self.fail(f'stride must be positive, got {self.stride}')
        if self.global_pooling and (any(self.pad) or self.stride != (1, 1)):
            self.fail(f'global_pooling needs pad 0 and stride 1, got pad {self.pad} and '
                      f'stride {self.stride}')
        if any(p >= k for p, k in zip(self.pad, self.kernel)):
            self.fail(f'pad {self.pad} must be smaller than the kernel {self.kernel}')

    def _kernel(self, pool, blob):
        has_size, has_hw = pool.HasField('kernel_size'), (pool.HasField('kernel_h')
                                                          and pool.HasField('kernel_w'))
        if self.global_pooling:
            if has_size or pool.HasField('kernel_h') or pool.HasField('kernel_w'):
                self.fail('with global_pooling the kernel is the whole bottom; remove '
                          'kernel_size / kernel_h / kernel_w')
            return (blob.height, blob.width)
        if has_size == has_hw:
            self.fail('give the kernel as kernel_size, or as both kernel_h and kernel_w '
                      '(not both forms, and not only one of kernel_h/kernel_w)')
        kernel = (pool.kernel_size,) * 2 if has_size else (pool.kernel_h, pool.kernel_w)
        if min(kernel) <= 0:
            self.fail(f'kernel dimensions must be positive, got {kernel}')
        return kernel

    def _pair(self, pool, name):
        has_h, has_w = pool.HasField(name + '_h'), pool.HasField(name + '_w')
        if has_h or has_w:
            if pool.HasField(name) or not (has_h and has_w):
                self.fail(f'give {name}, or both {name}_h and {name}_w, not a mix')
            return (getattr(pool, name + '_h'), getattr(pool, name + '_w'))
        return (getattr(pool, name),) * 2

    def reshape(self, bottom, top):
        blob = bottom[0]
        if blob.num_axes != 4:
            self.fail(f'the bottom must have 4 axes (num, channels, height, width), got '
                      f'shape {blob.shape}')
        if self.global_pooling:
            self.kernel = (blob.height, blob.width)
        self.in_size = blob.shape[2:]
        self.pooled = tuple(self._pooled_size(i) for i in range(2))
        self.tail = [(n - 1) * s + k - p - size for n, s, k, p, size in
                     zip(self.pooled, self.stride, self.kernel, self.pad, self.in_size)]
        self.native = all(self._torch_agrees(i) for i in range(2))
        for t in top:
            t.reshape(blob.num, blob.channels, *self.pooled)

    def _torch_agrees(self, i):
        """Whether torch's own pooling has Caffe's windows on this axis (the fast path):
        torch needs pad <= kernel / 2 and sizes its output by the same ceil/floor rule,
        except that it also drops a last window starting in the padding when pad is 0."""
        size, k, p, s = self.in_size[i], self.kernel[i], self.pad[i], self.stride[i]
        ceil = self.round_mode == RoundMode.Value('CEIL')
        out = (size + 2 * p - k + (s - 1 if ceil else 0)) // s + 1
        if ceil and (out - 1) * s >= size + p:
            out -= 1
        return 2 * p <= k and out == self.pooled[i]

    def _torch_args(self):
        ceil = self.round_mode == RoundMode.Value('CEIL')
        return list(self.kernel), list(self.stride), list(self.pad), ceil

    def _pooled_size(self, i):
        size, k, p, s = self.in_size[i], self.kernel[i], self.pad[i], self.stride[i]
        span = size + 2 * p - k
        ceil = self.round_mode == RoundMode.Value('CEIL')
        pooled = (-(-span // s) if ceil else span // s) + 1
        if any(self.pad) and (pooled - 1) * s >= size + p:  # Caffe: if (pad_h_ || pad_w_)
            pooled -= 1
        axis = ('height', 'width')[i]
        if pooled < 1:
            self.fail(f'the {axis} {size} with pad {p} is too small for kernel {k} and '
                      f'stride {s}: {pooled} outputs; pad the bottom or shrink the kernel')
        if (pooled - 1) * s - p >= size:
            self.fail(f'along the {axis} the last window starts at {(pooled - 1) * s - p}, '
                      f'past the bottom (size {size}): Caffe would pool nothing there '
                      f'(stride {s} > kernel {k}); use stride <= kernel or round_mode FLOOR')
        return pooled

    def _frame(self, x, fill):
        """Pad (or crop, negative) H and W so the pooled windows tile it exactly."""
        return F.pad(x, (self.pad[1], self.tail[1], self.pad[0], self.tail[0]), value=fill)

    def _unframe(self, x):
        return F.pad(x, (-self.pad[1], -self.tail[1], -self.pad[0], -self.tail[0]))

    def forward(self, bottom, top):
        if self.native:
            return self._forward_native(bottom, top)
        x = bottom[0].data_tensor
        if self.method == PoolMethod.Value('MAX'):
            framed = self._frame(x, float('-inf'))
            y, index = F.max_pool2d(framed, self.kernel, self.stride, return_indices=True)
            width = framed.shape[3]
            rows = torch.div(index, width, rounding_mode='floor')
            self.argmax = ((rows - self.pad[0]) * self.in_size[1]
                           + (index - rows * width - self.pad[1]))
            if len(top) > 1:
                top[1].data_tensor.copy_(self.argmax)
            if not self.backward_state:
                self.argmax = None
        else:
            sums = F.avg_pool2d(self._frame(x, 0.0), self.kernel, self.stride,
                                divisor_override=1)
            y = sums / self._divisor(x.device)
        top[0].data_tensor.copy_(y)

    def _divisor(self, device):
        """Caffe's AVE pool_size: each window clipped at the padded bottom's end."""
        sizes = []
        for n, s, k, p, size in zip(self.pooled, self.stride, self.kernel, self.pad,
                                    self.in_size):
            start = torch.arange(n, device=device) * s - p
            sizes.append(torch.clamp(start + k, max=size + p) - start)
        return (sizes[0][:, None] * sizes[1][None, :]).to(torch.float32)

    def _forward_native(self, bottom, top):
        """torch's kernels, writing into the top: the same windows and first maxima."""
        x = bottom[0].data_tensor
        kernel, stride, pad, ceil = self._torch_args()
        if self.method == PoolMethod.Value('MAX') and not self.backward_state \
                and len(top) == 1:
            self.argmax = None  # a forward-only net: no mask to keep for a backward
            if top[0].channels_last and top[0].adoptable:
                # 4-10x faster than on NCHW (vectorised over channels); the same maxima
                top[0]._data.adopt(self._max_channels_last(x.contiguous(
                    memory_format=torch.channels_last), kernel, stride, pad, ceil))
            else:
                top[0].data_tensor.copy_(F.max_pool2d(x, kernel, stride, pad, ceil_mode=ceil))
            return
        y = top[0].data_tensor
        if self.method == PoolMethod.Value('MAX'):
            if getattr(self, 'argmax', None) is None or self.argmax.shape != y.shape:
                self.argmax = torch.empty(y.shape, dtype=torch.long, device=y.device)
            torch.ops.aten.max_pool2d_with_indices.out(
                x, kernel, stride, pad, [1, 1], ceil, out=y, indices=self.argmax)
            if len(top) > 1:
                top[1].data_tensor.copy_(self.argmax)
        else:
            torch.ops.aten.avg_pool2d.out(x, kernel, stride, pad, ceil, True, None, out=y)

    @staticmethod
    def _max_channels_last(x, kernel, stride, pad, ceil):
        """Max pooling of a channels-last x; VGG's 2 x 2, stride 2 windows over an even
        bottom as the maximum of its four phases (3x faster than torch's kernel for pool1
        at 500 x 500: 7 against 22 ms), the same maxima."""
        if kernel == stride == [2, 2] and pad == [0, 0] and x.shape[2] % 2 == 0 \
                and x.shape[3] % 2 == 0:
            top = torch.maximum(x[:, :, 0::2, 0::2], x[:, :, 0::2, 1::2])
            return torch.maximum(top, torch.maximum(x[:, :, 1::2, 0::2], x[:, :, 1::2, 1::2]),
                                 out=top).contiguous(memory_format=torch.channels_last)
        return F.max_pool2d(x, kernel, stride, pad, ceil_mode=ceil)

    def _backward_native(self, top, bottom):
        x, dy, dx = bottom[0].data_tensor, top[0].diff_tensor, bottom[0].diff_tensor
        kernel, stride, pad, ceil = self._torch_args()
        if self.method == PoolMethod.Value('MAX'):
            index = top[1].data_tensor.long() if len(top) > 1 else self.argmax
            torch.ops.aten.max_pool2d_with_indices_backward.grad_input(
                dy, x, kernel, stride, pad, [1, 1], ceil, index, grad_input=dx)
        else:
            torch.ops.aten.avg_pool2d_backward.grad_input(
                dy, x, kernel, stride, pad, ceil, True, None, grad_input=dx)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        if self.native:
            return self._backward_native(top, bottom)
        dy, dx = top[0].diff_tensor, bottom[0].diff_tensor
        num, channels = dx.shape[:2]
        if self.method == PoolMethod.Value('MAX'):
            # Caffe reads the mask top when there is one, so edits to it take effect.
            index = top[1].data_tensor.long() if len(top) > 1 else self.argmax
            dx.zero_()
            dx.view(num * channels, -1).scatter_add_(
                1, index.reshape(num * channels, -1), dy.reshape(num * channels, -1))
            return
        framed = torch.empty(num, channels, *[(n - 1) * s + k for n, s, k in
                                              zip(self.pooled, self.stride, self.kernel)],
                             device=dx.device)
        grad = torch.ops.aten.avg_pool2d_backward(
            dy / self._divisor(dy.device), framed, list(self.kernel), list(self.stride),
            [0, 0], False, True, 1)
        dx.copy_(self._unframe(grad))


@register('LRN')
class LRNLayer(Layer):
    """Local response normalization of a (N, C, H, W) bottom; top has its shape.

    ACROSS_CHANNELS: scale = k + alpha / n * sum of x^2 over the n = local_size channels
    centred on c (zero beyond the edges). WITHIN_CHANNEL (Caffe composes it from Power,
    AVE Pooling with pad (n - 1) / 2 and Eltwise): scale = 1 + alpha / n^2 * sum of x^2
    over the n x n zero-padded window, the pooling divisor being n^2 everywhere; `k` is
    not used there, as in Caffe. top = x * scale^-beta.
    Backward: bottom diff = top_diff * scale^-beta
        - 2 alpha beta / m * x * window_sum(top_diff * top / scale), m = n or n^2.
    ACROSS_CHANNELS writes it whenever backward is called, even with propagate_down
    false (Caffe's CrossChannelBackward_cpu does not look at it); WITHIN_CHANNEL does not.
    Params: local_size (odd), alpha, beta, k, norm_region. scale^-beta is scalar_pow's
    (caffe_torch.batch_invariant): one rounding for every element, as Caffe's std::pow.
    """
    exact_bottoms = exact_tops = 1

    def setup(self, bottom, top):
        lrn = self.layer_param.lrn_param
        self.size = lrn.local_size
        if self.size % 2 != 1:
            self.fail(f'local_size must be odd, got {self.size}')
        self.alpha, self.beta = lrn.alpha, lrn.beta
        self.across = lrn.norm_region == NormRegion.Value('ACROSS_CHANNELS')
        self.shift, self.window = (lrn.k, self.size) if self.across else (1.0, self.size ** 2)

    def reshape(self, bottom, top):
        if bottom[0].num_axes != 4:
            self.fail(f'the bottom must have 4 axes (num, channels, height, width), got '
                      f'shape {bottom[0].shape}')
        top[0].reshape(*bottom[0].shape)

    def _window_sum(self, t):
        """Sum over the local window (channels or H x W), zero beyond the edges."""
        half = (self.size - 1) // 2
        if not self.across:
            return F.avg_pool2d(t, self.size, 1, half, divisor_override=1)
        num, channels, height, width = t.shape
        summed = F.avg_pool2d(t.reshape(num, 1, channels, height * width), (self.size, 1),
                              1, (half, 0), divisor_override=1)
        return summed.reshape(t.shape)

    def forward(self, bottom, top):
        x = bottom[0].data_tensor
        self.scale = self._window_sum(x * x).mul_(self.alpha / self.window).add_(self.shift)
        self.scale_power = scalar_pow(self.scale, -self.beta)
        torch.mul(x, self.scale_power, out=top[0].data_tensor)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0] and not self.across:  # Caffe's CrossChannelBackward_cpu
            return  # does not look at propagate_down; WithinChannelBackward does
        x, y, dy = bottom[0].data_tensor, top[0].data_tensor, top[0].diff_tensor
        ratio = self._window_sum(dy * y / self.scale)
        factor = 2.0 * self.alpha * self.beta / self.window
        bottom[0].diff_tensor.copy_(dy * self.scale_power - factor * x * ratio)
