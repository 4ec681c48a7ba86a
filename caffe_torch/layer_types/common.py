"""Common layers: InnerProduct, Concat, Slice, Split, Flatten, Reshape, Silence, ArgMax, with
Caffe's shape rules, memory sharing and diff conventions (Eltwise, Scale, Bias: elementwise).

Layers that only relabel memory (Split shares data; Flatten and Reshape share data and
diff; Concat and Slice with a single bottom or top) do it in reshape() with
Blob.share_data/share_diff, as Caffe does, so writes through one blob show in the other.
"""
import math

import torch

from caffe_torch.layer import Layer
from caffe_torch.layer_factory import register
from caffe_torch.batch_invariant import mm_rows




def bottom_label(layer, index):
    names = layer.layer_param.bottom
    return f'bottom[{index}] "{names[index]}"' if index < len(names) else f'bottom[{index}]'


def _share(top, bottom):
    top.share_data(bottom)
    top.share_diff(bottom)




@register('InnerProduct')
class InnerProductLayer(Layer):
    """Fully connected: bottom (M, ..., K from `axis` on) -> top (M..., N), N = num_output.

    top = x W^T + b with W of shape (N, K), or x W with W of shape (K, N) when `transpose`.
    Backward adds dW and db (sum over the M rows) to the parameter diffs and overwrites the
    bottom diff with dy W (dy W^T when transposed). Params: num_output, bias_term, axis,
    transpose, weight_filler, bias_filler. Top rows and bottom diff rows are computed by
    mm_rows, so a sample's result does not depend on its batch (as in Caffe).
    """
    exact_bottoms = exact_tops = 1

    def setup(self, bottom, top):
        p = self.layer_param.inner_product_param
        if p.num_output < 1:
            self.fail(f'inner_product_param.num_output must be positive, got {p.num_output}')
        self.num_output, self.transpose = p.num_output, p.transpose
        axis = self.canonical_axis(bottom[0], p.axis, 'inner_product_param.axis')
        self.K = bottom[0].count_range(axis)
        if self.blobs:
            return
        n, k = self.num_output, self.K
        self.param_blob((k, n) if self.transpose else (n, k), p.weight_filler)
        if p.bias_term:
            self.param_blob((n,), p.bias_filler)

    def reshape(self, bottom, top):
        p = self.layer_param.inner_product_param
        self.axis = self.canonical_axis(bottom[0], p.axis, 'inner_product_param.axis')
        k = bottom[0].count_range(self.axis)
        if k != self.K:
            self.fail(f'bottom shape {bottom[0].shape} flattens from axis {self.axis} to K = '
                      f'{k} inputs, but the weight {self.blobs[0].shape} was made for K = '
                      f'{self.K}; feed a bottom of the original size or change axis')
        self.M = bottom[0].count_range(0, self.axis)
        top[0].reshape(*bottom[0].shape[:self.axis], self.num_output)

    def _weight(self, tensor):
        """The weight as a (K, N) matrix, whichever way it is stored."""
        return tensor if self.transpose else tensor.t()

    def forward(self, bottom, top):
        x = bottom[0].data_tensor.view(self.M, self.K)
        out = top[0].data_tensor.view(self.M, self.num_output)
        mm_rows(x, self._weight(self.blobs[0].data_tensor), out=out)
        if len(self.blobs) > 1:
            out.add_(self.blobs[1].data_tensor)

    def backward(self, top, propagate_down, bottom):
        dy = top[0].diff_tensor.view(self.M, self.num_output)
        if self.param_needs_diff(0):
            x = bottom[0].data_tensor.view(self.M, self.K)
            w_diff = self.blobs[0].diff_tensor
            if self.transpose:
                w_diff.addmm_(x.t(), dy)
            else:
                w_diff.addmm_(dy.t(), x)
        if len(self.blobs) > 1 and self.param_needs_diff(1):
            self.blobs[1].diff_tensor.add_(dy.sum(dim=0))
        if propagate_down[0]:
            dx = bottom[0].diff_tensor.view(self.M, self.K)
            mm_rows(dy, self._weight(self.blobs[0].data_tensor).t(), out=dx)


