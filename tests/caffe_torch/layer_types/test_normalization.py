"""BatchNorm and MVN (caffe_torch/layer_types/normalization.py) against float64 NumPy
transcriptions of Caffe's math, finite differences, in-place use and their CHECKs."""
import numpy as np
import pytest

import caffe_torch as caffe
from caffe_torch.blob import Blob
from caffe_torch.errors import LayerSetupError
from caffe_torch.layer_factory import create_layer
from caffe_torch.proto import caffe_pb2
from layer_check import check_gradient, layer_param, make_layer, run_layer

SHAPE = (2, 3, 4, 5)


def _f32(a):
    return np.asarray(a, np.float32)


def _rand(rng, shape, scale=1.0):
    return _f32(rng.uniform(-1, 1, shape) * scale + 0.3)


def _in_place(text, x, dy, params=None, phase=caffe_pb2.TRAIN):
    layer = create_layer(layer_param(text, phase))
    blob = Blob(x.shape)
    blob.data[...] = x
    layer.set_up([blob], [blob])
    for b, value in zip(layer.blobs, params or []):
        b.data[...] = value
    layer.run_forward([blob], [blob])
    y = blob.data.astype(np.float64)
    blob.diff[...] = dy
    layer.run_backward([blob], [True], [blob])
    return layer, y, blob.diff.astype(np.float64)


# -- BatchNorm -----------------------------------------------------------------------------
def _axes(x):
    return (0,) + tuple(range(2, x.ndim))


def _per_channel(v, x):
    return np.reshape(v, (1, -1) + (1,) * (x.ndim - 2))


def _bn_batch(x, dy, eps):
    """Batch statistics: top, bottom diff, mean and biased variance per channel."""
    mean, var = x.mean(axis=_axes(x)), x.var(axis=_axes(x))
    std = np.sqrt(_per_channel(var, x) + eps)
    y = (x - _per_channel(mean, x)) / std
    dx = (dy - _per_channel(dy.mean(axis=_axes(x)), x)
          - y * _per_channel((dy * y).mean(axis=_axes(x)), x)) / std
    return y, dx, mean, var


@pytest.mark.parametrize('shape', [SHAPE, (6, 4), (3, 2, 5)])
def test_batchnorm_train_matches_numpy_and_updates_running_sums(shape):
    rng = np.random.RandomState(0)
    x, dy = _rand(rng, shape, 2.0), _rand(rng, shape)
    c = shape[1]
    start = [_f32(rng.uniform(0, 1, c)), _f32(rng.uniform(0.5, 1, c)), _f32([2.0])]
    text = 'type: "BatchNorm" batch_norm_param { moving_average_fraction: 0.9 eps: 0.001 }'
    layer, bottom, top = make_layer(text, [x], params=start)
    layer.run_forward(bottom, top)
    y, dx, mean, var = _bn_batch(x.astype(np.float64), dy.astype(np.float64), 0.001)
    np.testing.assert_allclose(top[0].data, y, rtol=1e-5, atol=1e-5)
    m = x.size / c
    np.testing.assert_allclose(layer.blobs[2].data, [0.9 * 2 + 1], rtol=1e-6)
    np.testing.assert_allclose(layer.blobs[0].data, 0.9 * start[0] + mean, rtol=1e-5)
    np.testing.assert_allclose(layer.blobs[1].data, 0.9 * start[1] + m / (m - 1) * var,
                               rtol=1e-5)
    top[0].diff[...] = dy
    for blob in layer.blobs:
        blob.diff[...] = 0
    layer.run_backward(top, [True], bottom)
    np.testing.assert_allclose(bottom[0].diff, dx, rtol=1e-4, atol=1e-5)
    for blob in layer.blobs:  # the statistics are not learned: no diff is written
        np.testing.assert_array_equal(blob.diff, 0)


def test_batchnorm_global_stats_divide_by_the_factor():
    rng = np.random.RandomState(1)
    x, dy = _rand(rng, SHAPE, 2.0), _rand(rng, SHAPE)
    f = 4.0
    mean, var = _f32([0.1, -0.2, 0.3]), _f32([0.5, 1.5, 2.0])
    params = [mean * f, var * f, _f32([f])]
    result = run_layer('type: "BatchNorm" batch_norm_param { eps: 0.1 }', [x],
                       params=params, top_diffs=[dy], phase=caffe_pb2.TEST)
    x64 = x.astype(np.float64)
    std = np.sqrt(_per_channel(var.astype(np.float64), x64) + 0.1)
    np.testing.assert_allclose(result['tops'][0], (x64 - _per_channel(mean, x64)) / std,
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result['bottom_diffs'][0], dy / std, rtol=1e-5)


def test_batchnorm_zero_factor_reads_as_zero_statistics():
    """f == 0: Caffe's scale factor is 0, so y = x / sqrt(eps) whatever blobs 0 and 1 hold."""
    x = _rand(np.random.RandomState(2), SHAPE)
    params = [_f32([5, 5, 5]), _f32([9, 9, 9]), _f32([0])]
    result = run_layer('type: "BatchNorm" batch_norm_param { eps: 0.5 }', [x],
                       params=params, phase=caffe_pb2.TEST)
    np.testing.assert_allclose(result['tops'][0], x / np.sqrt(0.5), rtol=1e-6)


