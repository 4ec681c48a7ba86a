"""Element-wise layers: Eltwise (PROD, SUM, MAX of equal-shaped bottoms) and Scale and Bias,
which broadcast a blob (a second bottom or a learned parameter) over a span of bottom[0]'s
axes: the operand's shape must equal bottom[0].shape[axis:axis + operand.num_axes].
"""
import torch

from caffe_torch.layer import Layer
from caffe_torch.layer_factory import register
from caffe_torch.layer_types.common import bottom_label
from caffe_torch.proto import caffe_pb2

EltwiseOp = caffe_pb2.EltwiseParameter.EltwiseOp


@register('Eltwise')
class EltwiseLayer(Layer):
    """Element-wise PROD, SUM (with one coeff per bottom) or MAX of bottoms of one shape.

    Backward: SUM gives coeff * dy; MAX gives dy to the bottom recorded as the argmax
    (a > b picks bottom 0, ties go to bottom 1, later bottoms win only when strictly
    greater); PROD gives dy times the product of the other bottoms (stable_prod_grad) or
    dy * top / bottom. Params: operation, coeff, stable_prod_grad.
    """
    min_bottoms, exact_tops = 2, 1

    def setup(self, bottom, top):
        p = self.layer_param.eltwise_param
        if p.coeff and len(p.coeff) != len(bottom):
            self.fail(f'eltwise_param has {len(p.coeff)} coeff(s) for {len(bottom)} '
                      f'bottoms; give one per bottom or none')
        if p.operation == EltwiseOp.Value('PROD') and p.coeff:
            self.fail('eltwise_param.coeff applies to SUM only, not PROD')
        self.op = p.operation
        self.coeffs = list(p.coeff) or [1.0] * len(bottom)
        self.stable_prod_grad = p.stable_prod_grad

    def reshape(self, bottom, top):
        for i, blob in enumerate(bottom[1:], 1):
            if blob.shape != bottom[0].shape:
                self.fail(f'{bottom_label(self, i)} has shape {blob.shape} but '
                          f'{bottom_label(self, 0)} has {bottom[0].shape}; all bottoms '
                          f'must have the same shape')
        top[0].reshape(*bottom[0].shape)

    def forward(self, bottom, top):
        out, data = top[0].data_tensor, [b.data_tensor for b in bottom]
        if self.op == EltwiseOp.Value('PROD'):
            torch.mul(data[0], data[1], out=out)
            for d in data[2:]:
                out.mul_(d)
        elif self.op == EltwiseOp.Value('SUM'):
            out.zero_()
            for d, coeff in zip(data, self.coeffs):
                out.add_(d, alpha=coeff)
        else:
            first = data[0] > data[1]
            self.max_idx = torch.where(first, 0, 1).to(torch.int32)
            torch.where(first, data[0], data[1], out=out)
            for i, d in enumerate(data[2:], 2):
                wins = d > out
                self.max_idx.masked_fill_(wins, i)
                torch.where(wins, d, out, out=out)

    def backward(self, top, propagate_down, bottom):
        dy = top[0].diff_tensor
        for i, blob in enumerate(bottom):
            if propagate_down[i]:
                blob.diff_tensor.copy_(self._bottom_grad(i, dy, top, bottom))

    def _bottom_grad(self, i, dy, top, bottom):
        if self.op == EltwiseOp.Value('SUM'):
            return dy if self.coeffs[i] == 1 else dy * self.coeffs[i]
        if self.op == EltwiseOp.Value('MAX'):
            return torch.where(self.max_idx == i, dy, torch.zeros_like(dy))
        if not self.stable_prod_grad:
            return top[0].data_tensor / bottom[i].data_tensor * dy
        others = [b.data_tensor for j, b in enumerate(bottom) if j != i]
        product = others[0].clone()
        for d in others[1:]:
            product.mul_(d)
        return product.mul_(dy)


