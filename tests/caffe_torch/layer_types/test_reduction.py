"""Reduction against a float64 NumPy transcription of Caffe's loops (reduction_layer.cpp),
finite differences and the CHECKs."""
import numpy as np
import pytest

from caffe_torch.errors import LayerSetupError
from layer_check import check_gradient, make_layer, run_layer

OPS = ('SUM', 'ASUM', 'SUMSQ', 'MEAN')


def np_reduction(x, op, axis, coeff, top_diff):
    """(top, dx) as Caffe's per-row loop, with coeff (and MEAN's coeff / D) in float32."""
    axis %= max(x.ndim, 1)
    num, dim = int(np.prod(x.shape[:axis])), int(np.prod(x.shape[axis:]))
    c = np.float32(coeff)
    if op == 'MEAN':
        c = np.float32(c / np.float32(dim))
    rows = x.astype(np.float64).reshape(num, dim)
    dy = np.asarray(top_diff, np.float64).reshape(num)
    top, grad = np.zeros(num), np.zeros_like(rows)
    for i in range(num):
        if op in ('SUM', 'MEAN'):
            top[i] = rows[i].sum()
            grad[i] = dy[i] * c
        elif op == 'ASUM':
            top[i] = np.abs(rows[i]).sum()
            grad[i] = np.sign(rows[i]) * dy[i] * c
        else:
            top[i] = (rows[i] ** 2).sum()
            grad[i] = 2 * dy[i] * c * rows[i]
    return (top * c).reshape(x.shape[:axis]), grad.reshape(x.shape)


def _x(shape=(2, 3, 4), seed=0):
    """Values kept 0.05 away from 0, where |x| has its kink."""
    x = np.random.RandomState(seed).uniform(-1, 1, size=shape)
    return np.where(np.abs(x) < 0.05, 0.3, x).astype(np.float32)


@pytest.mark.parametrize('op', OPS)
@pytest.mark.parametrize('axis, coeff', [(0, 1.0), (1, 0.25), (2, -3.0), (-1, 1.0)])
def test_reduction_forward_backward(op, axis, coeff):
    x = _x()
    top_shape = x.shape[:axis % 3]
    top_diff = np.random.RandomState(1).standard_normal(top_shape).astype(np.float32)
    text = (f"type: 'Reduction' reduction_param {{ operation: {op} axis: {axis} "
            f"coeff: {coeff} }}")
    out = run_layer(text, [x], top_diffs=[top_diff])
    top, grad = np_reduction(x, op, axis, coeff, top_diff)
    assert out['tops'][0].shape == top_shape
    np.testing.assert_allclose(out['tops'][0], top, rtol=1e-5)
    np.testing.assert_allclose(out['bottom_diffs'][0], grad, rtol=1e-5)


def test_reduction_defaults_sum_everything_to_a_scalar():
    """operation SUM, axis 0, coeff 1: a 0-d top holding the sum of all values."""
    x = _x()
    layer, _, top = make_layer("type: 'Reduction'", [x])
    assert top[0].shape == () and top[0].count == 1
    out = run_layer("type: 'Reduction'", [x])
    np.testing.assert_allclose(out['tops'][0], x.astype(np.float64).sum(), rtol=1e-6)


def test_reduction_mean_coeff_is_float32():
    """MEAN scales by float32(coeff) / D in float32, as Caffe's Dtype coeff_."""
    x = np.ones((1, 3), np.float32)
    out = run_layer("type: 'Reduction' reduction_param { operation: MEAN axis: 1 coeff: 0.1 }",
                    [x], top_diffs=[np.ones(1, np.float32)])
    c = np.float32(np.float32(0.1) / np.float32(3))
    assert out['bottom_diffs'][0][0, 0] == c
    np.testing.assert_allclose(out['tops'][0], [3 * c], rtol=1e-7)


@pytest.mark.parametrize('op', OPS)
def test_reduction_gradient(op):
    check_gradient(f"type: 'Reduction' reduction_param {{ operation: {op} axis: 1 "
                   f"coeff: 0.5 }}", [_x((2, 2, 3), seed=2)])


@pytest.mark.parametrize('axis', [3, -4])
def test_catch_reduction_axis(axis):
    with pytest.raises(LayerSetupError, match=f'reduction_param.axis = {axis}'):
        make_layer(f"type: 'Reduction' reduction_param {{ axis: {axis} }}", [_x()])


def test_catch_reduction_of_a_scalar():
    """A 0-d bottom (another Reduction's top over axis 0) has no axis 0: Caffe aborts in
    CanonicalAxisIndex (axis_index < num_axes(), 0 vs. 0), so the engine refuses it."""
    x = np.asarray(np.float32(2.5)).reshape(())
    with pytest.raises(LayerSetupError, match='0-d bottom'):
        make_layer("type: 'Reduction'", [x])