@pytest.mark.parametrize('phase, extra, global_stats', [
    (caffe_pb2.TRAIN, '', False), (caffe_pb2.TEST, '', True),
    (caffe_pb2.TRAIN, 'batch_norm_param { use_global_stats: true }', True),
    (caffe_pb2.TEST, 'batch_norm_param { use_global_stats: false }', False)])
def test_batchnorm_use_global_stats_defaults_to_the_test_phase(phase, extra, global_stats):
    x = _rand(np.random.RandomState(3), (4, 2))
    layer, bottom, top = make_layer('type: "BatchNorm" ' + extra, [x], phase=phase)
    assert layer.use_global_stats is global_stats
    layer.run_forward(bottom, top)
    # batch stats move the factor to 1; global stats leave the (zero) statistics alone
    assert layer.blobs[2].data[0] == (0.0 if global_stats else 1.0)


def test_batchnorm_single_value_per_channel_skips_the_correction():
    """m = count / C = 1: Caffe's bias correction factor is 1, not m / (m - 1)."""
    x = _f32([[1.0, 2.0, 3.0]])
    layer, bottom, top = make_layer('type: "BatchNorm"', [x])
    layer.run_forward(bottom, top)
    np.testing.assert_array_equal(layer.blobs[1].data, 0)
    np.testing.assert_array_equal(top[0].data, 0)


@pytest.mark.parametrize('phase', [caffe_pb2.TRAIN, caffe_pb2.TEST])
def test_batchnorm_gradient_finite_differences(phase):
    rng = np.random.RandomState(4)
    params = [_f32([0.2, -0.4]), _f32([1.2, 0.6]), _f32([1.0])]
    check_gradient('type: "BatchNorm"', [_rand(rng, (2, 2, 3, 2), 2.0)], params=params,
                   phase=phase, check_params=False)


@pytest.mark.parametrize('phase', [caffe_pb2.TRAIN, caffe_pb2.TEST])
def test_batchnorm_in_place_equals_out_of_place(phase):
    rng = np.random.RandomState(5)
    x, dy = _rand(rng, SHAPE, 2.0), _rand(rng, SHAPE)
    params = [_f32([0.2, -0.4, 0.1]), _f32([1.2, 0.6, 2.0]), _f32([1.5])]
    apart = run_layer('type: "BatchNorm"', [x], params=params, top_diffs=[dy], phase=phase)
    layer, y, dx = _in_place('type: "BatchNorm"', x, dy, params, phase)
    np.testing.assert_array_equal(y, apart['tops'][0])
    np.testing.assert_allclose(dx, apart['bottom_diffs'][0], rtol=1e-6, atol=1e-7)


def test_batchnorm_masks_its_statistics_with_lr_mult_zero():
    layer, _, _ = make_layer('type: "BatchNorm"', [np.zeros((2, 3), np.float32)])
    assert [(p.HasField('lr_mult'), p.lr_mult) for p in layer.layer_param.param] == \
        [(True, 0.0)] * 3
    one, _, _ = make_layer('type: "BatchNorm" param { lr_mult: 0 decay_mult: 0 }',
                           [np.zeros((2, 3), np.float32)])
    assert [p.lr_mult for p in one.layer_param.param] == [0.0] * 3
    assert one.layer_param.param[0].decay_mult == 0


@pytest.mark.parametrize('spec', ['param { lr_mult: 1 }', 'param { name: "m" }',
                                  'param { lr_mult: 0 } param { lr_mult: 0.1 }'])
def test_batchnorm_refuses_learned_statistics(spec):
    with pytest.raises(LayerSetupError, match='batch normalization statistics'):
        make_layer('type: "BatchNorm" ' + spec, [np.zeros((2, 3), np.float32)])


def test_batchnorm_statistics_get_no_learning_rate_in_a_net():
    net_param = caffe_pb2.NetParameter()
    net_param.layer.add(name='x', type='Input', top=['x']).input_param.shape.add(
        dim=[2, 3, 2, 2])
    net_param.layer.add(name='bn', type='BatchNorm', bottom=['x'], top=['y'])
    net = caffe.Net(net_param, caffe.TRAIN)
    assert [tuple(b.shape) for b in net.params['bn']] == [(3,), (3,), (1,)]
    assert list(net.params_lr) == [0.0, 0.0, 0.0]


@pytest.mark.parametrize('shape', [(5,), ()])
def test_batchnorm_refuses_bottoms_without_a_channel_axis(shape):
    with pytest.raises(LayerSetupError, match='at least 2 axes'):
        make_layer('type: "BatchNorm"', [np.zeros(shape, np.float32)])


def test_batchnorm_refuses_a_change_of_channels():
    layer, bottom, top = make_layer('type: "BatchNorm"', [np.zeros((2, 3), np.float32)])
    bottom[0].reshape(2, 4)
    with pytest.raises(LayerSetupError, match='4 channels'):
        layer.run_forward(bottom, top)