def _param_shape(layer, blob, axis, num_axes, what):
    """The shape of a learned operand covering bottom axes [axis, axis + num_axes)."""
    if not blob.num_axes:  # Caffe's CanonicalAxisIndex admits no axis of a 0-D blob
        layer.fail(f'{what}_param.axis = {axis} is out of range for a 0-D bottom: a learned '
                   f'{what} needs a bottom with at least one axis (use a second bottom)')
    axis = layer.canonical_axis(blob, axis, f'{what}_param.axis')
    if num_axes < -1:
        layer.fail(f'{what}_param.num_axes must be >= 0, or -1 for all remaining axes; '
                   f'got {num_axes}')
    if num_axes >= 0 and axis + num_axes > blob.num_axes:
        layer.fail(f'{what} blob of {num_axes} axes from axis {axis} extends past bottom '
                   f'shape {blob.shape}')
    return blob.shape[axis:None if num_axes == -1 else axis + num_axes]


def _broadcast_dims(layer, blob, operand, axis, what):
    """(outer, operand count, inner) after checking operand.shape matches blob's axes."""
    if operand.num_axes:
        axis = layer.canonical_axis(blob, axis, f'{what}_param.axis')
    else:
        axis = 0  # a scalar broadcasts the same from any axis
    end = axis + operand.num_axes
    if end > blob.num_axes or blob.shape[axis:end] != operand.shape:
        layer.fail(f'{what} shape {operand.shape} must equal bottom[0].shape[{axis}:{end}] ='
                   f' {blob.shape[axis:end]} (bottom[0] shape {blob.shape}); change '
                   f'{what}_param axis/num_axes or the {what} blob')
    return blob.count_range(0, axis), operand.count, blob.count_range(end)


@register('Bias')
class BiasLayer(Layer):
    """top = bottom[0] + bias, bias broadcast over bottom[0] axes [axis, axis + num_axes).

    The bias is bottom[1] or a learned blob (filler, default constant 0). Backward copies
    dy to bottom[0] (nothing to do in place) and sums dy into the bias diff (added for the
    param, written for bottom[1]). Params: axis (default 1), num_axes (default 1, -1 all).
    """
    min_bottoms, max_bottoms, exact_tops = 1, 2, 1

    def setup(self, bottom, top):
        p = self.layer_param.bias_param
        if len(bottom) == 1 and not self.blobs:
            self.param_blob(_param_shape(self, bottom[0], p.axis, p.num_axes, 'bias'),
                            p.filler)

    def reshape(self, bottom, top):
        bias = bottom[1] if len(bottom) > 1 else self.blobs[0]
        self.dims = _broadcast_dims(self, bottom[0], bias, self.layer_param.bias_param.axis,
                                    'bias')
        if top[0] is not bottom[0]:
            top[0].reshape(*bottom[0].shape)

    def forward(self, bottom, top):
        bias = bottom[1] if len(bottom) > 1 else self.blobs[0]
        out = top[0].data_tensor
        if top[0] is not bottom[0]:
            out.copy_(bottom[0].data_tensor)
        outer, dim, inner = self.dims
        out.view(outer, dim, inner).add_(bias.data_tensor.view(1, dim, 1))

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0] and top[0] is not bottom[0]:
            bottom[0].diff_tensor.copy_(top[0].diff_tensor)
        learned = len(bottom) == 1
        if (learned and self.param_needs_diff(0)) or (not learned and propagate_down[1]):
            grad = top[0].diff_tensor.view(*self.dims).sum(dim=(0, 2))
            bias = self.blobs[0] if learned else bottom[1]
            target = bias.diff_tensor.view(-1)
            if learned:
                target.add_(grad)
            else:
                target.copy_(grad)


