"""Eltwise, Scale and Bias against float64 NumPy transcriptions of Caffe's formulas, finite
differences, Caffe's broadcast shape rules and errors, in-place use and diff conventions."""
import numpy as np
import pytest

from caffe_torch.blob import Blob
from caffe_torch.errors import LayerSetupError
from caffe_torch.layer_factory import create_layer
from layer_check import check_gradient, layer_param, make_layer, run_layer


def _rand(seed, *shape):
    return np.random.RandomState(seed).uniform(-1, 1, shape).astype(np.float32)


def _f64(*arrays):
    return [np.asarray(a, dtype=np.float64) for a in arrays]


def _in_place(text, array, params=None):
    """Set a layer up with its top being its bottom blob; returns (layer, blob)."""
    layer = create_layer(layer_param(text))
    blob = Blob(array.shape)
    blob.data[...] = array
    layer.set_up([blob], [blob])
    for p, value in zip(layer.blobs, params or []):
        p.data[...] = value
    return layer, blob


def _distinct(seed, n, *shape):
    """n arrays whose entries are all at least 0.1 apart (no ties, away from kinks)."""
    values = np.random.RandomState(seed).permutation(n * int(np.prod(shape))) * 0.1 - 1
    return [v.reshape(shape).astype(np.float32) for v in np.split(values, n)]


def test_eltwise_sum_coeff_forward_backward():
    """SUM: top = sum coeff_i x_i; bottom i diff = coeff_i dy."""
    xs, dy = [_rand(i, 2, 3, 4) for i in range(3)], _rand(7, 2, 3, 4)
    text = 'type: "Eltwise" eltwise_param { coeff: 0.5 coeff: -2 coeff: 1 }'
    r = run_layer(text, xs, top_diffs=[dy])
    a, b, c = _f64(*xs)
    np.testing.assert_allclose(r['tops'][0], 0.5 * a - 2 * b + c, rtol=1e-6, atol=1e-6)
    for got, coeff in zip(r['bottom_diffs'], [0.5, -2, 1]):
        np.testing.assert_allclose(got, coeff * dy.astype(np.float64), rtol=1e-6)


@pytest.mark.parametrize('stable', ['true', 'false'])
def test_eltwise_prod_forward_backward(stable):
    """PROD: top = prod x_i; bottom i diff = dy * prod_{j != i} x_j (or dy * top / x_i)."""
    xs, dy = [_rand(i, 2, 3, 4) for i in range(3)], _rand(7, 2, 3, 4)
    text = 'type: "Eltwise" eltwise_param { operation: PROD stable_prod_grad: %s }' % stable
    r = run_layer(text, xs, top_diffs=[dy])
    a, b, c = _f64(*xs)
    np.testing.assert_allclose(r['tops'][0], a * b * c, rtol=1e-5, atol=1e-7)
    for got, others in zip(r['bottom_diffs'], [b * c, a * c, a * b]):
        np.testing.assert_allclose(got, dy * others, rtol=1e-4, atol=1e-6)


def test_eltwise_max_forward_backward():
    """MAX: top = max x_i; the top diff goes only to the argmax bottom."""
    xs, dy = _distinct(1, 3, 2, 3, 4), _rand(7, 2, 3, 4)
    r = run_layer('type: "Eltwise" eltwise_param { operation: MAX }', xs, top_diffs=[dy])
    stacked = np.stack(_f64(*xs))
    np.testing.assert_array_equal(r['tops'][0], stacked.max(0))
    winner = stacked.argmax(0)
    for i, got in enumerate(r['bottom_diffs']):
        np.testing.assert_array_equal(got, np.where(winner == i, dy, 0))


def test_eltwise_max_ties_follow_caffe():
    """Ties between bottoms 0 and 1 go to bottom 1; later bottoms must be strictly greater."""
    ones = np.ones((1, 4), np.float32)
    r = run_layer('type: "Eltwise" eltwise_param { operation: MAX }', [ones, ones, ones],
                  top_diffs=[ones])
    assert [d.sum() for d in r['bottom_diffs']] == [0, 4, 0]


@pytest.mark.parametrize('param', ['coeff: 2 coeff: -1', 'operation: PROD',
                                   'operation: PROD stable_prod_grad: false',
                                   'operation: MAX'])
