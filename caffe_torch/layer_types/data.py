"""Layers that make net inputs: Input and DummyData (input_layer.cpp, dummy_data_layer.cpp).

Both shape their tops once, at set-up, and leave them alone in reshape, so a user may
reshape a net input (`net.blobs['data'].reshape(...)`) and the net follows on its next
forward. Neither has bottoms or a backward.
"""
from caffe_torch import fillers
from caffe_torch.layer import Layer
from caffe_torch.layer_factory import register
from caffe_torch.proto import caffe_pb2


def _shape_top(layer, blob, dims, index):
    dims = [int(d) for d in dims]
    if any(d < 0 for d in dims):
        layer.fail(f'top {index} shape {dims} has a negative dimension')
    blob.reshape(*dims)


def _once_or_per_top(layer, count, num_top, what, allow_none=False):
    """Caffe's rule for repeated per-top fields: given once, or once per top."""
    allowed = {1, num_top} | ({0} if allow_none else set())
    if count not in allowed:
        once = 'once, once per top blob, or not at all' if allow_none else \
            'once, or once per top blob'
        layer.fail(f'must specify {what} {once} ({num_top} top(s)); specified {count}')


@register('Input')
class InputLayer(Layer):
    """Net inputs whose data the user sets (pycaffe: net.blobs[name].data[...] = ...).

    bottoms: none. tops: one or more blobs, shaped by input_param.shape: one shape for
      all tops, one per top, or none (the tops are then shaped by the user).
    forward and backward do nothing.
    """
    exact_bottoms = 0
    min_tops = 1

    def setup(self, bottom, top):
        shapes = self.layer_param.input_param.shape
        _once_or_per_top(self, len(shapes), len(top), "'shape'", allow_none=True)
        if not shapes:
            return
        for i, blob in enumerate(top):
            _shape_top(self, blob, shapes[0 if len(shapes) == 1 else i].dim, i)

    def reshape(self, bottom, top):
        """The tops keep their set-up shape or the one the user gave them."""

    def forward(self, bottom, top):
        """The data is whatever the user wrote into the tops."""


@register('DummyData')
class DummyDataLayer(Layer):
    """Tops filled by fillers, for tests and for nets whose data come from elsewhere.

    bottoms: none. tops: one or more blobs shaped by dummy_data_param.shape (once or per
      top) or the legacy num/channels/height/width (each once or per top).
    data_filler: none (constant 0), one for all tops, or one per top. As in Caffe, tops
      with a constant filler are filled once at set-up; the others are refilled by every
      forward (and are zero until the first one). An empty top (a 0 dimension) is an
      error where it is filled, as Caffe's fillers abort on it.
    """
    exact_bottoms = 0
    min_tops = 1

    def setup(self, bottom, top):
        param = self.layer_param.dummy_data_param
        self.fillers = self._fillers(param, len(top))
        for i, (blob, dims) in enumerate(zip(top, self._shapes(param, len(top)))):
            _shape_top(self, blob, dims, i)
        self.refill = [f.type != 'constant' for f in self.fillers]
        self._fill(top, lambda refill: not refill)

    def reshape(self, bottom, top):
        """The tops keep their set-up shape or the one the user gave them."""

    def forward(self, bottom, top):
        self._fill(top, lambda refill: refill)

    def _fill(self, top, wanted):
        for i, blob in enumerate(top):
            k = i if len(self.fillers) > 1 else 0
            if wanted(self.refill[k]):
                if blob.count == 0:  # Caffe's fill aborts on a blob without data
                    self.fail(f'top {i} of shape {blob.shape} is empty; a filler cannot '
                              f'fill it (give every dimension a positive size)')
                fillers.fill(blob, self.fillers[k])

    def _fillers(self, param, num_top):
        given = list(param.data_filler)
        if len(given) not in (0, 1, num_top):
            self.fail(f'number of data fillers must be 0, 1 or equal to the number of '
                      f'tops: {num_top}; you specified {len(given)} data fillers')
        if not given:
            given = [caffe_pb2.FillerParameter(type='constant', value=0)]
        for filler in given:
            if filler.type not in fillers.filler_types():
                self.fail(f'unknown data_filler type "{filler.type}"; known types: '
                          f'{", ".join(fillers.filler_types())}')
        return given

    def _shapes(self, param, num_top):
        legacy = [('num', param.num), ('channels', param.channels),
                  ('height', param.height), ('width', param.width)]
        if not any(values for _, values in legacy):
            _once_or_per_top(self, len(param.shape), num_top, "'shape'")
            return [param.shape[0 if len(param.shape) == 1 else i].dim
                    for i in range(num_top)]
        if param.shape:
            self.fail('both shape and legacy fields (num, channels, height, width) were '
                      'specified; use only shape')
        for name, values in legacy:
            _once_or_per_top(self, len(values), num_top, f"'{name}'")
        return [[values[0 if len(values) == 1 else i] for _, values in legacy]
                for i in range(num_top)]
