"""Spatial rearrangement layers: Im2col and SPP (spatial pyramid pooling), as BVLC Caffe.

Im2col lays each kernel window out as a column, in Caffe's im2col order; the Convolution
layer (vision.py) has no im2col of its own (torch's kernels convolve directly), so the
gather is done here from an index map built once per input shape. SPP composes the engine's
Split, Pooling, Flatten and Concat layers exactly as Caffe's SPPLayer builds them.
"""
import math

import torch

from caffe_torch.blob import Blob
from caffe_torch.errors import LayerSetupError
from caffe_torch.layer import Layer
from caffe_torch.layer_factory import register
from caffe_torch.layer_types.common import ConcatLayer, FlattenLayer, SplitLayer
from caffe_torch.layer_types.pooling import PoolingLayer
from caffe_torch.proto import caffe_pb2


def _c_div(a, b):
    """C's integer division (truncates toward zero), as Caffe's output-size arithmetic."""
    q = abs(a) // b
    return q if a >= 0 else -q


@register('Im2col')
class Im2colLayer(Layer):
    """Unfold kernel-sized windows of the bottom into channels (Caffe's im2col).

    bottom: (batch axes..., C, spatial...), channels on convolution_param.axis (default
            1), at least one spatial axis.
    top:    (batch axes..., C * prod(kernel), out...), per spatial axis
            out = (in + 2 pad - (dilation (kernel - 1) + 1)) / stride + 1, C's division
            (truncating toward zero). Top channel c * prod(kernel) + k (k the row-major
            index of the kernel offset) at output position o holds the bottom at
            o * stride - pad + k * dilation, or 0 where that falls in the padding.
    backward: col2im: each bottom diff element is the sum of the top diffs of every
            window position that read it. Written whenever backward is called, even with
            propagate_down false, as Caffe's Backward_cpu (it does not look at it).
    Params (convolution_param): kernel_size / stride / pad / dilation (once or once per
    spatial axis), kernel_h/_w, stride_h/_w, pad_h/_w (2-D only), axis. force_nd_im2col
    only picks Caffe's code path (same numbers) and is ignored; so are num_output & co.
    """
    exact_bottoms = exact_tops = 1

    def setup(self, bottom, top):
        conv = self.layer_param.convolution_param
        self.channel_axis = self.canonical_axis(bottom[0], conv.axis, 'convolution_param.axis')
        self.num_spatial = bottom[0].num_axes - self.channel_axis - 1
        if self.num_spatial < 1:
            self.fail(f'needs at least one spatial axis after the channel axis '
                      f'{self.channel_axis}; the bottom has shape {bottom[0].shape}')
        self.kernel = self._spatial(conv, 'kernel_size', 'kernel', None)
        if min(self.kernel) <= 0:
            self.fail(f'filter dimensions must be nonzero, got kernel {self.kernel}')
        self.stride = self._spatial(conv, 'stride', 'stride', 1)
        if min(self.stride) <= 0:
            self.fail(f'stride dimensions must be nonzero, got stride {self.stride}')
        self.pad = self._spatial(conv, 'pad', 'pad', 0)
        self.dilation = self._spatial(conv, 'dilation', None, 1)
        self._map_key = None

    def _spatial(self, conv, name, prefix, default):
        """One value per spatial axis, from `prefix`_h/_w or from the repeated `name`."""
        n = self.num_spatial
        if prefix is not None and (conv.HasField(prefix + '_h') or
                                   conv.HasField(prefix + '_w')):
            if n != 2:
                self.fail(f'{prefix}_h & {prefix}_w can only be used for 2-D im2col; the '
                          f'bottom has {n} spatial axes, so give {name}')
            if len(getattr(conv, name)):
                self.fail(f'either {name} or {prefix}_h/_w should be specified, not both')
            return [getattr(conv, prefix + '_h'), getattr(conv, prefix + '_w')]
        values = list(getattr(conv, name))
        allowed = (1, n) if default is None else (0, 1, n)
        if len(values) not in allowed:
            self.fail(f'{name} must be specified once, or once per spatial dimension '
                      f'({name} specified {len(values)} times; {n} spatial dims)')
        if not values:
            return [default] * n
        return [values[0] if len(values) == 1 else values[i] for i in range(n)]

    def reshape(self, bottom, top):
        shape = bottom[0].shape
        if len(shape) != self.channel_axis + 1 + self.num_spatial:
            self.fail(f'the bottom must keep {self.channel_axis + 1 + self.num_spatial} '
                      f'axes (set up so), got shape {shape}')
        self.in_size = tuple(shape[self.channel_axis + 1:])
        self.out_size = []
        for i, size in enumerate(self.in_size):
            extent = self.dilation[i] * (self.kernel[i] - 1) + 1
            out = _c_div(size + 2 * self.pad[i] - extent, self.stride[i]) + 1
            if out < 0:
                self.fail(f'spatial axis {i}: the kernel extent {extent} exceeds the padded '
                          f'size {size} + 2 * {self.pad[i]} (output size {out}); use more '
                          f'pad or a smaller kernel or dilation')
            self.out_size.append(out)
        channels = shape[self.channel_axis] * math.prod(self.kernel)
        top_shape = (*shape[:self.channel_axis], channels, *self.out_size)
        if top[0] is bottom[0] and top_shape != shape:
            self.fail(f'in place the top {top_shape} would overwrite the shape of the '
                      f'bottom {shape} it reads; give the top its own name')
        top[0].reshape(*top_shape)

    def _index_map(self, device):
        """(prod(kernel) * prod(out),) flat offsets into a bottom plane with one zero
        appended, in Caffe's column order: window elements in the padding point at it."""
        key = (self.in_size, tuple(self.out_size), device)
        if self._map_key == key:
            return self.index_map
        n, plane = self.num_spatial, math.prod(self.in_size)
        flat = torch.zeros((1,) * (2 * n), dtype=torch.long, device=device)
        valid = torch.ones((1,) * (2 * n), dtype=torch.bool, device=device)
        for i, size in enumerate(self.in_size):
            offset = torch.arange(self.kernel[i], device=device) * self.dilation[i]
            start = torch.arange(self.out_size[i], device=device) * self.stride[i]
            pos = offset[:, None] + start[None, :] - self.pad[i]  # (kernel_i, out_i)
            # kernel axis i goes to axis i, output axis i to axis n + i
            shape = [1] * (2 * n)
            shape[i], shape[n + i] = pos.shape
            pos = pos.reshape(shape)
            flat = flat + pos * math.prod(self.in_size[i + 1:])
            valid = valid & (pos >= 0) & (pos < size)
        self.index_map = torch.where(valid, flat, plane).reshape(-1)
        self._map_key = key
        return self.index_map

    def _planes(self, blob):
        return math.prod(blob.shape[:self.channel_axis + 1])

    def forward(self, bottom, top):
        x = bottom[0].data_tensor
        planes, plane = self._planes(bottom[0]), math.prod(self.in_size)
        padded = torch.cat([x.reshape(planes, plane), x.new_zeros(planes, 1)], dim=1)
        cols = padded.index_select(1, self._index_map(x.device))
        top[0].data_tensor.copy_(cols.reshape(top[0].shape))

    def backward(self, top, propagate_down, bottom):
        # No propagate_down test: Caffe's Backward_cpu writes the bottom diff whenever the
        # net calls it (propagate_down: false on a bottom that needs backward elsewhere).
        dy = top[0].diff_tensor
        planes = self._planes(bottom[0])
        grad = dy.new_zeros(planes, math.prod(self.in_size) + 1)
        index = self._index_map(dy.device)
        grad.index_add_(1, index, dy.reshape(planes, index.numel()))
        bottom[0].diff_tensor.copy_(grad[:, :-1].reshape(bottom[0].shape))


