"""Neuron layers (caffe_torch/layer_types/neuron.py) against float64 NumPy transcriptions of
Caffe's formulas, finite-difference gradients, in-place use and their error paths."""
import numpy as np
import pytest

from caffe_torch import mode
from caffe_torch.blob import Blob
from caffe_torch.errors import LayerSetupError
from caffe_torch.layer_factory import create_layer
from caffe_torch.proto import caffe_pb2
from layer_check import check_gradient, layer_param, make_layer, run_layer

SHAPE = (2, 3, 4, 5)


def _away_from_zero(rng, shape, low=0.1, high=2.0):
    """Values of either sign with |x| in [low, high]: clear of the kinks at 0."""
    return rng.uniform(low, high, shape) * rng.choice([-1.0, 1.0], shape)


def _f32(array):
    return np.asarray(array, dtype=np.float32)


# -- float64 transcriptions of Caffe's formulas: (forward(x), backward(x, y, dy)) -----------
def _power(power, scale, shift):
    def forward(x):
        return (shift + scale * x) ** power

    def backward(x, y, dy):
        return dy * power * scale * (shift + scale * x) ** (power - 1)
    return forward, backward


def _exp(base, scale, shift):
    ln_base = 1.0 if base == -1 else np.log(base)

    def forward(x):
        return np.exp(ln_base * (shift + scale * x))
    return forward, lambda x, y, dy: dy * y * ln_base * scale


def _log(base, scale, shift):
    ln_base = 1.0 if base == -1 else np.log(base)

    def forward(x):
        return np.log(shift + scale * x) / ln_base
    return forward, lambda x, y, dy: dy * scale / ((shift + scale * x) * ln_base)


def _relu(slope):
    return (lambda x: np.where(x > 0, x, slope * x),
            lambda x, y, dy: dy * np.where(x > 0, 1.0, slope))


SIGMOID = (lambda x: 1 / (1 + np.exp(-x)), lambda x, y, dy: dy * y * (1 - y))
TANH = (np.tanh, lambda x, y, dy: dy * (1 - y ** 2))
ABSVAL = (np.abs, lambda x, y, dy: dy * np.sign(x))
BNLL = (lambda x: np.logaddexp(0, x), lambda x, y, dy: dy / (1 + np.exp(-x)))

# (id, prototxt, (forward, backward), input maker)
CASES = [
    ('relu', 'type: "ReLU"', _relu(0.0), _away_from_zero),
    ('relu_leaky', 'type: "ReLU" relu_param { negative_slope: 0.1 }', _relu(0.1),
     _away_from_zero),
    ('sigmoid', 'type: "Sigmoid"', SIGMOID, lambda r, s: r.uniform(-4, 4, s)),
    ('tanh', 'type: "TanH"', TANH, lambda r, s: r.uniform(-3, 3, s)),
    ('absval', 'type: "AbsVal"', ABSVAL, _away_from_zero),
    ('bnll', 'type: "BNLL"', BNLL, lambda r, s: r.uniform(-5, 5, s)),
    ('power_general', 'type: "Power" power_param { power: 1.5 scale: 0.5 shift: 2 }',
     _power(1.5, 0.5, 2.0), lambda r, s: r.uniform(-2, 2, s)),
    ('power_square', 'type: "Power" power_param { power: 2 scale: 0.5 shift: 1.5 }',
     _power(2.0, 0.5, 1.5), lambda r, s: r.uniform(-2, 2, s)),
    ('power_no_shift', 'type: "Power" power_param { power: 3 scale: -0.7 }',
     _power(3.0, -0.7, 0.0), _away_from_zero),
    ('power_linear', 'type: "Power" power_param { scale: 3 shift: -1 }',
     _power(1.0, 3.0, -1.0), lambda r, s: r.uniform(-2, 2, s)),
    ('exp_e', 'type: "Exp"', _exp(-1, 1.0, 0.0), lambda r, s: r.uniform(-2, 1, s)),
    ('exp_base2', 'type: "Exp" exp_param { base: 2 scale: 0.5 shift: 0.1 }',
     _exp(2.0, 0.5, 0.1), lambda r, s: r.uniform(-2, 2, s)),
    ('log_e', 'type: "Log"', _log(-1, 1.0, 0.0), lambda r, s: r.uniform(0.5, 3, s)),
    ('log_base10', 'type: "Log" log_param { base: 10 scale: 2 shift: 1 }',
     _log(10.0, 2.0, 1.0), lambda r, s: r.uniform(0.2, 3, s)),
]
IDS = [case[0] for case in CASES]