def test_eltwise_gradient(param):
    """Eltwise gradients agree with finite differences (MAX away from ties)."""
    check_gradient('type: "Eltwise" eltwise_param { %s }' % param, _distinct(3, 2, 2, 3))


def test_catch_eltwise_shape_mismatch():
    """Bottoms of different shapes name the bottom and both shapes."""
    with pytest.raises(LayerSetupError, match=r'bottom\[1\] has shape \(2, 4\) but '
                                              r'bottom\[0\] has \(2, 3\)'):
        make_layer('type: "Eltwise"', [_rand(1, 2, 3), _rand(2, 2, 4)])


def test_catch_eltwise_coeff_count():
    """Coefficients must be given once per bottom."""
    with pytest.raises(LayerSetupError, match=r'1 coeff\(s\) for 2 bottoms'):
        make_layer('type: "Eltwise" eltwise_param { coeff: 1 }', [_rand(1, 3), _rand(2, 3)])


def test_catch_eltwise_prod_coeff():
    """PROD takes no coefficients."""
    with pytest.raises(LayerSetupError, match='SUM only'):
        make_layer('type: "Eltwise" eltwise_param { operation: PROD coeff: 1 coeff: 1 }',
                   [_rand(1, 3), _rand(2, 3)])


def _broadcast(operand, shape, axis):
    """The operand reshaped to broadcast over `shape` from `axis` on."""
    return operand.reshape((1,) * axis + operand.shape
                           + (1,) * (len(shape) - axis - operand.ndim))


@pytest.mark.parametrize('param, axis, pshape', [
    ('', 1, (3,)), ('axis: 1 num_axes: 2', 1, (3, 4)), ('axis: -1', 3, (5,)),
    ('axis: 0 num_axes: -1', 0, (2, 3, 4, 5)), ('num_axes: 0', 0, ())])
def test_scale_learned_forward_backward(param, axis, pshape):
    """top = x * s broadcast; dx = dy * s; ds = sum of dy * x over the other axes."""
    x, s, dy = _rand(1, 2, 3, 4, 5), _rand(2, *pshape), _rand(3, 2, 3, 4, 5)
    r = run_layer('type: "Scale" scale_param { %s }' % param, [x], [s], top_diffs=[dy])
    x64, s64, dy64 = _f64(x, _broadcast(s, x.shape, axis), dy)
    np.testing.assert_allclose(r['tops'][0], x64 * s64, rtol=1e-6)
    np.testing.assert_allclose(r['bottom_diffs'][0], dy64 * s64, rtol=1e-6)
    reduce = tuple(i for i in range(4) if not axis <= i < axis + len(pshape))
    np.testing.assert_allclose(r['param_diffs'][0], (dy64 * x64).sum(reduce), rtol=1e-4,
                               atol=1e-5)


def test_scale_default_filler_is_one_and_bias_zero():
    """Without fillers the scale starts at 1 and the bias at 0 (identity)."""
    layer, _, _ = make_layer('type: "Scale" scale_param { bias_term: true }',
                             [_rand(1, 2, 3)])
    assert np.all(layer.blobs[0].data == 1) and np.all(layer.blobs[1].data == 0)


