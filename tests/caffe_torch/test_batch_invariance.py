"""Batch invariance: a sample's top and bottom diff do not depend on the rest of its batch.

BVLC Caffe gives one image the same fc7 bit for bit whether it comes alone or among 50
(issue 26): its layers compute each sample on its own. Every registered layer type is either
run here, a batch of N against each sample alone with the same parameters, and compared bit
for bit in float32 (forward tops, then the bottom diffs from the same per-sample top diffs),
or listed in EXCLUDED with the reason it is no per-sample map in Caffe either. Parameter
diffs sum over the batch and are not compared.
"""
import dataclasses

import numpy as np
import pytest

from caffe_torch.layer_factory import layer_type_list
from caffe_torch.proto import caffe_pb2
from layer_check import make_layer

BATCH = 50
SAMPLES = (0, 7, BATCH - 1)  # which samples are rerun alone


@dataclasses.dataclass
class Case:
    """One layer set-up. A bottom is (shape, kind[, batch axis]): the shape leaves out the
    batch axis (default `axis`, the tops' too); kind is 'data' (Gaussian), 'positive',
    'index:K' (integers below K) or 'ones', and only 'data' and 'positive' get a diff."""
    text: str
    bottoms: tuple
    axis: int = 0
    ntop: int = 1
    phase: int = caffe_pb2.TRAIN
    backward: bool = True
    positive_params: bool = False


def _c(text, *bottoms, **kw):
    return Case(text, tuple(b if len(b) > 1 and isinstance(b[1], str) else (b, 'data')
                             for b in bottoms),
                **kw)


