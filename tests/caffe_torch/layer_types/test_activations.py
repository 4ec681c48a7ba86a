"""PReLU, ELU, Swish and Clip (caffe_torch/layer_types/activations.py) against float64 NumPy
transcriptions of Caffe's formulas, finite differences, in-place use and their CHECKs."""
import numpy as np
import pytest

from caffe_torch.blob import Blob
from caffe_torch.errors import LayerSetupError
from caffe_torch.layer_factory import create_layer
from layer_check import check_gradient, layer_param, make_layer, run_layer


def _away_from_zero(rng, shape, low=0.1, high=2.0):
    return (rng.uniform(low, high, shape) * rng.choice([-1.0, 1.0], shape)).astype(np.float32)


def _f32(a):
    return np.asarray(a, np.float32)


def _in_place(text, x, dy, params=None):
    """Set up, forward and backward with one blob as bottom and top; float64 copies."""
    layer = create_layer(layer_param(text))
    blob = Blob(x.shape)
    blob.data[...] = x
    layer.set_up([blob], [blob])
    for b, value in zip(layer.blobs, params or []):
        b.data[...] = value
    layer.run_forward([blob], [blob])
    y = blob.data.astype(np.float64)
    blob.diff[...] = dy
    for b in layer.blobs:
        b.diff[...] = 0
    layer.run_backward([blob], [True], [blob])
    return y, blob.diff.astype(np.float64), [b.diff.astype(np.float64) for b in layer.blobs]


# -- PReLU ---------------------------------------------------------------------------------
def _prelu_numpy(x, slope, dy):
    """Caffe's loops: c = (i / dim) % channels, shared slope broadcast to every c."""
    a = np.broadcast_to(np.reshape(slope, (1, -1) + (1,) * (x.ndim - 2)), x.shape)
    y = np.maximum(x, 0) + a * np.minimum(x, 0)
    dx = dy * np.where(x > 0, 1.0, a)
    per = dy * x * (x <= 0)
    if np.ndim(slope) == 0:
        dslope = per.sum()
    else:
        dslope = per.reshape(x.shape[0], x.shape[1], -1).sum(axis=(0, 2))
    return y, dx, dslope


@pytest.mark.parametrize('shape, shared', [((2, 3, 4, 5), False), ((4, 5), False),
                                           ((2, 3, 6), False), ((2, 3, 4, 5), True)])
