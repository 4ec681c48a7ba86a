"""Layer-parity helper: run one layer through Caffe's lifecycle and check it.

`run_layer` sets a layer up on given bottoms and parameters, runs forward, then (when top
diffs are given) backward, and returns float64 copies of everything. `check_gradient` is
Caffe's GradientChecker idea: the analytic gradient of E = sum(top * W) (W fixed random
weights) against central finite differences, element by element. `np_conv` is the float64
convolution the vision layers' fast forms are checked against.
"""
import itertools

import numpy as np
from google.protobuf import text_format

from caffe_torch.blob import Blob
from caffe_torch.layer_factory import create_layer
from caffe_torch.proto import caffe_pb2


def layer_param(text, phase=caffe_pb2.TRAIN):
    """A LayerParameter from prototxt text (name defaults to "test")."""
    param = text_format.Parse(text, caffe_pb2.LayerParameter())
    if not param.name:
        param.name = 'test'
    param.phase = phase
    return param


def make_layer(text, bottoms, params=None, ntop=1, phase=caffe_pb2.TRAIN):
    """Create and set up a layer; returns (layer, bottom blobs, top blobs)."""
    layer = create_layer(layer_param(text, phase))
    bottom = []
    for array in bottoms:
        blob = Blob(np.shape(array))
        blob.data[...] = array
        bottom.append(blob)
    top = [Blob() for _ in range(ntop)]
    layer.set_up(bottom, top)
    for blob, array in zip(layer.blobs, params or []):
        if tuple(blob.shape) != np.shape(array):
            raise AssertionError(f'param shape {blob.shape} != given {np.shape(array)}')
        blob.data[...] = array
    return layer, bottom, top


def run_layer(text, bottoms, params=None, top_diffs=None, ntop=1, phase=caffe_pb2.TRAIN,
              propagate_down=None):
    """Forward (and backward if `top_diffs`): dict of tops, bottom_diffs, param_diffs."""
    layer, bottom, top = make_layer(text, bottoms, params, ntop, phase)
    loss = layer.run_forward(bottom, top)
    result = {'loss': loss, 'tops': [b.data.astype(np.float64) for b in top]}
    if top_diffs is not None:
        for blob, diff in zip(top, top_diffs):
            if diff is not None:
                blob.diff[...] = diff
        for blob in layer.blobs:
            blob.diff[...] = 0
        down = propagate_down or [True] * len(bottom)
        layer.run_backward(top, down, bottom)
        result['bottom_diffs'] = [b.diff.astype(np.float64) for b in bottom]
        result['param_diffs'] = [b.diff.astype(np.float64) for b in layer.blobs]
    return result


def check_gradient(text, bottoms, params=None, ntop=1, check_bottoms=None, step=1e-2,
                   threshold=1e-3, seed=1701, phase=caffe_pb2.TRAIN, check_params=True):
    """Compare analytic and numeric gradients of sum(top * W) for bottoms and params.

    Tolerance is Caffe's: |analytic - numeric| <= threshold * max(|analytic|, |numeric|, 1).
    """
    rng = np.random.RandomState(seed)
    layer, bottom, top = make_layer(text, bottoms, params, ntop, phase)
    layer.run_forward(bottom, top)
    weights = [rng.uniform(-1, 1, b.shape).astype(np.float32) for b in top]

    def objective():
        layer.run_forward(bottom, top)
        return sum(float(np.sum(t.data.astype(np.float64) * w)) for t, w in zip(top, weights))

    targets = [('bottom', i, b) for i, b in enumerate(bottom)
               if check_bottoms is None or i in check_bottoms]
    if check_params:
        targets += [('param', i, b) for i, b in enumerate(layer.blobs)]
    for kind, index, blob in targets:
        analytic = _analytic(layer, bottom, top, weights, kind, index)
        flat = blob.data.reshape(-1)
        for j in range(flat.size):
            saved = flat[j]
            flat[j] = saved + step
            plus = objective()
            flat[j] = saved - step
            minus = objective()
            flat[j] = saved
            numeric = (plus - minus) / (2 * step)
            a = analytic.reshape(-1)[j]
            scale = max(abs(a), abs(numeric), 1.0)
            if abs(a - numeric) > threshold * scale:
                raise AssertionError(
                    f'{kind} {index} element {j}: analytic {a:.6g} vs numeric {numeric:.6g}')


def _analytic(layer, bottom, top, weights, kind, index):
    layer.run_forward(bottom, top)
    for blob, w in zip(top, weights):
        blob.diff[...] = w
    for blob in layer.blobs:
        blob.diff[...] = 0
    # As Caffe's GradientChecker: propagate only to the bottom under test.
    down = [kind == 'bottom' and i == index for i in range(len(bottom))]
    layer.run_backward(top, down, bottom)
    blob = bottom[index] if kind == 'bottom' else layer.blobs[index]
    return blob.diff.astype(np.float64).copy()


def np_conv(x, w, b, stride, pad, dilation, group):
    """N-d grouped convolution with zero padding, as Caffe's im2col + gemm computes it."""
    nsp = x.ndim - 2
    xp = np.pad(x.astype(np.float64), [(0, 0), (0, 0)] + [(p, p) for p in pad])
    kernel = w.shape[2:]
    out = [(xp.shape[2 + i] - (dilation[i] * (kernel[i] - 1) + 1)) // stride[i] + 1
           for i in range(nsp)]
    og, cg = w.shape[0] // group, w.shape[1]
    y = np.zeros((x.shape[0], w.shape[0]) + tuple(out))
    for off in itertools.product(*[range(k) for k in kernel]):
        window = tuple(slice(o * d, o * d + s * (m - 1) + 1, s)
                       for o, d, s, m in zip(off, dilation, stride, out))
        patch = xp[(slice(None), slice(None)) + window]
        for g in range(group):
            tap = w[(slice(g * og, (g + 1) * og), slice(None)) + off].astype(np.float64)
            y[:, g * og:(g + 1) * og] += np.einsum('nc...,oc->no...',
                                                   patch[:, g * cg:(g + 1) * cg], tap)
    if b is not None:
        y += b.reshape((1, -1) + (1,) * nsp)
    return y