def _legacy_axis(layer, blob, param, legacy, what):
    """`axis`, or the deprecated uint `legacy` dim (no negative indexing) when it is set."""
    if param.HasField('axis') and param.HasField(legacy):
        layer.fail(f'{what}: give either axis or {legacy}, not both')
    if param.HasField(legacy):
        axis = getattr(param, legacy)
        if axis >= blob.num_axes:
            layer.fail(f'{what}.{legacy} = {axis} is out of range for bottom shape '
                       f'{blob.shape}')
        return axis
    return layer.canonical_axis(blob, param.axis, f'{what}.axis')


def _same_except(shape, other, axis):
    return len(shape) == len(other) and all(
        a == b for i, (a, b) in enumerate(zip(shape, other)) if i != axis)


@register('Concat')
class ConcatLayer(Layer):
    """Join bottoms along `axis` (or deprecated concat_dim); all other dims must agree.

    Backward copies each bottom's slice of the top diff into its diff. One bottom: the top
    shares its data and diff. Params: axis (default 1), concat_dim.
    """
    min_bottoms = exact_tops = 1

    def reshape(self, bottom, top):
        self.axis = _legacy_axis(self, bottom[0], self.layer_param.concat_param,
                                 'concat_dim', 'concat_param')
        shape = list(bottom[0].shape)
        for i, blob in enumerate(bottom[1:], 1):
            if not _same_except(blob.shape, shape, self.axis):
                self.fail(f'{bottom_label(self, i)} has shape {blob.shape} but '
                          f'{bottom_label(self, 0)} has {bottom[0].shape}: all bottoms must '
                          f'agree on every axis except the concat axis {self.axis}')
            shape[self.axis] += blob.shape[self.axis]
        top[0].reshape(*shape)
        if len(bottom) == 1:
            _share(top[0], bottom[0])

    def forward(self, bottom, top):
        if len(bottom) > 1:
            torch.cat([b.data_tensor for b in bottom], dim=self.axis, out=top[0].data_tensor)

    def backward(self, top, propagate_down, bottom):
        if len(bottom) == 1:
            return
        offset, diff = 0, top[0].diff_tensor
        for blob, down in zip(bottom, propagate_down):
            size = blob.shape[self.axis]
            if down:
                blob.diff_tensor.copy_(diff.narrow(self.axis, offset, size))
            offset += size


@register('Slice')
class SliceLayer(Layer):
    """Cut the bottom along `axis` (or slice_dim) at slice_point, or into equal parts.

    Backward copies each top diff back into its part of the bottom diff. One top: it shares
    the bottom's data and diff. Params: axis (default 1), slice_dim, slice_point.
    """
    exact_bottoms = min_tops = 1

    def reshape(self, bottom, top):
        p = self.layer_param.slice_param
        self.axis = _legacy_axis(self, bottom[0], p, 'slice_dim', 'slice_param')
        self.sizes = self._sizes(list(p.slice_point), bottom[0].shape[self.axis], len(top))
        shape = list(bottom[0].shape)
        for blob, size in zip(top, self.sizes):
            shape[self.axis] = size
            blob.reshape(*shape)
        if len(top) == 1:
            _share(top[0], bottom[0])

    def _sizes(self, points, length, ntop):
        if not points:
            if length % ntop:
                self.fail(f'{ntop} tops do not evenly divide the bottom\'s slice axis '
                          f'{self.axis} of size {length}; give slice_point')
            return [length // ntop] * ntop
        if len(points) != ntop - 1:
            self.fail(f'{len(points)} slice_point(s) for {ntop} tops; give {ntop - 1}')
        if ntop > length:
            self.fail(f'{ntop} tops are more than the slice axis size {length}')
        bounds = [0] + points + [length]
        sizes = [b - a for a, b in zip(bounds, bounds[1:])]
        if any(s <= 0 for s in sizes[:-1]) or sizes[-1] < 0:
            self.fail(f'slice_point {points} must increase strictly and stay within the '
                      f'slice axis size {length}')
        return sizes

    def forward(self, bottom, top):
        if len(top) == 1:
            return
        offset, data = 0, bottom[0].data_tensor
        for blob, size in zip(top, self.sizes):
            blob.data_tensor.copy_(data.narrow(self.axis, offset, size))
            offset += size

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0] or len(top) == 1:
            return
        offset, diff = 0, bottom[0].diff_tensor
        for blob, size in zip(top, self.sizes):
            diff.narrow(self.axis, offset, size).copy_(blob.diff_tensor)
            offset += size