IMAGE = (6, 9, 11)
RECURRENT = ((4, 12), ((4,), 'ones'))  # (T, N, 12) input and (T, N) continuation
CASES = {
    'AbsVal': [_c('type: "AbsVal"', IMAGE)],
    'ArgMax': [_c('type: "ArgMax" argmax_param { top_k: 3 out_max_val: true }', (40,),
                  backward=False),
               _c('type: "ArgMax" argmax_param { axis: 1 }', IMAGE, backward=False)],
    'BatchNorm': [_c('type: "BatchNorm"', IMAGE, phase=caffe_pb2.TEST,
                     positive_params=True)],
    'Bias': [_c('type: "Bias"', IMAGE),
             _c('type: "Bias" bias_param { axis: 0 num_axes: 2 }', IMAGE, (6,))],
    'BNLL': [_c('type: "BNLL"', IMAGE)],
    'Clip': [_c('type: "Clip" clip_param { min: -0.5 max: 0.7 }', IMAGE)],
    'Concat': [_c('type: "Concat"', IMAGE, (2, 9, 11))],
    'Convolution': [_c('type: "Convolution" convolution_param { num_output: 16 '
                       'kernel_size: 3 pad: 1 weight_filler { type: "gaussian" } }', IMAGE),
                    _c('type: "Convolution" convolution_param { num_output: 4 '
                       'kernel_size: 9 }', (512, 9, 9))],  # an fc6-like convolution
    'Crop': [_c('type: "Crop" crop_param { axis: 2 offset: 1 offset: 2 }', IMAGE,
                ((6, 5, 7), 'ones'))],
    'Deconvolution': [_c('type: "Deconvolution" convolution_param { num_output: 6 group: 6 '
                         'kernel_size: 4 stride: 2 bias_term: false }', IMAGE),
                      _c('type: "Deconvolution" convolution_param { num_output: 5 '
                         'kernel_size: 3 stride: 2 pad: 1 }', IMAGE)],
    'Dropout': [_c('type: "Dropout"', IMAGE, phase=caffe_pb2.TEST)],
    'Eltwise': [_c(f'type: "Eltwise" eltwise_param {{ operation: {op} }}', IMAGE, IMAGE)
                for op in ('SUM coeff: 0.5 coeff: -2', 'PROD', 'MAX')],
    'ELU': [_c('type: "ELU" elu_param { alpha: 0.5 }', IMAGE)],
    'Embed': [_c('type: "Embed" embed_param { num_output: 24 input_dim: 30 }',
                 ((5,), 'index:30'))],
    'Exp': [_c('type: "Exp" exp_param { base: 2 scale: 0.5 shift: 0.1 }', IMAGE)],
    'Filter': [_c('type: "Filter"', IMAGE, ((), 'ones'))],
    'Flatten': [_c('type: "Flatten"', IMAGE)],
    'Im2col': [_c('type: "Im2col" convolution_param { kernel_size: 3 pad: 1 stride: 2 }',
                  IMAGE)],
    'InnerProduct': [
        _c('type: "InnerProduct" inner_product_param { num_output: 100 }', (16, 6, 6)),
        _c('type: "InnerProduct" inner_product_param { num_output: 37 transpose: true }',
           (300,)),
        _c('type: "InnerProduct" inner_product_param { num_output: 20 axis: 2 '
           'bias_term: false }', (3, 70)),
        _c('type: "InnerProduct" inner_product_param { num_output: 64 }', (2048,))],
    'Log': [_c('type: "Log" log_param { base: 10 scale: 2 }', (IMAGE, 'positive'))],
    'LRN': [_c('type: "LRN" lrn_param { local_size: 3 }', IMAGE),
            _c('type: "LRN" lrn_param { norm_region: WITHIN_CHANNEL local_size: 3 }',
               IMAGE)],
    'LSTM': [_c('type: "LSTM" recurrent_param { num_output: 16 }', *RECURRENT, axis=1)],
    'LSTMUnit': [_c('type: "LSTMUnit"', (1, 8), (1, 32), ((1,), 'ones'), axis=1,
                    ntop=2)],
    'MVN': [_c(f'type: "MVN" mvn_param {{ {p} }}', IMAGE) for p in (
        '', 'across_channels: true', 'normalize_variance: false')],
    'Pooling': [_c(f'type: "Pooling" pooling_param {{ {p} }}', IMAGE) for p in (
        'pool: MAX kernel_size: 3 stride: 2', 'pool: AVE kernel_size: 3 stride: 2 pad: 1',
        'pool: AVE global_pooling: true')],
    'Power': [_c('type: "Power" power_param { power: 2 scale: 0.5 shift: 1 }', IMAGE),
              _c('type: "Power" power_param { power: -0.75 scale: 0.5 shift: 1 }',
                 (IMAGE, 'positive'))],
    'PReLU': [_c('type: "PReLU"', IMAGE)],
    'Reduction': [_c(f'type: "Reduction" reduction_param {{ operation: {op} axis: 1 }}',
                     IMAGE) for op in ('SUM', 'ASUM', 'SUMSQ', 'MEAN')],
    'ReLU': [_c('type: "ReLU" relu_param { negative_slope: 0.1 }', IMAGE)],
    'Reshape': [_c('type: "Reshape" reshape_param { shape { dim: 0 dim: -1 dim: 3 } }',
                   IMAGE)],
    'RNN': [_c('type: "RNN" recurrent_param { num_output: 16 }', *RECURRENT, axis=1),
            _c('type: "RNN" recurrent_param { num_output: 16 }', *RECURRENT,
               ((7,), 'data', 0), axis=1)],
    'Scale': [_c('type: "Scale" scale_param { bias_term: true }', IMAGE),
              _c('type: "Scale" scale_param { axis: 0 }', IMAGE, (6,))],
    'Sigmoid': [_c('type: "Sigmoid"', IMAGE)],
    'Slice': [_c('type: "Slice" slice_param { slice_point: 2 }', IMAGE, ntop=2)],
    'Softmax': [_c('type: "Softmax"', IMAGE)],
    'Split': [_c('type: "Split"', IMAGE, ntop=2)],
    'SPP': [_c('type: "SPP" spp_param { pyramid_height: 3 }', IMAGE)],
    'Swish': [_c('type: "Swish" swish_param { beta: 1.5 }', IMAGE)],
    'TanH': [_c('type: "TanH"', IMAGE)],
    'Threshold': [_c('type: "Threshold" threshold_param { threshold: 0.2 }', IMAGE,
                     backward=False)],
    'Tile': [_c('type: "Tile" tile_param { axis: 1 tiles: 3 }', IMAGE)],
}

_SOURCE = 'a source: no bottom, nothing to hold per sample'
_LOSS = 'a loss: one scalar over the whole batch (normalised by batch or valid count)'
EXCLUDED = {
    'Data': _SOURCE, 'DummyData': _SOURCE, 'HDF5Data': _SOURCE, 'ImageData': _SOURCE,
    'Input': _SOURCE, 'MemoryData': _SOURCE, 'WindowData': _SOURCE, 'Parameter': _SOURCE,
    'Accuracy': 'one scalar over the whole batch, as the losses',
    'ContrastiveLoss': _LOSS, 'EuclideanLoss': _LOSS, 'HingeLoss': _LOSS,
    'InfogainLoss': _LOSS, 'MultinomialLogisticLoss': _LOSS,
    'SigmoidCrossEntropyLoss': _LOSS, 'SoftmaxWithLoss': _LOSS,
    'BatchReindex': 'its top rows are bottom rows picked by an index blob: it maps the '
                    'batch as a whole',
    'HDF5Output': 'a sink: no top, writes the batch to a file',
    'Silence': 'no top; its bottom diff is zero',
    'Python': 'user code',
}
# Set-ups of tested types that are batch-wide in Caffe as well, so not run above:
# BatchNorm in TRAIN (batch mean and variance), Dropout in TRAIN (one random mask drawn
# for the whole batch), Reduction, Concat, Slice, Tile or Softmax on axis 0 (they mix or
# reorder samples by definition), Filter with zero selectors (drops samples).


