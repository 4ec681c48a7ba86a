"""Im2col and SPP (caffe_torch/layer_types/spatial.py) against float64 NumPy loop
transcriptions of Caffe's im2col/col2im and pooling, finite differences and their CHECKs."""
import itertools
import math

import numpy as np
import pytest

from caffe_torch.blob import Blob
from caffe_torch.errors import LayerSetupError
from caffe_torch.layer_factory import create_layer
from layer_check import check_gradient, layer_param, make_layer, run_layer


def _f32(a):
    return np.asarray(a, np.float32)


# -- Im2col --------------------------------------------------------------------------------
def _c_div(a, b):
    return int(a / b)  # C truncates toward zero


def _im2col_numpy(x, kernel, stride, pad, dilation, channel_axis=1):
    """Caffe's im2col_nd_cpu per (batch..., channel) plane; also returns col2im of dy."""
    lead, spatial = x.shape[:channel_axis + 1], x.shape[channel_axis + 1:]
    out = [_c_div(s + 2 * p - (d * (k - 1) + 1), st) + 1
           for s, k, st, p, d in zip(spatial, kernel, stride, pad, dilation)]
    planes = x.reshape((-1,) + spatial)
    cols = np.zeros((planes.shape[0], math.prod(kernel)) + tuple(out))
    sources = {}
    for kidx, koff in enumerate(itertools.product(*[range(k) for k in kernel])):
        for o in itertools.product(*[range(n) for n in out]):
            pos = tuple(oi * st - p + ki * d for oi, st, p, ki, d in
                        zip(o, stride, pad, koff, dilation))
            if all(0 <= q < s for q, s in zip(pos, spatial)):
                cols[(slice(None), kidx) + o] = planes[(slice(None),) + pos]
                sources[(kidx,) + o] = pos
    top_shape = lead[:-1] + (lead[-1] * math.prod(kernel),) + tuple(out)

    def col2im(dy):
        dyc = dy.reshape(cols.shape)
        dx = np.zeros(planes.shape)
        for key, pos in sources.items():
            dx[(slice(None),) + pos] += dyc[(slice(None),) + key]
        return dx.reshape(x.shape)
    return cols.reshape(top_shape), col2im


IM2COL_CASES = [
    ('k3p1', 'pad: 1 kernel_size: 3', (2, 3, 5, 7), (3, 3), (1, 1), (1, 1), (1, 1), 1),
    ('k2s2_odd', 'kernel_size: 2 stride: 2', (2, 3, 5, 7), (2, 2), (2, 2), (0, 0), (1, 1), 1),
    ('dilated', 'pad: 2 kernel_size: 3 dilation: 2', (1, 2, 5, 6), (3, 3), (1, 1), (2, 2),
     (2, 2), 1),
    ('rect', 'pad_h: 1 pad_w: 0 kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 1',
     (2, 3, 5, 7), (3, 2), (2, 1), (1, 0), (1, 1), 1),
    ('per_axis', 'kernel_size: 2 kernel_size: 3 stride: 1 stride: 2 pad: 1 pad: 0',
     (1, 2, 4, 7), (2, 3), (1, 2), (1, 0), (1, 1), 1),
    ('1d', 'kernel_size: 3 stride: 2 pad: 1', (2, 3, 8), (3,), (2,), (1,), (1,), 1),
    ('3d', 'kernel_size: 2 pad: 1 stride: 2 dilation: 1', (1, 2, 3, 4, 3), (2, 2, 2),
     (2, 2, 2), (1, 1, 1), (1, 1, 1), 1),
    ('axis2', 'axis: 2 kernel_size: 2', (2, 3, 2, 4, 5), (2, 2), (1, 1), (0, 0), (1, 1), 2),
    ('truncated', 'kernel_size: 3 stride: 2', (1, 1, 2, 5), (3, 3), (2, 2), (0, 0), (1, 1),
     1),
]