class _MemoryLayer(Layer):
    """A layer with no forward computation: its tops share memory, or it has none."""

    def reshape(self, bottom, top):
        pass

    def forward(self, bottom, top):
        pass


@register('Split')
class SplitLayer(_MemoryLayer):
    """One bottom to N tops that share its data; backward sums the N top diffs into it.

    The Net inserts these where a blob feeds several layers. No in-place use.
    """
    exact_bottoms = min_tops = 1

    def reshape(self, bottom, top):
        for i, blob in enumerate(top):
            if blob is bottom[0]:
                self.fail(f'top[{i}] is the bottom: Split does not allow in-place use')
            blob.reshape(*bottom[0].shape)
            blob.share_data(bottom[0])

    def backward(self, top, propagate_down, bottom):
        if not propagate_down[0]:
            return
        diff = bottom[0].diff_tensor.copy_(top[0].diff_tensor)
        for blob in top[1:]:
            diff.add_(blob.diff_tensor)


@register('Flatten')
class FlattenLayer(_MemoryLayer):
    """Merge axes [axis, end_axis] into one; the top shares the bottom's data and diff.

    Params: axis (default 1), end_axis (default -1). No in-place use.
    """
    exact_bottoms = exact_tops = 1

    def reshape(self, bottom, top):
        if top[0] is bottom[0]:
            self.fail('Flatten does not allow in-place use; give the top its own name')
        p = self.layer_param.flatten_param
        start = self.canonical_axis(bottom[0], p.axis, 'flatten_param.axis')
        end = self.canonical_axis(bottom[0], p.end_axis, 'flatten_param.end_axis')
        if end + 1 < start:
            self.fail(f'flatten_param.end_axis ({end}) comes before axis ({start}) for '
                      f'bottom shape {bottom[0].shape}')
        shape = bottom[0].shape
        top[0].reshape(*shape[:start], bottom[0].count_range(start, end + 1), *shape[end + 1:])
        _share(top[0], bottom[0])


@register('Reshape')
class ReshapeLayer(_MemoryLayer):
    """Give the bottom's data a new shape; the top shares the bottom's data and diff.

    reshape_param.shape replaces bottom axes [axis, axis + num_axes): a dim 0 copies the
    bottom's dim at that place, one dim -1 is inferred from the count. No in-place use.
    """
    exact_bottoms = exact_tops = 1

    def setup(self, bottom, top):
        if top[0] is bottom[0]:
            self.fail('Reshape does not allow in-place use; give the top its own name')
        dims = list(self.layer_param.reshape_param.shape.dim)
        if dims.count(-1) > 1 or any(d < -1 for d in dims):
            self.fail(f'reshape_param.shape {dims} may hold at most one -1 and no other '
                      f'negative dim')
        self.dims = dims

    def reshape(self, bottom, top):
        p, shape = self.layer_param.reshape_param, bottom[0].shape
        start = p.axis if p.axis >= 0 else len(shape) + p.axis + 1
        if not 0 <= start <= len(shape):
            self.fail(f'reshape_param.axis = {p.axis} is out of range for bottom shape {shape}')
        if p.num_axes < -1:
            self.fail(f'reshape_param.num_axes must be >= 0 or -1, got {p.num_axes}')
        end = len(shape) if p.num_axes == -1 else start + p.num_axes
        if end > len(shape):
            self.fail(f'axis {start} + num_axes {p.num_axes} runs past bottom shape {shape}')
        new = list(self.dims)
        for i, d in enumerate(new):
            if d == 0:
                if start + i >= len(shape):
                    self.fail(f'reshape_param.shape dim {i} is 0 but bottom shape {shape} '
                              f'has no axis {start + i} to copy')
                new[i] = shape[start + i]
        if -1 in new:
            known = bottom[0].count_range(0, start) * bottom[0].count_range(end)
            known *= math.prod(d for d in new if d != -1)
            if known == 0 or bottom[0].count % known:
                self.fail(f'bottom count {bottom[0].count} is not divisible by the product '
                          f'of the specified dims ({known}) in {self.dims}')
            new[new.index(-1)] = bottom[0].count // known
        new_shape = (*shape[:start], *new, *shape[end:])
        top[0].reshape(*new_shape)
        if top[0].count != bottom[0].count:
            self.fail(f'top shape {new_shape} has {top[0].count} elements but bottom shape '
                      f'{shape} has {bottom[0].count}; they must match')
        _share(top[0], bottom[0])