@pytest.mark.parametrize('name, text, formulas, make_input', CASES, ids=IDS)
def test_forward_and_backward_match_numpy_transcription(name, text, formulas, make_input):
    """Top data and bottom diff equal the float64 transcription of Caffe's formulas."""
    rng = np.random.RandomState(11)
    x = _f32(make_input(rng, (3, 5, 7, 9)))
    dy = _f32(rng.uniform(-1, 1, x.shape))
    forward, backward = formulas
    result = run_layer(text, [x], top_diffs=[dy])
    x64 = x.astype(np.float64)
    y64 = forward(x64)
    np.testing.assert_allclose(result['tops'][0], y64, rtol=2e-6, atol=1e-6)
    np.testing.assert_allclose(result['bottom_diffs'][0], backward(x64, y64, dy),
                               rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize('name, text, formulas, make_input', CASES, ids=IDS)
def test_gradient_matches_finite_differences(name, text, formulas, make_input):
    """The analytic bottom diff agrees with central finite differences."""
    rng = np.random.RandomState(5)
    check_gradient(text, [_f32(make_input(rng, (2, 3, 2, 3)))])


@pytest.mark.parametrize('shape', [(7,), (3, 5), (1, 1, 1, 1), (2, 3, 1, 5, 3)])
@pytest.mark.parametrize('name, text, formulas, make_input', CASES, ids=IDS)
def test_top_takes_bottom_shape(name, text, formulas, make_input, shape):
    """The top is reshaped like the bottom for any number of axes and odd sizes."""
    rng = np.random.RandomState(2)
    x = _f32(make_input(rng, shape))
    result = run_layer(text, [x])
    assert result['tops'][0].shape == shape
    np.testing.assert_allclose(result['tops'][0], formulas[0](x.astype(np.float64)),
                               rtol=2e-6, atol=1e-6)


def test_top_follows_a_reshaped_bottom():
    """After the bottom changes shape, the next forward reshapes the top to match."""
    layer, bottom, top = make_layer('type: "TanH"', [np.zeros((2, 3), np.float32)])
    bottom[0].reshape(4, 1, 5)
    bottom[0].data[...] = 0.5
    layer.run_forward(bottom, top)
    assert top[0].shape == (4, 1, 5)
    np.testing.assert_allclose(top[0].data, np.tanh(0.5), rtol=1e-6)


# -- in place ------------------------------------------------------------------------------
def _run_in_place(text, x, dy, phase=caffe_pb2.TRAIN):
    """Forward and backward with one Blob as both bottom and top; float64 data and diff."""
    layer = create_layer(layer_param(text, phase))
    blob = Blob(x.shape)
    blob.data[...] = x
    layer.set_up([blob], [blob])
    layer.run_forward([blob], [blob])
    y = blob.data.astype(np.float64)
    blob.diff[...] = dy
    layer.run_backward([blob], [True], [blob])
    return y, blob.diff.astype(np.float64)


IN_PLACE_EXACT = [case for case in CASES
                  if case[0] in ('relu', 'relu_leaky', 'sigmoid', 'tanh', 'exp_e',
                                 'exp_base2')]


@pytest.mark.parametrize('name, text, formulas, make_input', IN_PLACE_EXACT,
                         ids=[case[0] for case in IN_PLACE_EXACT])
def test_in_place_equals_out_of_place(name, text, formulas, make_input):
    """In place, top data and bottom diff are those of separate bottom and top blobs."""
    rng = np.random.RandomState(3)
    x = _f32(make_input(rng, SHAPE))
    dy = _f32(rng.uniform(-1, 1, SHAPE))
    apart = run_layer(text, [x], top_diffs=[dy])
    y, dx = _run_in_place(text, x, dy)
    np.testing.assert_array_equal(y, apart['tops'][0])
    np.testing.assert_array_equal(dx, apart['bottom_diffs'][0])


# Caffe's in-place bottom diff: BNLL reads y where its formula needs x; Power and Log also
# write dy/dx (with x := y) into the shared diff before multiplying by it, giving (dy/dx)^2.
IN_PLACE_CAFFE = {
    'bnll': lambda y, dy: dy / (1 + np.exp(-y)),
    'log_base10': lambda y, dy: (2 / ((1 + 2 * y) * np.log(10))) ** 2,
    'power_general': lambda y, dy: (1.5 * 0.5 * y / (2 + 0.5 * y)) ** 2,
    'power_square': lambda y, dy: (2 * 0.5 * (1.5 + 0.5 * y)) ** 2,
    'power_no_shift': lambda y, dy: np.full_like(y, 3.0 ** 2),
    'power_linear': lambda y, dy: np.full_like(y, 3.0 ** 2),
}


@pytest.mark.parametrize('name', sorted(IN_PLACE_CAFFE))
def test_in_place_backward_reads_the_output_as_caffe_does(name):
    """In place, BNLL/Log/Power backward give Caffe's numbers, as recorded from BVLC Caffe."""
    _, text, (forward, _), make_input = CASES[IDS.index(name)]
    rng = np.random.RandomState(4)
    x = _f32(make_input(rng, SHAPE))
    dy = _f32(rng.uniform(-1, 1, SHAPE))
    y, dx = _run_in_place(text, x, dy)
    np.testing.assert_allclose(y, forward(x.astype(np.float64)), rtol=2e-6, atol=1e-6)
    np.testing.assert_allclose(dx, IN_PLACE_CAFFE[name](y, dy.astype(np.float64)),
                               rtol=2e-5, atol=1e-6)


def test_in_place_relu_power_chain_matches_caffe_recording():
    """ReLU then Power (scale 3) on one blob leave 9 * (x > 0) as bottom diff, as Caffe."""
    rng = np.random.RandomState(16)
    x = _f32(_away_from_zero(rng, SHAPE))
    blob = Blob(SHAPE)
    blob.data[...] = x
    layers = [create_layer(layer_param(text)) for text in
              ('type: "ReLU"', 'type: "Power" power_param { scale: 3 }')]
    for layer in layers:
        layer.set_up([blob], [blob])
        layer.run_forward([blob], [blob])
    np.testing.assert_allclose(blob.data, 3 * np.maximum(x, 0), rtol=1e-6)
    blob.diff[...] = rng.uniform(-1, 1, SHAPE)
    for layer in reversed(layers):
        layer.run_backward([blob], [True], [blob])
    np.testing.assert_array_equal(blob.diff, 9.0 * (x > 0))


def test_power_constant_in_place_has_zero_diff():
    """In place, Power with scale 0 still writes a constant top and a zero bottom diff."""
    x = _f32(np.random.RandomState(17).randn(*SHAPE))
    y, dx = _run_in_place('type: "Power" power_param { power: 2 scale: 0 shift: 3 }', x,
                          np.ones(SHAPE, np.float32))
    np.testing.assert_array_equal(y, 9.0)
    np.testing.assert_array_equal(dx, 0.0)


def test_threshold_in_place_forward():
    """Threshold in place writes the same step output as out of place."""
    rng = np.random.RandomState(6)
    x = _f32(rng.uniform(-1, 1, SHAPE))
    layer = create_layer(layer_param('type: "Threshold" threshold_param { threshold: 0.2 }'))
    blob = Blob(SHAPE)
    blob.data[...] = x
    layer.set_up([blob], [blob])
    layer.run_forward([blob], [blob])
    np.testing.assert_array_equal(blob.data, (x > 0.2).astype(np.float32))


# -- Power special cases -------------------------------------------------------------------
@pytest.mark.parametrize('text, value', [
    ('power_param { power: 0 scale: 2 shift: 3 }', 1.0),
    ('power_param { power: 2 scale: 0 shift: 3 }', 9.0),
    ('power_param { power: 0.5 scale: 0 shift: 4 }', 2.0),
])
def test_power_ignores_input_when_scale_times_power_is_zero(text, value):
    """With scale * power == 0 the top is constant and the bottom diff is zero."""
    x = _f32(np.random.RandomState(7).uniform(-1, 1, SHAPE))
    dy = np.full(SHAPE, np.nan, np.float32)  # Caffe never reads the top diff here
    result = run_layer('type: "Power" ' + text, [x], top_diffs=[dy])
    np.testing.assert_array_equal(result['tops'][0], value)
    np.testing.assert_array_equal(result['bottom_diffs'][0], 0.0)


def test_power_defaults_are_identity():
    """Power with default power 1, scale 1, shift 0 copies the bottom and its diff."""
    rng = np.random.RandomState(8)
    x, dy = _f32(rng.randn(*SHAPE)), _f32(rng.randn(*SHAPE))
    result = run_layer('type: "Power"', [x], top_diffs=[dy])
    np.testing.assert_array_equal(result['tops'][0], x)
    np.testing.assert_array_equal(result['bottom_diffs'][0], dy)


def test_exp_default_base_is_e():
    """Exp with base -1 equals Exp with base e to float32 rounding."""
    x = _f32(np.random.RandomState(9).uniform(-2, 2, SHAPE))
    natural = run_layer('type: "Exp" exp_param { scale: 0.7 shift: 0.3 }', [x])
    explicit = run_layer(f'type: "Exp" exp_param {{ base: {np.e} scale: 0.7 shift: 0.3 }}',
                         [x])
    np.testing.assert_allclose(natural['tops'][0], explicit['tops'][0], rtol=1e-6)


def test_threshold_forward_is_strictly_greater():
    """Threshold outputs 1 only for x > threshold; x equal to it gives 0."""
    x = _f32([[-1.0, 0.0, 0.5, 0.5000001, 2.0]])
    result = run_layer('type: "Threshold" threshold_param { threshold: 0.5 }', [x])
    np.testing.assert_array_equal(result['tops'][0], (x.astype(np.float64) > 0.5) * 1.0)


def test_threshold_backward_without_propagate_down_is_a_no_op():
    """Threshold backward with propagate_down false leaves the bottom diff untouched."""
    layer, bottom, top = make_layer('type: "Threshold"', [np.ones((2, 3), np.float32)])
    layer.run_forward(bottom, top)
    bottom[0].diff[...] = 7
    layer.run_backward(top, [False], bottom)
    np.testing.assert_array_equal(bottom[0].diff, 7)


# -- Dropout -------------------------------------------------------------------------------
DROPOUT = 'type: "Dropout" dropout_param { dropout_ratio: 0.3 }'


def _dropout_train(x, dy, seed=1701, text=DROPOUT):
    mode.set_random_seed(seed)
    layer, bottom, top = make_layer(text, [x])
    layer.run_forward(bottom, top)
    top[0].diff[...] = dy
    layer.run_backward(top, [True], bottom)
    return layer, top[0].data.copy(), bottom[0].diff.copy()


def test_dropout_train_mask_statistics_and_scale():
    """In TRAIN about 1 - p of the units are kept, each scaled by 1 / (1 - p)."""
    x = _f32(np.random.RandomState(10).uniform(0.5, 1.5, (8, 16, 20, 20)))
    layer, y, _ = _dropout_train(x, np.zeros_like(x))
    mask = layer.rand_vec.cpu().numpy()
    assert set(np.unique(mask)) <= {0, 1}
    assert abs(mask.mean() - 0.7) < 0.005  # 51200 draws: 5 standard deviations
    np.testing.assert_allclose(y, x.astype(np.float64) * mask / 0.7, rtol=1e-6)
    assert np.all((y == 0) == (mask == 0))


def test_dropout_backward_uses_the_forward_mask():
    """TRAIN backward multiplies the top diff by the forward's mask and 1 / (1 - p)."""
    rng = np.random.RandomState(12)
    x, dy = _f32(rng.randn(*SHAPE)), _f32(rng.randn(*SHAPE))
    layer, _, dx = _dropout_train(x, dy)
    mask = layer.rand_vec.cpu().numpy()
    np.testing.assert_allclose(dx, dy.astype(np.float64) * mask / 0.7, rtol=1e-6)


def test_dropout_same_seed_same_mask():
    """Reseeding with the same value repeats the mask; another seed changes it."""
    x = np.ones((4, 5, 6, 7), np.float32)
    first = _dropout_train(x, x)[0].rand_vec.clone()
    again = _dropout_train(x, x)[0].rand_vec
    other = _dropout_train(x, x, seed=99)[0].rand_vec
    assert bool((first == again).all())
    assert not bool((first == other).all())


def test_dropout_in_place_equals_out_of_place():
    """In place, Dropout with the same seed gives the same top and bottom diff."""
    rng = np.random.RandomState(13)
    x, dy = _f32(rng.randn(*SHAPE)), _f32(rng.randn(*SHAPE))
    _, y, dx = _dropout_train(x, dy)
    mode.set_random_seed(1701)
    y_in_place, dx_in_place = _run_in_place(DROPOUT, x, dy)
    np.testing.assert_array_equal(y_in_place, y)
    np.testing.assert_array_equal(dx_in_place, dx)


def test_dropout_test_phase_is_identity():
    """In TEST, Dropout copies the bottom forward and the top diff backward."""
    rng = np.random.RandomState(14)
    x, dy = _f32(rng.randn(*SHAPE)), _f32(rng.randn(*SHAPE))
    result = run_layer(DROPOUT, [x], top_diffs=[dy], phase=caffe_pb2.TEST)
    np.testing.assert_array_equal(result['tops'][0], x)
    np.testing.assert_array_equal(result['bottom_diffs'][0], dy)
    check_gradient(DROPOUT, [x[:1, :2]], phase=caffe_pb2.TEST)


def test_dropout_ratio_zero_keeps_everything():
    """dropout_ratio 0 keeps every unit with scale 1."""
    x = _f32(np.random.RandomState(15).randn(*SHAPE))
    _, y, _ = _dropout_train(x, x, text='type: "Dropout" dropout_param { dropout_ratio: 0 }')
    np.testing.assert_array_equal(y, x)


def test_dropout_takes_more_than_four_axes():
    """Caffe shapes its mask like the bottom (rand_vec_.Reshape(bottom[0]->shape())), so a
    5-axis bottom is kept or dropped per element like any other: TRAIN y = x * m / (1 - p),
    dx = dy * m / (1 - p), the same mask."""
    rng = np.random.RandomState(18)
    shape = (2, 3, 1, 4, 5)
    x, dy = _f32(rng.uniform(0.5, 1.5, shape)), _f32(rng.randn(*shape))
    layer, y, dx = _dropout_train(x, dy)
    mask = layer.rand_vec.cpu().numpy()
    assert mask.shape == shape and 0 < mask.sum() < mask.size
    np.testing.assert_allclose(y, x.astype(np.float64) * mask / 0.7, rtol=1e-6)
    np.testing.assert_allclose(dx, dy.astype(np.float64) * mask / 0.7, rtol=1e-6)


# -- error paths ---------------------------------------------------------------------------
def test_catch_two_bottoms():
    """A neuron layer given two bottoms names the expected count."""
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(LayerSetupError, match='exactly 1 bottom'):
        make_layer('type: "ReLU"', [x, x])


def test_catch_two_tops():
    """A neuron layer given two tops names the expected count."""
    with pytest.raises(LayerSetupError, match='exactly 1 top'):
        make_layer('type: "Sigmoid"', [np.zeros((2, 3), np.float32)], ntop=2)


def test_catch_absval_in_place():
    """AbsVal refuses in-place use, as Caffe's CHECK_NE does."""
    layer = create_layer(layer_param('type: "AbsVal"'))
    blob = Blob((2, 3))
    with pytest.raises(LayerSetupError, match='does not allow in-place'):
        layer.set_up([blob], [blob])


def test_catch_threshold_backward():
    """Threshold backward with propagate_down raises: Caffe has no gradient for it (a
    CaffeError, as every refusal of the engine, and a NotImplementedError)."""
    from caffe_torch.errors import BackwardNotImplementedError
    layer, bottom, top = make_layer('type: "Threshold"', [np.ones((2, 3), np.float32)])
    layer.run_forward(bottom, top)
    with pytest.raises(BackwardNotImplementedError, match='propagate_down: false'):
        layer.run_backward(top, [True], bottom)


@pytest.mark.parametrize('ratio', [1.0, 1.5, -0.1])
def test_catch_dropout_ratio_out_of_range(ratio):
    """dropout_ratio outside [0, 1) is refused with the allowed range."""
    with pytest.raises(LayerSetupError, match=r'must be in \[0, 1\)'):
        make_layer(f'type: "Dropout" dropout_param {{ dropout_ratio: {ratio} }}',
                   [np.zeros((2, 3), np.float32)])


@pytest.mark.parametrize('kind', ['Exp', 'Log'])
@pytest.mark.parametrize('base', [0, -2])
def test_catch_non_positive_base(kind, base):
    """Exp and Log refuse a base that is neither -1 (e) nor positive."""
    text = f'type: "{kind}" {kind.lower()}_param {{ base: {base} }}'
    with pytest.raises(LayerSetupError, match='strictly positive'):
        make_layer(text, [np.ones((2, 3), np.float32)])


def test_catch_log_base_one():
    """Log refuses base 1, whose logarithm is zero."""
    with pytest.raises(LayerSetupError, match='base other than 1'):
        make_layer('type: "Log" log_param { base: 1 }', [np.ones((2, 3), np.float32)])