def test_scale_bias_term_forward_backward():
    """bias_term: top = x * s + b; db = sum of dy, stored as the second param."""
    x, s, b, dy = _rand(1, 2, 3, 4), _rand(2, 3), _rand(3, 3), _rand(4, 2, 3, 4)
    r = run_layer('type: "Scale" scale_param { bias_term: true }', [x], [s, b],
                  top_diffs=[dy])
    x64, s64, b64, dy64 = _f64(x, s[None, :, None], b[None, :, None], dy)
    np.testing.assert_allclose(r['tops'][0], x64 * s64 + b64, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(r['param_diffs'][1], dy64.sum((0, 2)), rtol=1e-5)
    np.testing.assert_allclose(r['param_diffs'][0], (dy64 * x64).sum((0, 2)), rtol=1e-5)


def test_scale_two_bottoms_forward_backward():
    """Scale from bottom[1]: its diff is written (not added) as sum of dy * x."""
    x, s, dy = _rand(1, 2, 3, 4, 5), _rand(2, 2, 3), _rand(3, 2, 3, 4, 5)
    r = run_layer('type: "Scale" scale_param { axis: 0 }', [x, s], top_diffs=[dy])
    x64, s64, dy64 = _f64(x, s[:, :, None, None], dy)
    np.testing.assert_allclose(r['tops'][0], x64 * s64, rtol=1e-6)
    np.testing.assert_allclose(r['bottom_diffs'][0], dy64 * s64, rtol=1e-6)
    np.testing.assert_allclose(r['bottom_diffs'][1], (dy64 * x64).sum((2, 3)), rtol=1e-5)


def test_scale_two_bottoms_with_bias_makes_one_param():
    """With the scale from bottom[1], bias_term's blob is blobs[0], shaped like bottom[1]."""
    layer, _, _ = make_layer('type: "Scale" scale_param { bias_term: true }',
                             [_rand(1, 2, 3, 4), _rand(2, 3, 4)])
    assert [b.shape for b in layer.blobs] == [(3, 4)]


@pytest.mark.parametrize('text, bottoms', [
    ('type: "Scale" scale_param { bias_term: true num_axes: 2 }', [(2, 3, 2)]),
    ('type: "Scale" scale_param { axis: 0 }', [(2, 3, 2), (2, 3)]),
    ('type: "Scale" scale_param { bias_term: true }', [(2, 3, 2), (3,)]),
    ('type: "Bias"', [(2, 3, 2)]),
    ('type: "Bias" bias_param { axis: 0 num_axes: -1 }', [(2, 3, 2)]),
    ('type: "Bias"', [(2, 3, 2), (3, 2)])])
def test_scale_bias_gradient(text, bottoms):
    """Scale and Bias gradients (bottoms and params) agree with finite differences."""
    params = None
    if 'Scale' in text and len(bottoms) == 1:
        layer, _, _ = make_layer(text, [np.zeros(bottoms[0], np.float32)])
        params = [_rand(8 + i, *b.shape) for i, b in enumerate(layer.blobs)]
    check_gradient(text, [_rand(i, *s) for i, s in enumerate(bottoms)], params=params)


def test_scale_in_place_matches_out_of_place():
    """In place, Scale (with bias) gives the same top and diffs as with a separate top."""
    x, s, b, dy = _rand(1, 2, 3, 4), _rand(2, 3), _rand(3, 3), _rand(4, 2, 3, 4)
    text = 'type: "Scale" scale_param { bias_term: true }'
    want = run_layer(text, [x], [s, b], top_diffs=[dy])
    layer, blob = _in_place(text, x, [s, b])
    layer.run_forward([blob], [blob])
    np.testing.assert_array_equal(blob.data, want['tops'][0])
    blob.diff[...] = dy
    layer.run_backward([blob], [True], [blob])
    np.testing.assert_array_equal(blob.diff, want['bottom_diffs'][0])
    for got, expected in zip(layer.blobs, want['param_diffs']):
        np.testing.assert_allclose(got.diff, expected, rtol=1e-6)


@pytest.mark.parametrize('shape, param, accumulates', [
    ((2, 3, 4), '', True), ((1, 3, 4), '', False), ((3,), 'axis: 0', False),
    ((2, 3, 1), '', True), ((1, 3, 4), 'num_axes: 0', True)])
def test_scale_param_diff_accumulation_follows_caffe(shape, param, accumulates):
    """Caffe adds dscale to the param diff, except (outer 1, inner > 1, dim > 1) or eltwise."""
    layer, bottom, top = make_layer('type: "Scale" scale_param { %s }' % param,
                                    [_rand(1, *shape)])
    layer.run_forward(bottom, top)
    top[0].diff[...] = _rand(2, *shape)
    layer.blobs[0].diff[...] = 0
    layer.run_backward(top, [True], bottom)
    once = layer.blobs[0].diff.copy()
    layer.run_backward(top, [True], bottom)
    np.testing.assert_allclose(layer.blobs[0].diff, once * (2 if accumulates else 1),
                               rtol=1e-6)


def test_scale_not_propagated_leaves_product_in_bottom_diff():
    """As Caffe's scratch use, an unpropagated bottom[0] diff ends up holding dy * x."""
    x, dy = _rand(1, 2, 3, 4), _rand(2, 2, 3, 4)
    r = run_layer('type: "Scale"', [x], top_diffs=[dy], propagate_down=[False])
    np.testing.assert_allclose(r['bottom_diffs'][0], x.astype(np.float64) * dy, rtol=1e-6)


def test_bias_forward_backward():
    """top = x + b broadcast; dx = dy; db = sum of dy (learned or from bottom[1])."""
    x, b, dy = _rand(1, 2, 3, 4), _rand(2, 3, 4), _rand(3, 2, 3, 4)
    x64, b64, dy64 = _f64(x, b[None], dy)
    learned = run_layer('type: "Bias" bias_param { num_axes: 2 }', [x], [b], top_diffs=[dy])
    given = run_layer('type: "Bias"', [x, b], top_diffs=[dy])
    for r, bias_diff in [(learned, learned['param_diffs'][0]),
                         (given, given['bottom_diffs'][1])]:
        np.testing.assert_allclose(r['tops'][0], x64 + b64, rtol=1e-6, atol=1e-7)
        np.testing.assert_array_equal(r['bottom_diffs'][0], dy)
        np.testing.assert_allclose(bias_diff, dy64.sum(0), rtol=1e-5)


def test_bias_in_place():
    """In place, Bias adds to the blob and leaves its diff (= top diff) alone."""
    x, b, dy = _rand(1, 2, 3), _rand(2, 3), _rand(3, 2, 3)
    layer, blob = _in_place('type: "Bias"', x, [b])
    layer.run_forward([blob], [blob])
    np.testing.assert_allclose(blob.data, x + b[None], rtol=1e-6)
    blob.diff[...] = dy
    layer.blobs[0].diff[...] = 0
    layer.run_backward([blob], [True], [blob])
    np.testing.assert_array_equal(blob.diff, dy)
    np.testing.assert_allclose(layer.blobs[0].diff, dy.sum(0), rtol=1e-6)


def test_catch_scale_shape_mismatch():
    """A scale bottom not matching bottom[0]'s axes names both shapes."""
    with pytest.raises(LayerSetupError, match=r'scale shape \(4,\) must equal '
                                              r'bottom\[0\].shape\[1:2\] = \(3,\)'):
        make_layer('type: "Scale"', [_rand(1, 2, 3, 4), _rand(2, 4)])


def test_catch_scale_num_axes_past_end():
    """A learned scale reaching past bottom[0]'s last axis is an error."""
    with pytest.raises(LayerSetupError, match='extends past bottom shape'):
        make_layer('type: "Scale" scale_param { axis: 1 num_axes: 3 }', [_rand(1, 2, 3, 4)])


def test_catch_scale_num_axes_negative():
    """num_axes below -1 is an error."""
    with pytest.raises(LayerSetupError, match='num_axes must be >= 0, or -1'):
        make_layer('type: "Scale" scale_param { num_axes: -2 }', [_rand(1, 2, 3)])


def test_catch_bias_shape_mismatch():
    """A bias bottom not matching bottom[0]'s axes names both shapes."""
    with pytest.raises(LayerSetupError, match=r'bias shape \(3, 5\) must equal'):
        make_layer('type: "Bias"', [_rand(1, 2, 3, 4), _rand(2, 3, 5)])


def test_catch_bias_axis_out_of_range():
    """An axis outside bottom[0] is an error."""
    with pytest.raises(LayerSetupError, match='bias_param.axis = 5 is out of range'):
        make_layer('type: "Bias" bias_param { axis: 5 }', [_rand(1, 2, 3)])


@pytest.mark.parametrize('type_', ['Scale', 'Bias'])
def test_catch_learned_operand_of_a_0d_bottom(type_):
    """A learned operand of a 0-D bottom is refused even with num_axes 0: Caffe's setup
    calls CanonicalAxisIndex(axis), which CHECKs -0 <= axis < 0 and so admits no axis."""
    param = f'{type_.lower()}_param {{ axis: 0 num_axes: 0 }}'
    with pytest.raises(LayerSetupError, match='0-D bottom'):
        make_layer(f'type: "{type_}" {param}', [np.float32(2.0)])


def test_catch_scale_bias_term_of_a_0d_bottom():
    """Scale's bias_term sets up a Bias on bottom[0], which a 0-D bottom fails (as Caffe)."""
    with pytest.raises(LayerSetupError, match='0-D bottom'):
        make_layer('type: "Scale" scale_param { bias_term: true }',
                   [np.float32(2.0), np.float32(3.0)])