@register('Silence')
class SilenceLayer(_MemoryLayer):
    """Consume any bottoms so they are not net outputs; backward zeroes their diffs."""
    min_bottoms, exact_tops = 1, 0

    def backward(self, top, propagate_down, bottom):
        for blob, down in zip(bottom, propagate_down):
            if down:
                blob.diff_tensor.zero_()


@register('ArgMax')
class ArgMaxLayer(Layer):
    """Indices (or values) of the top_k largest entries, per instance or along `axis`.

    No axis: bottom (N, ...) -> top (N, 1, top_k) of indices into the flattened instance,
    or (N, 2, top_k) with the indices then the values when out_max_val. With axis: the
    bottom shape with that axis set to top_k, holding values if out_max_val, else indices.
    Equal values rank the larger index first (Caffe's std::greater on (value, index)).
    Caffe has no backward for it and aborts when one is asked (force_backward, a loss
    behind it): this layer raises BackwardNotImplementedError then.
    """
    exact_bottoms = exact_tops = 1

    def setup(self, bottom, top):
        p = self.layer_param.argmax_param
        self.top_k, self.out_max_val = p.top_k, p.out_max_val
        if self.top_k < 1:
            self.fail(f'argmax_param.top_k must be at least 1, got {self.top_k}')
        self.axis = (self.canonical_axis(bottom[0], p.axis, 'argmax_param.axis')
                     if p.HasField('axis') else None)
        size = (bottom[0].shape[self.axis] if self.axis is not None
                else bottom[0].count_range(1))
        if self.top_k > size:
            self.fail(f'argmax_param.top_k = {self.top_k} exceeds the {size} entries it '
                      f'ranks in bottom shape {bottom[0].shape}')

    def reshape(self, bottom, top):
        if self.axis is not None:
            shape = list(bottom[0].shape)
            shape[self.axis] = self.top_k
        else:
            shape = [1] * max(bottom[0].num_axes, 3)
            shape[0], shape[2] = bottom[0].shape[0], self.top_k
            shape[1] = 2 if self.out_max_val else 1
        top[0].reshape(*shape)

    def forward(self, bottom, top):
        x = bottom[0].data_tensor
        if self.axis is None:
            rows = x.reshape(x.shape[0], -1)
        else:
            outer = bottom[0].count_range(0, self.axis)
            rows = x.reshape(outer, x.shape[self.axis], -1).transpose(1, 2)
        # Sorting the reversed rows stably ranks equal values larger-index first.
        values, index = torch.sort(rows.flip(-1), dim=-1, descending=True, stable=True)
        values = values[..., :self.top_k]
        index = (rows.shape[-1] - 1 - index[..., :self.top_k]).to(rows.dtype)
        out = top[0].data_tensor
        if self.axis is None:
            out = out.view(rows.shape[0], -1, self.top_k)
            out[:, 0].copy_(index)
            if self.out_max_val:
                out[:, 1].copy_(values)
        else:
            result = values if self.out_max_val else index
            out.view(outer, self.top_k, -1).copy_(result.transpose(1, 2))

    def backward(self, top, propagate_down, bottom):
        self.refuse_backward(propagate_down, 'indices have no gradient')