@register('Scale')
class ScaleLayer(Layer):
    """top = bottom[0] * scale (+ bias), scale broadcast over axes [axis, axis + num_axes).

    The scale is bottom[1] or a learned blob (filler, default constant 1); bias_term adds
    an internal Bias layer whose blob is the last param. Backward: dx = dy * scale;
    dscale = sum of dy * x over the broadcast axes. In place works (x is kept). Params:
    axis (default 1), num_axes (default 1, -1 all), filler, bias_term, bias_filler.
    """
    min_bottoms, max_bottoms, exact_tops = 1, 2, 1

    def setup(self, bottom, top):
        p = self.layer_param.scale_param
        if len(bottom) == 1 and not self.blobs:
            filler = p.filler if p.HasField('filler') else caffe_pb2.FillerParameter(
                type='constant', value=1)
            self.param_blob(_param_shape(self, bottom[0], p.axis, p.num_axes, 'scale'),
                            filler)
        self.bias = self._bias_layer(bottom, top) if p.bias_term else None

    def _bias_layer(self, bottom, top):
        """Caffe's internal Bias layer, sharing its blob as this layer's last param."""
        p = self.layer_param.scale_param
        param = caffe_pb2.LayerParameter()
        param.CopyFrom(self.layer_param)
        param.type = 'Bias'
        param.bias_param.axis = p.axis
        param.bias_param.num_axes = bottom[1].num_axes if len(bottom) > 1 else p.num_axes
        param.bias_param.filler.CopyFrom(p.bias_filler)
        layer = BiasLayer(param, self.phase)
        if len(self.blobs) + len(bottom) < 3:
            layer.setup([bottom[0]], top)
            self.blobs.append(layer.blobs[0])
        else:
            layer.blobs.append(self.blobs[-1])
        return layer

    def reshape(self, bottom, top):
        scale = bottom[1] if len(bottom) > 1 else self.blobs[0]
        self.dims = _broadcast_dims(self, bottom[0], scale,
                                    self.layer_param.scale_param.axis, 'scale')
        if top[0] is not bottom[0]:
            top[0].reshape(*bottom[0].shape)
        if self.bias is not None:
            self.bias.reshape([top[0]], top)

    def forward(self, bottom, top):
        scale = bottom[1] if len(bottom) > 1 else self.blobs[0]
        x = bottom[0].data_tensor
        # In place the top overwrites x, which backward needs for dscale.
        self.saved_x = x.clone() if top[0] is bottom[0] else None
        outer, dim, inner = self.dims
        torch.mul(x.view(outer, dim, inner), scale.data_tensor.view(1, dim, 1),
                  out=top[0].data_tensor.view(outer, dim, inner))
        if self.bias is not None:
            self.bias.forward([top[0]], top)

    def backward(self, top, propagate_down, bottom):
        if self.bias is not None and self.param_needs_diff(len(self.blobs) - 1):
            self.bias.backward(top, [False], [top[0]])
        learned = len(bottom) == 1
        scale = self.blobs[0] if learned else bottom[1]
        if (learned and self.param_needs_diff(0)) or (not learned and propagate_down[1]):
            self._scale_grad(top, propagate_down, bottom, scale, learned)
        if propagate_down[0]:
            outer, dim, inner = self.dims
            torch.mul(top[0].diff_tensor.view(outer, dim, inner),
                      scale.data_tensor.view(1, dim, 1),
                      out=bottom[0].diff_tensor.view(outer, dim, inner))

    def _scale_grad(self, top, propagate_down, bottom, scale, learned):
        in_place = top[0] is bottom[0]
        x = self.saved_x if in_place else bottom[0].data_tensor
        product = top[0].diff_tensor * x
        grad = product.view(*self.dims).sum(dim=(0, 2))
        outer, dim, inner = self.dims
        eltwise = bottom[0].count == scale.count
        # Caffe writes dscale straight into the param diff (no accumulation) when the scale
        # covers the whole bottom or outer_dim is 1 with a reduction over inner_dim; and
        # leaves dy * x in bottom[0]'s diff when it is not propagated. Both kept on purpose.
        overwrite = eltwise or (outer == 1 and inner > 1 and dim > 1)
        target = scale.diff_tensor.view(-1)
        if learned and not overwrite:
            target.add_(grad)
        else:
            target.copy_(grad)
        if not (eltwise or in_place or propagate_down[0]):
            bottom[0].diff_tensor.copy_(product)
