"""Layers that pick, repeat or hold rows: Embed, Filter, BatchReindex, Tile, Parameter
(embed_layer.cpp, filter_layer.cpp, batch_reindex_layer.cpp, tile_layer.cpp,
parameter_layer.hpp).

Index bottoms (Embed's input, Filter's selector, BatchReindex's indices) have no gradient.
Caffe's AllowForceBackward does not exempt them, so force_backward asks for their diff and
Caffe aborts in Backward; these layers fail the same way, naming the fix (drop
force_backward, or propagate_down: false for the index bottom). Nets that train through
such layers take the bottoms that need a diff from layers with parameters (e.g.
Parameter) instead of force_backward.
"""
import torch

from caffe_torch.layer import Layer
from caffe_torch.layer_factory import register


def _first_bad(values, bad):
    """(position, value) of the first True in `bad`, from the flat `values`."""
    position = int(bad.reshape(-1).nonzero()[0, 0])
    return position, float(values.reshape(-1)[position])


@register('Embed')
class EmbedLayer(Layer):
    """A lookup table: each input value picks a row of the weight (a one-hot InnerProduct).

    bottom: indices of any shape, whole numbers in [0, input_dim) (Caffe DCHECKs this
      and reads out of bounds in release builds; here a bad value is an error).
    top: bottom shape + (num_output,): top[..., :] = W[index] (+ b).
    params: W (input_dim, num_output) (InnerProduct's weight transposed), b
      (num_output,) when bias_term (default true); weight_filler, bias_filler.
    backward: dW[index] += top diff for every input position (repeats accumulate), db +=
      the top diff summed over positions. No diff for the indices (see the module note).
    """
    exact_bottoms = exact_tops = 1

    def setup(self, bottom, top):
        p = self.layer_param.embed_param
        if p.num_output <= 0:
            self.fail(f'embed_param.num_output must be positive, got {p.num_output}')
        if p.input_dim <= 0:
            self.fail(f'embed_param.input_dim must be positive (the number of distinct '
                      f'indices), got {p.input_dim}')
        self.num_output, self.input_dim = p.num_output, p.input_dim
        self.bias_term = p.bias_term
        if self.blobs:
            return
        self.param_blob((self.input_dim, self.num_output), p.weight_filler)
        if self.bias_term:
            self.param_blob((self.num_output,), p.bias_filler)

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].shape, self.num_output)

    def _indices(self, bottom):
        values = bottom[0].data_tensor.reshape(-1)
        bad = (values != torch.trunc(values)) | (values < 0) | (values >= self.input_dim)
        if bool(bad.any()):
            position, value = _first_bad(values, bad)
            self.fail(f'input value {value:g} at position {position} is not a valid index: '
                      f'Embed inputs must be whole numbers in [0, input_dim = '
                      f'{self.input_dim}); raise embed_param.input_dim or fix the data')
        return values.long()

    def forward(self, bottom, top):
        rows = self.blobs[0].data_tensor.index_select(0, self._indices(bottom))
        if self.bias_term:
            rows += self.blobs[1].data_tensor
        top[0].data_tensor.copy_(rows.reshape(top[0].shape))

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            self.fail("can't backpropagate to EmbedLayer input (its indices have no "
                      "gradient); drop force_backward from the net or set propagate_down: "
                      "false for bottom 0")
        top_diff = top[0].diff_tensor.reshape(-1, self.num_output)
        if self.param_needs_diff(0):
            self.blobs[0].diff_tensor.index_add_(0, self._indices(bottom), top_diff)
        if self.bias_term and self.param_needs_diff(1):
            self.blobs[1].diff_tensor.add_(top_diff.sum(dim=0))


@register('Filter')
class FilterLayer(Layer):
    """Keep the items (first-axis entries) whose selector is nonzero.

    bottoms: k blobs to filter, then the selector (last bottom) of shape (N,) or (N, 1,
      ...): every dimension after the first must be 1, and every bottom has first
      dimension N. tops: k, top t = bottom t's items with nonzero selector, in order;
      shape (number kept, bottom t's other dimensions). The shape is set at each
      forward from the selector's values; at set-up, before any value is known, the
      tops get N items, as in Caffe.
    backward: bottom t's diff = top t's diff at the kept items, 0 elsewhere. The selector
      gets no diff (see the module note).
    """
    min_bottoms, min_tops = 2, 1

    def setup(self, bottom, top):
        if len(top) != len(bottom) - 1:
            self.fail(f'needs one top per filtered bottom (all bottoms but the last, the '
                      f'selector): {len(bottom)} bottoms need {len(bottom) - 1} tops, got '
                      f'{len(top)}')
        self.first_reshape = True

    def reshape(self, bottom, top):
        selector = bottom[-1]
        if selector.num_axes == 0 or any(d != 1 for d in selector.shape[1:]):
            self.fail(f'Selector blob dimensions must be singletons (1), except the first: '
                      f'the selector (last bottom) has shape {selector.shape}; use shape '
                      f'(N,) or (N, 1)')
        for i, blob in enumerate(bottom[:-1]):
            if blob.num_axes == 0 or blob.shape[0] != selector.shape[0]:
                self.fail(f'each bottom should have the same 0th dimension as the '
                          f'selector blob: bottom {i} has shape {blob.shape}, the selector '
                          f'{selector.shape}')
        keep = selector.data_tensor.reshape(-1) != 0
        self.indices = keep.nonzero().reshape(-1)
        kept = int(self.indices.numel())
        if self.first_reshape:
            kept, self.first_reshape = bottom[0].shape[0], False
        for blob, out in zip(bottom, top):
            out.reshape(kept, *blob.shape[1:])

    def forward(self, bottom, top):
        for blob, out in zip(bottom, top):
            out.data_tensor.copy_(blob.data_tensor.index_select(0, self.indices))

    def backward(self, top, propagate_down, bottom):
        if propagate_down[len(bottom) - 1]:
            self.fail('Filter cannot backpropagate to filter index inputs (the selector, '
                      'its last bottom); drop force_backward from the net or set '
                      'propagate_down: false for the selector')
        for i, out in enumerate(top):
            if propagate_down[i]:
                grad = torch.zeros_like(bottom[i].data_tensor)
                grad.index_copy_(0, self.indices, out.diff_tensor)
                bottom[i].diff_tensor.copy_(grad)