@pytest.mark.parametrize('name, conv, shape, kernel, stride, pad, dilation, axis',
                         IM2COL_CASES, ids=[c[0] for c in IM2COL_CASES])
def test_im2col_matches_caffes_loops(name, conv, shape, kernel, stride, pad, dilation, axis):
    rng = np.random.RandomState(0)
    x = _f32(rng.uniform(-1, 1, shape))
    expected, col2im = _im2col_numpy(x.astype(np.float64), kernel, stride, pad, dilation,
                                     axis)
    dy = _f32(rng.uniform(-1, 1, expected.shape))
    result = run_layer(f'type: "Im2col" convolution_param {{ {conv} }}', [x],
                       top_diffs=[dy])
    assert result['tops'][0].shape == expected.shape
    np.testing.assert_array_equal(result['tops'][0], expected)
    np.testing.assert_allclose(result['bottom_diffs'][0], col2im(dy.astype(np.float64)),
                               rtol=1e-6, atol=1e-6)


def test_im2col_backward_ignores_propagate_down():
    """Caffe's Im2col Backward_cpu never reads propagate_down: when the net calls it (its
    bottom needs backward for another consumer) it writes col2im of the top diff even
    where propagate_down is false."""
    rng = np.random.RandomState(2)
    x = _f32(rng.uniform(-1, 1, (1, 2, 4, 5)))
    _, col2im = _im2col_numpy(x.astype(np.float64), (2, 3), (1, 2), (1, 0), (1, 1))
    dy = _f32(rng.uniform(-1, 1, (1, 12, 5, 2)))
    result = run_layer('type: "Im2col" convolution_param { kernel_h: 2 kernel_w: 3 '
                       'stride_h: 1 stride_w: 2 pad_h: 1 pad_w: 0 }', [x], top_diffs=[dy],
                       propagate_down=[False])
    np.testing.assert_allclose(result['bottom_diffs'][0], col2im(dy.astype(np.float64)),
                               rtol=1e-6, atol=1e-6)


def test_im2col_gradient_finite_differences():
    rng = np.random.RandomState(1)
    check_gradient('type: "Im2col" convolution_param { kernel_size: 2 pad: 1 stride: 2 '
                   'dilation: 2 }', [_f32(rng.uniform(-1, 1, (1, 2, 3, 4)))])


def test_im2col_follows_a_reshaped_bottom():
    layer, bottom, top = make_layer('type: "Im2col" convolution_param { kernel_size: 2 }',
                                    [np.zeros((1, 1, 3, 3), np.float32)])
    bottom[0].reshape(1, 1, 2, 4)
    bottom[0].data[...] = np.arange(8).reshape(1, 1, 2, 4)
    layer.run_forward(bottom, top)
    assert top[0].shape == (1, 4, 1, 3)
    np.testing.assert_array_equal(top[0].data[0, :, 0, 0], [0, 1, 4, 5])


@pytest.mark.parametrize('conv, shape, message', [
    ('kernel_size: 2', (2, 3), 'spatial axis'),
    ('kernel_size: 2', (4,), 'axis = 1 is out of range'),
    ('kernel_h: 2 kernel_w: 2', (1, 1, 3, 3, 3), 'only be used for 2-D'),
    ('kernel_size: 2 kernel_h: 2 kernel_w: 2', (1, 1, 3, 3), 'not both'),
    ('', (1, 1, 3, 3), 'kernel_size must be specified once'),
    ('kernel_size: 2 kernel_size: 2 kernel_size: 2', (1, 1, 3, 3), 'specified 3 times'),
    ('kernel_h: 2', (1, 1, 3, 3), 'nonzero'),
    ('kernel_size: 0', (1, 1, 3, 3), 'nonzero'),
    ('kernel_size: 2 stride: 0', (1, 1, 3, 3), 'stride dimensions must be nonzero'),
    ('kernel_size: 2 pad: 1 pad: 1 pad: 1', (1, 1, 3, 3), 'pad must be specified'),
    ('kernel_size: 2 dilation: 1 dilation: 1 dilation: 1', (1, 1, 3, 3), 'dilation'),
    ('kernel_size: 5', (1, 1, 2, 2), 'exceeds the padded size'),
])
def test_im2col_refuses_bad_parameters(conv, shape, message):
    with pytest.raises(LayerSetupError, match=message):
        make_layer(f'type: "Im2col" convolution_param {{ {conv} }}',
                   [np.zeros(shape, np.float32)])