def _array(rng, shape, kind):
    if kind == 'positive':
        return rng.uniform(0.1, 2.0, shape).astype(np.float32)
    if kind == 'ones':
        return np.ones(shape, np.float32)
    if kind.startswith('index:'):
        return rng.randint(0, int(kind.split(':')[1]), shape).astype(np.float32)
    return rng.randn(*shape).astype(np.float32)


def _with_batch(shape, axis, n):
    return shape[:axis] + (n,) + shape[axis:]


def _run(case, bottoms, params, top_diffs=None):
    """Forward (then backward from `top_diffs`): the layer, tops, bottom diffs."""
    layer, bottom, top = make_layer(case.text, bottoms, params, case.ntop, case.phase)
    layer.run_forward(bottom, top)
    tops = [t.data.copy() for t in top]
    if top_diffs is None or not case.backward:
        return layer, tops, []
    for blob, diff in zip(top, top_diffs):
        blob.diff[...] = diff
    down = [spec[1] in ('data', 'positive') for spec in case.bottoms]
    layer.run_backward(top, down, bottom)
    return layer, tops, [b.diff.copy() for b, d in zip(bottom, down) if d]


def _take(array, axis, i):
    return np.take(array, [i], axis=axis)


def _assert_bitwise(ours, alone, what):
    assert ours.shape == alone.shape, f'{what}: shape {ours.shape} vs alone {alone.shape}'
    if ours.tobytes() != alone.tobytes():
        worst = np.abs(ours.astype(np.float64) - alone).max()
        pytest.fail(f'{what} differs from the sample run alone (max |diff| {worst:.3g})')


def _params(case, shapes, rng):
    if case.positive_params:
        return [rng.uniform(0.5, 1.5, s).astype(np.float32) for s in shapes]
    return [(0.3 * rng.randn(*s)).astype(np.float32) for s in shapes]


@pytest.mark.parametrize('type_name,index', [(t, i) for t, cases in CASES.items()
                                             for i in range(len(cases))])
def test_sample_alone_equals_sample_in_batch(type_name, index):
    """Each sample's tops and bottom diffs are bit for bit those it gets run alone."""
    case, rng = CASES[type_name][index], np.random.RandomState(1701 + index)
    axes = [spec[2] if len(spec) > 2 else case.axis for spec in case.bottoms]
    bottoms = [_array(rng, _with_batch(spec[0], axis, BATCH), spec[1])
               for spec, axis in zip(case.bottoms, axes)]
    layer, _, _ = _run(case, bottoms, None)
    params = _params(case, [b.shape for b in layer.blobs], rng)
    _, tops, _ = _run(case, bottoms, params)
    top_diffs = [rng.randn(*t.shape).astype(np.float32) for t in tops]
    _, tops, diffs = _run(case, bottoms, params, top_diffs)
    for i in SAMPLES:
        one = [_take(b, axis, i) for b, axis in zip(bottoms, axes)]
        _, tops1, diffs1 = _run(case, one, params, [_take(d, case.axis, i) for d in top_diffs])
        for j, (t, t1) in enumerate(zip(tops, tops1)):
            _assert_bitwise(_take(t, case.axis, i), t1, f'{type_name} sample {i} top {j}')
        diff_axes = [a for a, spec in zip(axes, case.bottoms) if spec[1] in ('data', 'positive')]
        for j, (d, d1, axis) in enumerate(zip(diffs, diffs1, diff_axes)):
            _assert_bitwise(_take(d, axis, i), d1,
                            f'{type_name} sample {i} bottom diff {j}')


def test_every_layer_type_is_checked_or_excluded():
    """Each registered type is run above or excluded with its reason, never both."""
    registered = set(layer_type_list())
    assert not set(CASES) & set(EXCLUDED)
    assert registered == set(CASES) | set(EXCLUDED), (
        f'unclassified: {sorted(registered - set(CASES) - set(EXCLUDED))}; '
        f'unknown: {sorted(set(CASES) | set(EXCLUDED) - registered)}')