@register('BatchReindex')
class BatchReindexLayer(Layer):
    """Gather items along the first axis by an index vector (repeats allowed).

    bottoms: data (N, ...), indices (K,) (1-D) with values in [0, N), read by truncation.
    top: (K, ...): top[k] = data[int(indices[k])].
    backward: data diff = sum of the top diffs of the entries that picked each item
      (repeats accumulate, unpicked items get 0). The indices get no diff (see the
      module note).
    """
    exact_bottoms, exact_tops = 2, 1

    def reshape(self, bottom, top):
        data, index = bottom
        if index.num_axes != 1:
            self.fail(f'the index bottom (bottom 1) must be 1-D, got shape {index.shape}')
        if data.num_axes == 0:
            self.fail('the data bottom (bottom 0) needs a first axis to index, got a '
                      'scalar')
        top[0].reshape(index.shape[0], *data.shape[1:])

    def _indices(self, bottom):
        count = bottom[0].shape[0]
        values = bottom[1].data_tensor
        bad = ~((values >= 0) & (values < count))
        if bool(bad.any()):
            position, value = _first_bad(values, bad)
            what = 'negative' if value < 0 else f'not below the batch size {count}'
            self.fail(f'index {value:g} at position {position} is {what}: BatchReindex '
                      f'indices must lie in [0, {count})')
        return values.long()

    def forward(self, bottom, top):
        index = self._indices(bottom)
        if top[0].count == 0:
            return
        top[0].data_tensor.copy_(bottom[0].data_tensor.index_select(0, index))

    def backward(self, top, propagate_down, bottom):
        if propagate_down[1]:
            self.fail('Cannot backprop to index (bottom 1 of BatchReindex); drop '
                      'force_backward from the net or set propagate_down: false for it')
        if not propagate_down[0]:
            return
        grad = torch.zeros_like(bottom[0].data_tensor)
        grad.index_add_(0, bottom[1].data_tensor.long(), top[0].diff_tensor)
        bottom[0].diff_tensor.copy_(grad)


@register('Tile')
class TileLayer(Layer):
    """Repeat the blob `tiles` times along `axis` (whole blocks: [a, b] -> [a, b, a, b]).

    bottom: x; top: shape of x with shape[axis] * tiles. tile_param: axis (default 1),
    tiles (required, positive). backward: the sum of the tiles' diffs.
    """
    exact_bottoms = exact_tops = 1

    def reshape(self, bottom, top):
        p = self.layer_param.tile_param
        axis = self.canonical_axis(bottom[0], p.axis, 'tile_param.axis')
        if not p.HasField('tiles'):
            self.fail('Number of tiles must be specified: set tile_param.tiles')
        if p.tiles <= 0:
            self.fail(f'Number of tiles must be positive: tile_param.tiles = {p.tiles}')
        self.tiles = p.tiles
        shape = list(bottom[0].shape)
        shape[axis] *= self.tiles
        top[0].reshape(*shape)
        self.outer = bottom[0].count_range(0, axis)
        self.inner = bottom[0].count_range(axis)

    def forward(self, bottom, top):
        x = bottom[0].data_tensor.reshape(self.outer, 1, self.inner)
        top[0].data_tensor.view(self.outer, self.tiles, self.inner).copy_(
            x.expand(self.outer, self.tiles, self.inner))

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            diff = top[0].diff_tensor.view(self.outer, self.tiles, self.inner).sum(dim=1)
            bottom[0].diff_tensor.copy_(diff.reshape(bottom[0].shape))


@register('Parameter')
class ParameterLayer(Layer):
    """A learnable blob as a top: one parameter of parameter_param.shape (zeros, no
    filler), which the top shares in data and diff from each forward on (ShareData /
    ShareDiff), so what backward writes into the top's diff is the parameter's diff.
    No bottoms; backward does nothing.
    """
    exact_bottoms, exact_tops = 0, 1

    def setup(self, bottom, top):
        shape = tuple(self.layer_param.parameter_param.shape.dim)
        if not self.blobs:
            self.param_blob(shape)
        top[0].reshape(*shape)

    def reshape(self, bottom, top):
        """Nothing: the top keeps the parameter's shape (Caffe's Reshape is empty)."""

    def forward(self, bottom, top):
        try:
            top[0].share_data(self.blobs[0])
            top[0].share_diff(self.blobs[0])
        except ValueError as e:
            self.fail(f'the parameter blob of shape {self.blobs[0].shape} does not fit '
                      f'parameter_param.shape {top[0].shape}: {e}')