# -- SPP -----------------------------------------------------------------------------------
def _pool_numpy(x, kernel, stride, pad, method, dy=None):
    """Caffe's PoolingLayer Forward/Backward_cpu (MAX: first maximum; AVE: divisor clipped
    at the padded size), for one level; returns (top, bottom diff or None)."""
    num, channels, height, width = x.shape
    pooled = []
    for size, k, s, p in zip((height, width), kernel, stride, pad):
        n = -(-(size + 2 * p - k) // s) + 1
        if p and (n - 1) * s >= size + p:
            n -= 1
        pooled.append(n)
    top = np.zeros((num, channels) + tuple(pooled))
    dx = np.zeros(x.shape)
    for ph, pw in itertools.product(range(pooled[0]), range(pooled[1])):
        hs, ws = ph * stride[0] - pad[0], pw * stride[1] - pad[1]
        he, we = min(hs + kernel[0], height + pad[0]), min(ws + kernel[1], width + pad[1])
        size = (he - hs) * (we - ws)
        hs, ws, he, we = max(hs, 0), max(ws, 0), min(he, height), min(we, width)
        window = x[:, :, hs:he, ws:we].reshape(num, channels, -1)
        if method == 'MAX':
            arg = window.argmax(axis=2)
            top[:, :, ph, pw] = window.max(axis=2)
            if dy is not None:
                for n, c in itertools.product(range(num), range(channels)):
                    r, q = divmod(int(arg[n, c]), we - ws)
                    dx[n, c, hs + r, ws + q] += dy[n, c, ph, pw]
        else:
            top[:, :, ph, pw] = window.sum(axis=2) / size
            if dy is not None:
                dx[:, :, hs:he, ws:we] += (dy[:, :, ph, pw] / size)[:, :, None, None]
    return top, (dx if dy is not None else None)


def _spp_numpy(x, height, method, dy):
    """Caffe's SPP: level l pools with kernel = stride = ceil(size / 2^l) and pad =
    (kernel * 2^l - size + 1) / 2, then flattens and concatenates the levels."""
    tops, dx, offset = [], np.zeros(x.shape), 0
    for level in range(height):
        bins = 2 ** level
        kernel = [-(-s // bins) for s in x.shape[2:]]
        pad = [(k * bins - s + 1) // 2 for k, s in zip(kernel, x.shape[2:])]
        shape_top, _ = _pool_numpy(x, kernel, kernel, pad, method)
        size = shape_top[0].size
        level_dy = None
        if dy is not None:
            flat_dy = dy.reshape(x.shape[0], -1)[:, offset:offset + size]
            level_dy = flat_dy.reshape(shape_top.shape)
        top, level_dx = _pool_numpy(x, kernel, kernel, pad, method, level_dy)
        tops.append(top.reshape(x.shape[0], -1) if height > 1 else top)
        if dy is not None:
            dx += level_dx
        offset += size
    return (np.concatenate(tops, axis=1) if height > 1 else tops[0]), dx


SPP_CASES = [('MAX', 2, (2, 3, 6, 5)), ('MAX', 3, (2, 3, 7, 9)), ('AVE', 3, (2, 3, 7, 9)),
             ('AVE', 1, (2, 3, 7, 9)), ('MAX', 1, (1, 2, 4, 3)), ('AVE', 2, (1, 2, 8, 8))]


@pytest.mark.parametrize('method, height, shape', SPP_CASES)
def test_spp_matches_numpy_pyramid(method, height, shape):
    rng = np.random.RandomState(2)
    x = _f32(rng.permutation(np.prod(shape)).reshape(shape) / 10.0 - 3)  # distinct values
    expected, _ = _spp_numpy(x.astype(np.float64), height, method, None)
    dy = _f32(rng.uniform(-1, 1, expected.shape))
    _, dx = _spp_numpy(x.astype(np.float64), height, method, dy.astype(np.float64))
    text = f'type: "SPP" spp_param {{ pyramid_height: {height} pool: {method} }}'
    result = run_layer(text, [x], top_diffs=[dy])
    assert result['tops'][0].shape == expected.shape
    bins = sum(4 ** level for level in range(height))
    assert expected.shape == ((shape[0], shape[1] * bins) if height > 1
                              else (shape[0], shape[1], 1, 1))
    np.testing.assert_allclose(result['tops'][0], expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(result['bottom_diffs'][0], dx, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('method', ['MAX', 'AVE'])
def test_spp_gradient_finite_differences(method):
    shape = (1, 2, 4, 5)
    x = _f32(np.random.RandomState(3).permutation(40).reshape(shape) / 4.0)
    check_gradient(f'type: "SPP" spp_param {{ pyramid_height: 2 pool: {method} }}', [x])


def test_spp_rebuilds_its_pyramid_for_a_new_bottom_size():
    """The top length depends on C and the pyramid only; pooling follows h and w."""
    text = 'type: "SPP" spp_param { pyramid_height: 2 pool: AVE }'
    layer, bottom, top = make_layer(text, [np.zeros((1, 2, 4, 4), np.float32)])
    bottom[0].reshape(1, 2, 6, 3)
    x = _f32(np.random.RandomState(4).uniform(-1, 1, (1, 2, 6, 3)))
    bottom[0].data[...] = x
    layer.run_forward(bottom, top)
    expected, _ = _spp_numpy(x.astype(np.float64), 2, 'AVE', None)
    assert top[0].shape == (1, 10)
    np.testing.assert_allclose(top[0].data, expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize('spp, shape, message', [
    ('pyramid_height: 0', (1, 1, 4, 4), 'pyramid_height must be at least 1'),
    ('pyramid_height: 2 pool: STOCHASTIC', (1, 1, 4, 4), 'STOCHASTIC'),
    ('pyramid_height: 2', (1, 4, 4), '4 axes'),
    ('pyramid_height: 2', (1, 1, 0, 4), 'cannot be zero'),
    ('pyramid_height: 3', (1, 1, 5, 8), 'pyramid level 2'),  # 4 bins over 5: pad 2 = kernel
])
def test_spp_refuses_bad_parameters(spp, shape, message):
    with pytest.raises(LayerSetupError, match=message):
        make_layer(f'type: "SPP" spp_param {{ {spp} }}', [np.zeros(shape, np.float32)])


def test_im2col_in_place_only_when_the_shape_is_kept():
    """A 1 x 1 kernel keeps the shape (and the data); anything else would reshape the
    bottom under the layer's own reads."""
    blob = Blob((1, 2, 3, 3))
    blob.data[...] = np.arange(18).reshape(1, 2, 3, 3)
    layer = create_layer(layer_param('type: "Im2col" convolution_param { kernel_size: 1 }'))
    layer.set_up([blob], [blob])
    layer.run_forward([blob], [blob])
    np.testing.assert_array_equal(blob.data, np.arange(18).reshape(1, 2, 3, 3))
    layer = create_layer(layer_param('type: "Im2col" convolution_param { kernel_size: 2 }'))
    with pytest.raises(LayerSetupError, match='in place'):
        layer.set_up([blob], [blob])


def test_spp_refuses_in_place():
    layer = create_layer(layer_param('type: "SPP" spp_param { pyramid_height: 2 }'))
    blob = Blob((1, 1, 4, 4))
    with pytest.raises(LayerSetupError, match='in place'):
        layer.set_up([blob], [blob])