def test_prelu_matches_numpy(shape, shared):
    rng = np.random.RandomState(0)
    x = _away_from_zero(rng, shape)
    dy = _f32(rng.uniform(-1, 1, shape))
    slope = _f32(rng.uniform(-0.5, 0.8, () if shared else (shape[1],)))
    text = 'type: "PReLU" prelu_param { channel_shared: %s }' % str(shared).lower()
    result = run_layer(text, [x], params=[slope], top_diffs=[dy])
    y, dx, dslope = _prelu_numpy(x.astype(np.float64), slope.astype(np.float64), dy)
    np.testing.assert_allclose(result['tops'][0], y, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(result['bottom_diffs'][0], dx, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(result['param_diffs'][0], dslope, rtol=1e-5, atol=1e-6)


def test_prelu_default_filler_and_shapes():
    layer, _, _ = make_layer('type: "PReLU"', [np.zeros((2, 3, 2, 2), np.float32)])
    assert layer.blobs[0].shape == (3,)
    np.testing.assert_array_equal(layer.blobs[0].data, np.float32(0.25))
    shared, _, _ = make_layer('type: "PReLU" prelu_param { channel_shared: true }',
                              [np.zeros((2, 3, 2, 2), np.float32)])
    assert shared.blobs[0].shape == () and shared.blobs[0].count == 1
    custom, _, _ = make_layer('type: "PReLU" prelu_param { filler { type: "constant" '
                              'value: -0.5 } }', [np.zeros((1, 4), np.float32)])
    np.testing.assert_array_equal(custom.blobs[0].data, np.float32(-0.5))


@pytest.mark.parametrize('shared', [False, True])
def test_prelu_gradient_finite_differences(shared):
    rng = np.random.RandomState(1)
    text = 'type: "PReLU" prelu_param { channel_shared: %s }' % str(shared).lower()
    slope = _f32(rng.uniform(0.1, 0.6, () if shared else (3,)))
    check_gradient(text, [_away_from_zero(rng, (2, 3, 2, 3))], params=[slope])


def test_prelu_in_place_uses_a_copy_of_the_bottom():
    """In place, top data, bottom diff and slope diff equal those of separate blobs."""
    rng = np.random.RandomState(2)
    x = _away_from_zero(rng, (2, 3, 3, 4))
    dy = _f32(rng.uniform(-1, 1, x.shape))
    slope = _f32([0.3, -0.2, 0.7])
    apart = run_layer('type: "PReLU"', [x], params=[slope], top_diffs=[dy])
    y, dx, (dslope,) = _in_place('type: "PReLU"', x, dy, [slope])
    np.testing.assert_array_equal(y, apart['tops'][0])
    np.testing.assert_array_equal(dx, apart['bottom_diffs'][0])
    np.testing.assert_allclose(dslope, apart['param_diffs'][0], rtol=1e-6)


def test_prelu_slope_diff_accumulates_and_respects_param_propagate_down():
    rng = np.random.RandomState(3)
    x = _away_from_zero(rng, (2, 3, 2, 2))
    layer, bottom, top = make_layer('type: "PReLU"', [x])
    layer.run_forward(bottom, top)
    top[0].diff[...] = 1
    layer.blobs[0].diff[...] = 0
    layer.run_backward(top, [False], bottom)
    once = layer.blobs[0].diff.copy()
    layer.run_backward(top, [False], bottom)
    np.testing.assert_allclose(layer.blobs[0].diff, 2 * once, rtol=1e-6)
    layer.param_propagate_down = [False]
    layer.run_backward(top, [True], bottom)
    np.testing.assert_allclose(layer.blobs[0].diff, 2 * once, rtol=1e-6)


@pytest.mark.parametrize('shape', [(5,), (1, 2, 1, 1, 2)])
def test_prelu_refuses_bad_bottoms(shape):
    with pytest.raises(LayerSetupError, match='axes'):
        make_layer('type: "PReLU"', [np.zeros(shape, np.float32)])


def test_prelu_refuses_slopes_of_the_wrong_size():
    layer = create_layer(layer_param('type: "PReLU"'))
    layer.blobs.add_blob(4)
    bottom = Blob((2, 3, 2))
    with pytest.raises(LayerSetupError, match='inconsistent'):
        layer.set_up([bottom], [Blob()])
    layer, bottom, top = make_layer('type: "PReLU"', [np.zeros((2, 3, 2), np.float32)])
    bottom[0].reshape(2, 5, 2)
    with pytest.raises(LayerSetupError, match='5 channels'):
        layer.run_forward(bottom, top)


# -- ELU, Swish, Clip ----------------------------------------------------------------------
def _elu(alpha):
    def forward(x):
        return np.maximum(x, 0) + alpha * (np.exp(np.minimum(x, 0)) - 1)
    return forward, lambda x, y, dy: dy * np.where(x > 0, 1.0, alpha + y)


def _swish(beta):
    def forward(x):
        return x / (1 + np.exp(-beta * x))

    def backward(x, y, dy):
        s = 1 / (1 + np.exp(-beta * x))
        return dy * (beta * y + s * (1 - beta * y))
    return forward, backward


def _clip(low, high):
    return (lambda x: np.maximum(low, np.minimum(x, high)),
            lambda x, y, dy: dy * ((x >= low) & (x <= high)))


NEURONS = [
    ('elu', 'type: "ELU"', _elu(1.0)),
    ('elu_alpha', 'type: "ELU" elu_param { alpha: 0.4 }', _elu(0.4)),
    ('swish', 'type: "Swish"', _swish(1.0)),
    ('swish_beta', 'type: "Swish" swish_param { beta: 1.7 }', _swish(1.7)),
    ('clip', 'type: "Clip" clip_param { min: -0.5 max: 0.8 }', _clip(-0.5, 0.8)),
]
NEURON_IDS = [case[0] for case in NEURONS]


def _neuron_input(name, rng, shape):
    x = _away_from_zero(rng, shape, 0.05, 2.5)
    if name == 'clip':  # keep clear of the bounds, where the gradient jumps
        x[np.abs(x + 0.5) < 0.05] += 0.1
        x[np.abs(x - 0.8) < 0.05] += 0.1
    return x


@pytest.mark.parametrize('name, text, formulas', NEURONS, ids=NEURON_IDS)
def test_neuron_matches_numpy(name, text, formulas):
    rng = np.random.RandomState(4)
    x = _neuron_input(name, rng, (2, 3, 4, 5))
    dy = _f32(rng.uniform(-1, 1, x.shape))
    result = run_layer(text, [x], top_diffs=[dy])
    x64 = x.astype(np.float64)
    y = formulas[0](x64)
    np.testing.assert_allclose(result['tops'][0], y, rtol=2e-6, atol=1e-6)
    np.testing.assert_allclose(result['bottom_diffs'][0], formulas[1](x64, y, dy),
                               rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize('name, text, formulas', NEURONS, ids=NEURON_IDS)
def test_neuron_gradient_finite_differences(name, text, formulas):
    rng = np.random.RandomState(5)
    check_gradient(text, [_neuron_input(name, rng, (2, 3, 2, 3))])


@pytest.mark.parametrize('name, text, formulas', NEURONS[:4], ids=NEURON_IDS[:4])
def test_elu_and_swish_in_place_are_exact(name, text, formulas):
    rng = np.random.RandomState(6)
    x = _neuron_input(name, rng, (3, 4, 5))
    dy = _f32(rng.uniform(-1, 1, x.shape))
    apart = run_layer(text, [x], top_diffs=[dy])
    y, dx, _ = _in_place(text, x, dy)
    np.testing.assert_array_equal(y, apart['tops'][0])
    np.testing.assert_allclose(dx, apart['bottom_diffs'][0], rtol=1e-6, atol=1e-7)


def test_clip_in_place_passes_every_gradient_as_caffe():
    """In place Caffe reads the clipped output as x: it lies in [min, max], so dy passes."""
    x = _f32([[-2.0, -0.5, 0.1, 0.8, 3.0]])
    dy = _f32([[1.0, 2.0, 3.0, 4.0, 5.0]])
    text = 'type: "Clip" clip_param { min: -0.5 max: 0.8 }'
    apart = run_layer(text, [x], top_diffs=[dy])
    np.testing.assert_array_equal(apart['bottom_diffs'][0], [[0, 2, 3, 4, 0]])
    y, dx, _ = _in_place(text, x, dy)
    np.testing.assert_allclose(y, [[-0.5, -0.5, 0.1, 0.8, 0.8]], rtol=1e-7)
    np.testing.assert_array_equal(dx, dy)


def test_clip_bounds_pass_the_gradient_and_min_wins_when_above_max():
    """Caffe's mask is min <= x <= max (bounds included); max(min, min(x, max)) = min when
    min > max."""
    x = _f32([-1.0, 0.0, 1.0])
    result = run_layer('type: "Clip" clip_param { min: -1 max: 1 }', [x],
                       top_diffs=[_f32([1, 1, 1])])
    np.testing.assert_array_equal(result['bottom_diffs'][0], [1, 1, 1])
    swapped = run_layer('type: "Clip" clip_param { min: 2 max: -2 }', [x])
    np.testing.assert_array_equal(swapped['tops'][0], [2, 2, 2])


def test_elu_propagate_down_false_leaves_the_bottom_diff():
    layer, bottom, top = make_layer('type: "ELU"', [_f32([[-1.0, 1.0]])])
    layer.run_forward(bottom, top)
    bottom[0].diff[...] = 7
    top[0].diff[...] = 1
    layer.run_backward(top, [False], bottom)
    np.testing.assert_array_equal(bottom[0].diff, 7)