@register('SPP')
class SPPLayer(Layer):
    """Spatial pyramid pooling: pool the bottom into 1, 2 x 2, ..., 2^(H-1) x 2^(H-1) bins
    and concatenate them flat, H = pyramid_height.

    bottom: (N, C, h, w). top: (N, C * sum over levels of 4^l); with pyramid_height 1
    just the (N, C, 1, 1) pooling output.
    Level l (b = 2^l bins): Pooling with kernel = stride = ceil(h / b) (ceil(w / b)) and
    pad = (kernel * b - h + 1) / 2 (integer), per axis; Pooling's rules then apply (it
    refuses pad >= kernel, as Caffe does, e.g. h = 5 with 4 bins).
    backward: each level's pooling backward, summed into the bottom diff (Split).
    spp_param: pyramid_height (>= 1), pool (MAX or AVE; STOCHASTIC is GPU-only in Caffe
    and not provided). No in place: the top's shape differs from the bottom's.
    """
    exact_bottoms = exact_tops = 1

    def setup(self, bottom, top):
        param = self.layer_param.spp_param
        self.pyramid_height = param.pyramid_height
        if self.pyramid_height < 1:
            self.fail(f'pyramid_height must be at least 1, got {self.pyramid_height}')
        if param.pool == caffe_pb2.SPPParameter.STOCHASTIC:
            self.fail('STOCHASTIC pooling exists only in Caffe\'s GPU code and is not '
                      'provided; use pool: MAX or AVE')
        if top[0] is bottom[0]:
            self.fail('SPP cannot run in place (its top has another shape); give the top '
                      'its own name')
        self._check_bottom(bottom[0])
        self._built_for = None

    def _check_bottom(self, blob):
        if blob.num_axes != 4:
            self.fail(f'the bottom must have 4 axes, corresponding to (num, channels, '
                      f'height, width), got shape {blob.shape}')
        if blob.height <= 0 or blob.width <= 0:
            self.fail(f'input dimensions cannot be zero: bottom shape {blob.shape}')

    def _pooling_param(self, level, height, width):
        bins = 2 ** level
        pool = caffe_pb2.PoolingParameter()
        for axis, size in (('h', height), ('w', width)):
            kernel = -(-size // bins)
            setattr(pool, 'kernel_' + axis, kernel)
            setattr(pool, 'stride_' + axis, kernel)
            setattr(pool, 'pad_' + axis, (kernel * bins - size + 1) // 2)
        pool.pool = (caffe_pb2.PoolingParameter.MAX
                     if self.layer_param.spp_param.pool == caffe_pb2.SPPParameter.MAX
                     else caffe_pb2.PoolingParameter.AVE)
        return caffe_pb2.LayerParameter(name=f'{self.name}/pool{level}', type='Pooling',
                                        pooling_param=pool)

    def _inner(self, cls, param, bottom, top, what):
        layer = cls(param, self.phase)
        try:
            layer.set_up(bottom, top)
        except LayerSetupError as error:
            self.fail(f'{what}: {error}')
        return layer

    def reshape(self, bottom, top):
        blob = bottom[0]
        self._check_bottom(blob)
        if self._built_for == blob.shape:
            return
        height, width = blob.height, blob.width
        if self.pyramid_height == 1:
            self.poolings = [self._inner(PoolingLayer, self._pooling_param(0, height, width),
                                         bottom, top, 'pyramid level 0')]
            self._built_for = blob.shape
            return
        levels = range(self.pyramid_height)
        self.split_tops = [Blob(device=blob.device) for _ in levels]
        self.pool_tops = [Blob(device=blob.device) for _ in levels]
        self.flat_tops = [Blob(device=blob.device) for _ in levels]
        self.split = self._inner(SplitLayer, caffe_pb2.LayerParameter(
            name=f'{self.name}/split', type='Split'), bottom, self.split_tops, 'split')
        self.poolings, self.flattens = [], []
        for i in levels:
            self.poolings.append(self._inner(
                PoolingLayer, self._pooling_param(i, height, width), [self.split_tops[i]],
                [self.pool_tops[i]], f'pyramid level {i}'))
            self.flattens.append(self._inner(
                FlattenLayer, caffe_pb2.LayerParameter(name=f'{self.name}/flatten{i}',
                                                       type='Flatten'),
                [self.pool_tops[i]], [self.flat_tops[i]], f'flatten {i}'))
        self.concat = self._inner(ConcatLayer, caffe_pb2.LayerParameter(
            name=f'{self.name}/concat', type='Concat'), self.flat_tops, top, 'concat')
        self._built_for = blob.shape

    def forward(self, bottom, top):
        if self.pyramid_height == 1:
            self.poolings[0].run_forward(bottom, top)
            return
        self.split.run_forward(bottom, self.split_tops)
        for i in range(self.pyramid_height):
            self.poolings[i].run_forward([self.split_tops[i]], [self.pool_tops[i]])
            self.flattens[i].run_forward([self.pool_tops[i]], [self.flat_tops[i]])
        self.concat.run_forward(self.flat_tops, top)

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        if self.pyramid_height == 1:
            self.poolings[0].run_backward(top, propagate_down, bottom)
            return
        self.concat.run_backward(top, [True] * self.pyramid_height, self.flat_tops)
        for i in range(self.pyramid_height):
            self.flattens[i].run_backward([self.flat_tops[i]], [True], [self.pool_tops[i]])
            self.poolings[i].run_backward([self.pool_tops[i]], [True], [self.split_tops[i]])
        self.split.run_backward(self.split_tops, [True], bottom)
