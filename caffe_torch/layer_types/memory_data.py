"""MemoryData (memory_data_layer.cpp): batches from arrays held in memory, which pycaffe
hands over with Net.set_input_arrays(data, labels) (MemoryDataLayer::Reset)."""
import logging

import numpy as np
import torch

from caffe_torch.errors import InputArrayError
from caffe_torch.layer import Layer
from caffe_torch.layer_factory import register
from caffe_torch.layer_types.db_data import where

log = logging.getLogger(__name__)


@register('MemoryData')
class MemoryDataLayer(Layer):
    """Batches of batch_size rows, in order and wrapping round, from the arrays given to
    `reset` (pycaffe: net.set_input_arrays).

    params: memory_data_param.batch_size, channels, height, width (all positive).
    bottoms: none. tops: data (batch_size x channels x height x width) and labels:
      (batch_size,) after set-up and batch_size x 1 x 1 x 1 after a forward, as in Caffe.
    As Caffe's, the layer keeps the arrays themselves, not copies: changing them after
    set_input_arrays changes later batches. transform_param is not applied to them.
    """
    exact_bottoms = 0
    exact_tops = 2

    def setup(self, bottom, top):
        param = self.layer_param.memory_data_param
        dims = {'batch_size': param.batch_size, 'channels': param.channels,
                'height': param.height, 'width': param.width}
        unset = [name for name, value in dims.items() if value <= 0]
        if unset:
            self.fail(f'batch_size, channels, height, and width must be specified and '
                      f'positive in memory_data_param; {", ".join(unset)} '
                      f'{"is" if len(unset) == 1 else "are"} 0')
        self.batch_size = int(param.batch_size)
        self.channels, self.height, self.width = (int(param.channels), int(param.height),
                                                  int(param.width))
        top[0].reshape(self.batch_size, self.channels, self.height, self.width)
        top[1].reshape(self.batch_size)
        self.arrays = None
        self.n = self.pos = 0

    def reset(self, data, labels, n):
        """MemoryDataLayer::Reset: read batches from `data` (n x C x H x W float32) and
        `labels` (n values) from the first row on; n must be a multiple of batch_size."""
        if n % self.batch_size:
            raise InputArrayError(f'{where(self)}: n must be a multiple of batch size: '
                                  f'{n} rows for batch_size {self.batch_size}')
        if self.layer_param.HasField('transform_param'):
            log.warning('%s does not transform array data on Reset()', where(self))
        self.arrays = (data, labels)
        self.n, self.pos = int(n), 0

    def reshape(self, bottom, top):
        """Tops are shaped by forward."""

    def forward(self, bottom, top):
        if self.arrays is None:
            raise InputArrayError(
                f'{where(self)}: MemoryDataLayer needs to be initialized by calling Reset; '
                f'call net.set_input_arrays(data, labels) before forward')
        data, labels = self.arrays
        rows = slice(self.pos, self.pos + self.batch_size)
        top[0].reshape(self.batch_size, self.channels, self.height, self.width)
        top[1].reshape(self.batch_size, 1, 1, 1)
        top[0].data_tensor.copy_(torch.from_numpy(
            np.ascontiguousarray(data.reshape(self.n, -1)[rows], dtype=np.float32)
            .reshape(top[0].shape)))
        top[1].data_tensor.copy_(torch.from_numpy(
            np.ascontiguousarray(labels.reshape(self.n)[rows], dtype=np.float32)
            .reshape(top[1].shape)))
        self.pos = (self.pos + self.batch_size) % self.n


def set_input_arrays(net, data, labels):
    """pycaffe's Net.set_input_arrays: python/caffe/pycaffe.py makes a 1-d `labels` 4-d,
    then _caffe.cpp's checks, with its messages, and Reset on the net's first layer."""
    if getattr(labels, 'ndim', None) == 1:
        labels = np.ascontiguousarray(labels[:, np.newaxis, np.newaxis, np.newaxis])
    layer = net.layers[0] if net.layers else None
    if not isinstance(layer, MemoryDataLayer):
        others = [name for name, lyr in zip(net._layer_names, net.layers)
                  if isinstance(lyr, MemoryDataLayer)]
        found = (f'; MemoryData layer "{others[0]}" is layer {net._layer_names.index(others[0])}'
                 f', move it to the front of the net' if others else
                 '; this net has none (its data come from elsewhere: set net.blobs[...]'
                 '.data for Input layers)')
        raise InputArrayError(f'set_input_arrays may only be called if the first layer is a '
                              f'MemoryDataLayer{found}')
    _check_array(data, 'data array', layer.channels, layer.height, layer.width)
    _check_array(labels, 'labels array', 1, 1, 1)
    if data.shape[0] != labels.shape[0]:
        raise InputArrayError(f'data and labels must have the same first dimension: '
                              f'{data.shape[0]} vs {labels.shape[0]}')
    if data.shape[0] % layer.batch_size:
        raise InputArrayError(f'first dimensions of input arrays must be a multiple of '
                              f'batch size: {data.shape[0]} rows, batch_size '
                              f'{layer.batch_size} (layer "{layer.name}")')
    layer.reset(data, labels, data.shape[0])


def _check_array(array, name, channels, height, width):
    """_caffe.cpp's CheckContiguousArray, its messages plus what was got."""
    if not isinstance(array, np.ndarray):
        raise InputArrayError(f'{name} must be a NumPy array, got {type(array).__name__}')
    if not array.flags['C_CONTIGUOUS']:
        raise InputArrayError(f'{name} must be C contiguous; pass np.ascontiguousarray(...)')
    if array.ndim != 4:
        raise InputArrayError(f'{name} must be 4-d, got shape {array.shape}')
    if array.dtype != np.float32:
        raise InputArrayError(f'{name} must be float32, got {array.dtype}; convert with '
                              f'.astype(np.float32)')
    for axis, (what, want) in enumerate([('number of channels', channels),
                                         ('height', height), ('width', width)], start=1):
        if array.shape[axis] != want:
            wrong = 'wrong number of channels' if axis == 1 else f'wrong {what}'
            raise InputArrayError(f'{name} has {wrong}: {array.shape[axis]}, the layer '
                                  f'expects {want} (shape {array.shape})')