# -- MVN -----------------------------------------------------------------------------------
def _mvn_numpy(x, dy, normalize_variance, across_channels, eps):
    """Caffe's MVN per group: (x - mean) / (std + eps) and its Backward_cpu formula."""
    groups = x.shape[0] if across_channels else x.shape[0] * x.shape[1]
    xg, dyg = x.reshape(groups, -1), dy.reshape(groups, -1)
    centered = xg - xg.mean(axis=1, keepdims=True)
    if not normalize_variance:
        return (centered.reshape(x.shape),
                (dyg - dyg.mean(axis=1, keepdims=True)).reshape(x.shape), None)
    std = np.sqrt((centered ** 2).mean(axis=1, keepdims=True)) + eps
    y = centered / std
    dx = (dyg - dyg.mean(axis=1, keepdims=True)
          - y * (dyg * y).mean(axis=1, keepdims=True)) / std
    return y.reshape(x.shape), dx.reshape(x.shape), std


MVN_CASES = [(True, False, 1e-9), (False, False, 1e-9), (True, True, 1e-9),
             (False, True, 1e-9), (True, False, 0.5)]


def _mvn_text(nv, ac, eps):
    return ('type: "MVN" mvn_param { normalize_variance: %s across_channels: %s eps: %r }'
            % (str(nv).lower(), str(ac).lower(), eps))


@pytest.mark.parametrize('nv, ac, eps', MVN_CASES)
def test_mvn_matches_numpy(nv, ac, eps):
    rng = np.random.RandomState(6)
    x, dy = _rand(rng, SHAPE, 2.0), _rand(rng, SHAPE)
    result = run_layer(_mvn_text(nv, ac, eps), [x], top_diffs=[dy])
    y, dx, _ = _mvn_numpy(x.astype(np.float64), dy.astype(np.float64), nv, ac, eps)
    np.testing.assert_allclose(result['tops'][0], y, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result['bottom_diffs'][0], dx, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('nv, ac, eps', MVN_CASES[:4])
def test_mvn_gradient_finite_differences(nv, ac, eps):
    """With a negligible eps Caffe's backward is the exact gradient."""
    check_gradient(_mvn_text(nv, ac, eps), [_rand(np.random.RandomState(7), (2, 2, 2, 3),
                                                  2.0)])


def test_mvn_takes_legacy_shapes():
    """Caffe reshapes the top with num/channels/height/width: (N, C) becomes (N, C, 1, 1)."""
    x = _rand(np.random.RandomState(8), (3, 4), 2.0)
    result = run_layer('type: "MVN" mvn_param { across_channels: true }', [x])
    assert result['tops'][0].shape == (3, 4, 1, 1)
    y, _, _ = _mvn_numpy(x.astype(np.float64).reshape(3, 4, 1, 1), np.zeros((3, 4, 1, 1)),
                         True, True, 1e-9)
    np.testing.assert_allclose(result['tops'][0], y, rtol=1e-5, atol=1e-6)
    with pytest.raises(LayerSetupError, match='at most 4 axes'):
        make_layer('type: "MVN"', [np.zeros((1, 2, 1, 2, 2), np.float32)])


def test_mvn_in_place_forward_and_mean_only_backward_are_exact():
    rng = np.random.RandomState(9)
    x, dy = _rand(rng, SHAPE, 2.0), _rand(rng, SHAPE)
    for nv in (True, False):
        text = _mvn_text(nv, False, 1e-9)
        apart = run_layer(text, [x], top_diffs=[dy])
        _, y, dx = _in_place(text, x, dy)
        np.testing.assert_array_equal(y, apart['tops'][0])
        if not nv:
            np.testing.assert_allclose(dx, apart['bottom_diffs'][0], rtol=1e-6, atol=1e-7)


def test_mvn_in_place_backward_follows_caffes_aliased_blas_steps():
    """In place the top diff is the bottom diff that Caffe's steps overwrite: after
    dx = y * dy, dx = y * s + sum(dx) with s = sum(y * dy), and axpby(1, dx, -1/D, dx) as
    scal then axpy, dx = -2 / D * (y * s + s * sum(y)) / (std + eps)."""
    rng = np.random.RandomState(10)
    x, dy = _rand(rng, SHAPE, 2.0), _rand(rng, SHAPE)
    _, y, dx = _in_place(_mvn_text(True, False, 0.25), x, dy)
    groups, dim = SHAPE[0] * SHAPE[1], SHAPE[2] * SHAPE[3]
    _, _, std = _mvn_numpy(x.astype(np.float64), dy, True, False, 0.25)
    yg, dyg = y.reshape(groups, dim), dy.astype(np.float64).reshape(groups, dim)
    s = (yg * dyg).sum(axis=1, keepdims=True)
    expected = -2.0 / dim * (yg * s + s * yg.sum(axis=1, keepdims=True)) / std
    np.testing.assert_allclose(dx, expected.reshape(SHAPE), rtol=1e-4, atol=1e-6)
