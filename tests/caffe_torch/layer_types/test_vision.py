"""Vision layers (Convolution, Deconvolution, Pooling, LRN, Crop) against NumPy references.

The references are float64 transcriptions of Caffe's formulas and loops (pooling_layer.cpp
line by line), written here independently of the implementation.
"""
import itertools

import numpy as np
import pytest

from caffe_torch.blob import Blob
from caffe_torch.errors import LayerSetupError
from layer_check import check_gradient, make_layer, np_conv, run_layer

FLT_MAX = float(np.finfo(np.float32).max)


def rand(rng, *shape):
    return rng.uniform(-1, 1, shape).astype(np.float32)


# -- NumPy references -----------------------------------------------------------------------
def np_deconv(x, w, b, stride, pad, dilation, group):
    """Transposed convolution: every input pixel scatters its kernel-weighted value."""
    nsp = x.ndim - 2
    cg, og = x.shape[1] // group, w.shape[1]
    kernel, size = w.shape[2:], x.shape[2:]
    full = [s * (n - 1) + d * (k - 1) + 1 for s, n, d, k in zip(stride, size, dilation, kernel)]
    y = np.zeros((x.shape[0], og * group) + tuple(full))
    for off in itertools.product(*[range(k) for k in kernel]):
        window = tuple(slice(o * d, o * d + s * (n - 1) + 1, s)
                       for o, d, s, n in zip(off, dilation, stride, size))
        for g in range(group):
            tap = w[(slice(g * cg, (g + 1) * cg), slice(None)) + off].astype(np.float64)
            y[(slice(None), slice(g * og, (g + 1) * og)) + window] += np.einsum(
                'nc...,co->no...', x[:, g * cg:(g + 1) * cg].astype(np.float64), tap)
    y = y[(slice(None), slice(None)) + tuple(slice(p, f - p) for p, f in zip(pad, full))]
    if b is not None:
        y += b.reshape((1, -1) + (1,) * nsp)
    return y


def caffe_pooled_size(size, k, p, s, floor=False, any_pad=None):
    """Caffe clips the last window on both axes when pad_h or pad_w is nonzero."""
    q = np.float32(size + 2 * p - k) / np.float32(s)
    pooled = int(np.floor(q) if floor else np.ceil(q)) + 1
    if (p if any_pad is None else any_pad) and (pooled - 1) * s >= size + p:
        pooled -= 1
    return pooled


def caffe_pool(x, top_diff_fn, ave, kh, kw, ph_, pw_, sh, sw, floor=False):
    """pooling_layer.cpp Forward_cpu/Backward_cpu as loops; None where Caffe is invalid."""
    N, C, H, W = x.shape
    PH = caffe_pooled_size(H, kh, ph_, sh, floor, bool(ph_ or pw_))
    PW = caffe_pooled_size(W, kw, pw_, sw, floor, bool(ph_ or pw_))
    if PH < 1 or PW < 1:
        return None
    top = np.zeros((N, C, PH, PW)) if ave else np.full((N, C, PH, PW), -FLT_MAX)
    mask = np.full((N, C, PH, PW), -1)
    sizes = np.zeros((PH, PW))
    for n, c, ph, pw in itertools.product(range(N), range(C), range(PH), range(PW)):
        hstart, wstart = ph * sh - ph_, pw * sw - pw_
        hend = min(hstart + kh, H + ph_ if ave else H)
        wend = min(wstart + kw, W + pw_ if ave else W)
        sizes[ph, pw] = (hend - hstart) * (wend - wstart)
        hstart, wstart, hend, wend = max(hstart, 0), max(wstart, 0), min(hend, H), min(wend, W)
        if hstart >= hend or wstart >= wend:
            return None  # a window with no bottom element: Caffe outputs garbage
        for h in range(hstart, hend):
            for w in range(wstart, wend):
                if ave:
                    top[n, c, ph, pw] += x[n, c, h, w]
                elif x[n, c, h, w] > top[n, c, ph, pw]:
                    top[n, c, ph, pw], mask[n, c, ph, pw] = x[n, c, h, w], h * W + w
        if ave:
            top[n, c, ph, pw] /= sizes[ph, pw]
    dy = top_diff_fn(top.shape)
    dx = np.zeros((N, C, H * W))
    for n, c, ph, pw in itertools.product(range(N), range(C), range(PH), range(PW)):
        if not ave:
            dx[n, c, mask[n, c, ph, pw]] += dy[n, c, ph, pw]
            continue
        hstart, wstart = ph * sh - ph_, pw * sw - pw_
        hend, wend = min(hstart + kh, H + ph_), min(wstart + kw, W + pw_)
        for h in range(max(hstart, 0), min(hend, H)):
            for w in range(max(wstart, 0), min(wend, W)):
                dx[n, c, h * W + w] += dy[n, c, ph, pw] / sizes[ph, pw]
    return top, mask, dy, dx.reshape(x.shape)


def np_lrn(x, size, alpha, beta, k, within):
    """Caffe's LRN: across channels directly; within as Power, AVE Pooling, Power, Prod."""
    x = x.astype(np.float64)
    half = (size - 1) // 2
    if within:
        pooled = caffe_pool(x * x, np.zeros, True, size, size, half, half, 1, 1)[0]
        return x * (1 + alpha * pooled) ** -beta
    scale = np.full(x.shape, float(k))
    for c in range(x.shape[1]):
        lo, hi = max(0, c - half), min(x.shape[1], c + half + 1)
        scale[:, c] += alpha / size * np.sum(x[:, lo:hi] ** 2, axis=1)
    return x * scale ** -beta


def numeric_bottom_grad(fn, x, top_diff, step=1e-6):
    """d sum(fn(x) * top_diff) / dx by central differences in float64."""
    x = x.astype(np.float64)
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        saved = x[i]
        x[i] = saved + step
        plus = np.sum(fn(x) * top_diff)
        x[i] = saved - step
        minus = np.sum(fn(x) * top_diff)
        x[i] = saved
        grad[i] = (plus - minus) / (2 * step)
    return grad


def conv_text(kind='Convolution', **fields):
    body = ' '.join(f'{k}: {v}' for k, v in fields.items())
    return f'type: "{kind}" convolution_param {{ {body} }}'


def pool_text(body):
    return f'type: "Pooling" pooling_param {{ {body} }}'


# -- Convolution ----------------------------------------------------------------------------
CONV_CASES = [
    # (bottom shape, fields, stride, pad, dilation, group)
    ((2, 3, 9, 11), dict(num_output=4, kernel_size=3, pad=1), (1, 1), (1, 1), (1, 1), 1),
    ((2, 3, 9, 11), dict(num_output=5, kernel_size=3, stride=2), (2, 2), (0, 0), (1, 1), 1),
    ((1, 3, 9, 11), dict(num_output=4, kernel_size=3, pad=2, dilation=2), (1, 1), (2, 2),
     (2, 2), 1),
    ((1, 4, 7, 8), dict(num_output=6, kernel_size=3, group=2), (1, 1), (0, 0), (1, 1), 2),
    ((1, 3, 9, 11), dict(num_output=2, kernel_h=3, kernel_w=2, stride_h=2, stride_w=1,
                         pad_h=1, pad_w=0), (2, 1), (1, 0), (1, 1), 1),
    ((1, 2, 3, 4), dict(num_output=3, kernel_size=3, pad=10), (1, 1), (10, 10), (1, 1), 1),
]


@pytest.mark.parametrize('shape, fields, stride, pad, dilation, group', CONV_CASES)
def test_conv_forward_matches_numpy(shape, fields, stride, pad, dilation, group):
    """Convolution top equals the NumPy grouped, strided, padded, dilated convolution."""
    rng = np.random.RandomState(0)
    x = rand(rng, *shape)
    layer = make_layer(conv_text(**fields), [x])[0]
    w, b = rand(rng, *layer.blobs[0].shape), rand(rng, *layer.blobs[1].shape)
    out = run_layer(conv_text(**fields), [x], params=[w, b])['tops'][0]
    np.testing.assert_allclose(out, np_conv(x, w, b, stride, pad, dilation, group),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('shape, kernel, stride, pad', [
    ((2, 3, 7), 3, 2, 1), ((1, 2, 4, 5, 3), 2, 1, 1)])
def test_conv_1d_and_3d_match_numpy(shape, kernel, stride, pad):
    """1-D and 3-D spatial convolutions follow the same rule as 2-D."""
    rng = np.random.RandomState(1)
    x = rand(rng, *shape)
    text = conv_text(num_output=2, kernel_size=kernel, stride=stride, pad=pad)
    nsp = len(shape) - 2
    w = rand(rng, 2, shape[1], *(kernel,) * nsp)
    b = rand(rng, 2)
    out = run_layer(text, [x], params=[w, b])['tops'][0]
    expected = np_conv(x, w, b, (stride,) * nsp, (pad,) * nsp, (1,) * nsp, 1)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_conv_axis_flattens_leading_axes_into_batch():
    """With axis 2 the axes before the channels act as one batch axis."""
    rng = np.random.RandomState(2)
    x = rand(rng, 2, 3, 4, 5, 6)
    w, b = rand(rng, 3, 4, 3, 3), rand(rng, 3)
    out = run_layer(conv_text(num_output=3, kernel_size=3, axis=2), [x], params=[w, b])
    expected = np_conv(x.reshape(6, 4, 5, 6), w, b, (1, 1), (0, 0), (1, 1), 1)
    np.testing.assert_allclose(out['tops'][0], expected.reshape(2, 3, 3, 3, 4), rtol=1e-5,
                               atol=1e-5)


def test_conv_weight_and_bias_shapes():
    """Conv weights are (num_output, C/group, k...), deconv (C, num_output/group, k...)."""
    x = np.zeros((1, 6, 5, 5), np.float32)
    conv, _, _ = make_layer(conv_text(num_output=4, kernel_h=3, kernel_w=2, group=2), [x])
    deconv, _, _ = make_layer(conv_text('Deconvolution', num_output=4, kernel_size=3,
                                        group=2), [x])
    assert [b.shape for b in conv.blobs] == [(4, 3, 3, 2), (4,)]
    assert [b.shape for b in deconv.blobs] == [(6, 2, 3, 3), (4,)]


@pytest.mark.parametrize('kind, fields, shape', [
    ('Convolution', dict(num_output=4, kernel_size=3, group=2, stride=2, pad=1), (1, 4, 5, 4)),
    ('Convolution', dict(num_output=2, kernel_size=2, dilation=2), (2, 1, 4, 4)),
    ('Convolution', dict(num_output=2, kernel_size=2, stride=2), (1, 2, 5)),
    ('Deconvolution', dict(num_output=4, kernel_size=3, group=2, stride=2, pad=1),
     (1, 4, 3, 2)),
    ('Deconvolution', dict(num_output=2, kernel_size=2, dilation=2, stride=2), (2, 1, 2, 3)),
])
def test_conv_deconv_gradients(kind, fields, shape):
    """Bottom, weight and bias diffs agree with finite differences."""
    rng = np.random.RandomState(3)
    layer, _, _ = make_layer(conv_text(kind, **fields), [np.zeros(shape, np.float32)])
    params = [rand(rng, *b.shape) for b in layer.blobs]
    check_gradient(conv_text(kind, **fields), [rand(rng, *shape)], params=params)


def test_conv_two_bottoms_share_weights():
    """Each bottom/top pair uses the same weights and the weight diffs of both add up."""
    rng = np.random.RandomState(4)
    x0, x1 = rand(rng, 1, 2, 5, 5), rand(rng, 1, 2, 5, 5)
    w, b = rand(rng, 3, 2, 3, 3), rand(rng, 3)
    d0, d1 = rand(rng, 1, 3, 3, 3), rand(rng, 1, 3, 3, 3)
    text = conv_text(num_output=3, kernel_size=3)
    both = run_layer(text, [x0, x1], params=[w, b], top_diffs=[d0, d1], ntop=2)
    one = [run_layer(text, [x], params=[w, b], top_diffs=[d]) for x, d in ((x0, d0), (x1, d1))]
    for i in range(2):
        np.testing.assert_allclose(both['tops'][i], one[i]['tops'][0], rtol=1e-6)
        np.testing.assert_allclose(both['bottom_diffs'][i], one[i]['bottom_diffs'][0],
                                   rtol=1e-6)
        np.testing.assert_allclose(both['param_diffs'][i], one[0]['param_diffs'][i]
                                   + one[1]['param_diffs'][i], rtol=1e-5)


def test_conv_param_diffs_accumulate_and_respect_flags():
    """Weight diffs add up across backward calls; a param or bottom switched off is left."""
    rng = np.random.RandomState(5)
    text = conv_text(num_output=2, kernel_size=2)
    layer, bottom, top = make_layer(text, [rand(rng, 1, 1, 3, 3)])
    layer.run_forward(bottom, top)
    top[0].diff[...] = rand(rng, *top[0].shape)
    layer.run_backward(top, [True], bottom)
    once = [b.diff.copy() for b in layer.blobs]
    layer.run_backward(top, [True], bottom)
    np.testing.assert_allclose(layer.blobs[0].diff, 2 * once[0], rtol=1e-6)
    layer.param_propagate_down = [False, True]
    bottom[0].diff[...] = 7
    layer.run_backward(top, [False], bottom)
    np.testing.assert_allclose(layer.blobs[0].diff, 2 * once[0], rtol=1e-6)
    np.testing.assert_allclose(layer.blobs[1].diff, 3 * once[1], rtol=1e-6)
    assert np.all(bottom[0].diff == 7)


def test_conv_reads_weights_from_blobs_at_each_forward():
    """A parameter blob replaced after set-up (as Net sharing does) is used by forward."""
    rng = np.random.RandomState(6)
    x = rand(rng, 1, 2, 4, 4)
    text = conv_text(num_output=1, kernel_size=3, bias_term='false')
    layer, bottom, top = make_layer(text, [x])
    shared = Blob((1, 2, 3, 3))
    shared.data[...] = rand(rng, 1, 2, 3, 3)
    layer.blobs[0] = shared
    layer.run_forward(bottom, top)
    expected = np_conv(x, shared.data, None, (1, 1), (0, 0), (1, 1), 1)
    np.testing.assert_allclose(top[0].data, expected, rtol=1e-5, atol=1e-6)


def test_conv_fillers_fill_weights_and_bias():
    """weight_filler and bias_filler set the parameter blobs at set-up."""
    text = ('type: "Convolution" convolution_param { num_output: 2 kernel_size: 1 '
            'weight_filler { type: "constant" value: 0.5 } '
            'bias_filler { type: "constant" value: -2 } }')
    layer, _, _ = make_layer(text, [np.zeros((1, 3, 2, 2), np.float32)])
    assert np.all(layer.blobs[0].data == 0.5) and np.all(layer.blobs[1].data == -2)


# -- Deconvolution --------------------------------------------------------------------------
DECONV_CASES = [
    ((2, 3, 4, 5), dict(num_output=2, kernel_size=3, stride=2, pad=1), (2, 2), (1, 1), (1, 1), 1),
    ((1, 2, 3, 3), dict(num_output=2, kernel_size=16, stride=8), (8, 8), (0, 0), (1, 1), 1),
    ((1, 4, 3, 4), dict(num_output=6, kernel_size=4, stride=2, group=2), (2, 2), (0, 0),
     (1, 1), 2),
    ((1, 2, 3, 4), dict(num_output=3, kernel_h=3, kernel_w=2, stride_h=1, stride_w=3,
                        dilation=2), (1, 3), (0, 0), (2, 2), 1),
    # the CPU's by-phases path: FCN's k = 2 s at every stride, kernels not a multiple of the
    # stride, pads of their own per axis, groups, batches
    ((1, 3, 2, 3), dict(num_output=3, kernel_size=64, stride=32), (32, 32), (0, 0), (1, 1), 1),
    ((1, 3, 4, 3), dict(num_output=2, kernel_size=32, stride=16, pad=8), (16, 16), (8, 8),
     (1, 1), 1),
    ((2, 3, 4, 3), dict(num_output=4, kernel_size=5, stride=2, pad_h=1, pad_w=2), (2, 2),
     (1, 2), (1, 1), 1),
    ((2, 4, 3, 3), dict(num_output=4, kernel_size=6, stride=3, group=4), (3, 3), (0, 0),
     (1, 1), 4),
    # a kernel smaller than its stride leaves gaps of zeros (+ bias); k = s with a pad
    ((1, 2, 3, 4), dict(num_output=3, kernel_size=2, stride=3), (3, 3), (0, 0), (1, 1), 1),
    ((1, 2, 3, 4), dict(num_output=2, kernel_size=3, stride=3, pad=1), (3, 3), (1, 1),
     (1, 1), 1),
]


@pytest.mark.parametrize('shape, fields, stride, pad, dilation, group', DECONV_CASES)
def test_deconv_forward_matches_numpy(shape, fields, stride, pad, dilation, group):
    """Deconvolution top equals the NumPy scatter of kernel-weighted bottom pixels."""
    rng = np.random.RandomState(7)
    x = rand(rng, *shape)
    text = conv_text('Deconvolution', **fields)
    layer, _, _ = make_layer(text, [x])
    w, b = rand(rng, *layer.blobs[0].shape), rand(rng, *layer.blobs[1].shape)
    out = run_layer(text, [x], params=[w, b])['tops'][0]
    np.testing.assert_allclose(out, np_deconv(x, w, b, stride, pad, dilation, group),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('factor', [2, 4])
def test_deconv_bilinear_group_is_bilinear_upsampling(factor):
    """Bilinear-filled deconv with group = C interpolates each channel on the interior."""
    rng = np.random.RandomState(8)
    channels, height, width = 3, 4, 5
    x = rand(rng, 1, channels, height, width)
    text = conv_text('Deconvolution', num_output=channels, group=channels, bias_term='false',
                     kernel_size=2 * factor, stride=factor) \
        .replace('}', 'weight_filler { type: "bilinear" } }', 1)
    out = run_layer(text, [x])['tops'][0][0]
    # Output pixel y samples the input at t = (y + 0.5) / f - 1 (kernel 2f, stride f).
    ty = (np.arange(out.shape[1]) + 0.5) / factor - 1
    tx = (np.arange(out.shape[2]) + 0.5) / factor - 1
    rows = np.flatnonzero((ty >= 0) & (ty <= height - 1))
    cols = np.flatnonzero((tx >= 0) & (tx <= width - 1))
    for c in range(channels):
        for yy in rows:
            for xx in cols:
                i0, j0 = min(int(ty[yy]), height - 2), min(int(tx[xx]), width - 2)
                a, b = ty[yy] - i0, tx[xx] - j0
                patch = x[0, c, i0:i0 + 2, j0:j0 + 2].astype(np.float64)
                expected = ((1 - a) * (1 - b) * patch[0, 0] + (1 - a) * b * patch[0, 1]
                            + a * (1 - b) * patch[1, 0] + a * b * patch[1, 1])
                assert abs(out[c, yy, xx] - expected) < 1e-6


# -- Convolution errors ---------------------------------------------------------------------
@pytest.mark.parametrize('fields, shape, match', [
    (dict(num_output=2, kernel_size=3, kernel_h=3), (1, 1, 5, 5), 'not both'),
    (dict(num_output=2, kernel_h=3, kernel_w=3), (1, 1, 5, 5, 5), 'only be used for 2-D'),
    (dict(num_output=2, kernel_size='2 kernel_size: 3'), (1, 1, 5, 5, 5), 'once per spatial'),
    (dict(num_output=2), (1, 1, 5, 5), 'kernel_size must be given'),
    (dict(num_output=2, kernel_h=3), (1, 1, 5, 5), 'kernel must be positive'),
    (dict(num_output=2, kernel_size=3, stride=0), (1, 1, 5, 5), 'stride must be positive'),
    (dict(num_output=0, kernel_size=3), (1, 1, 5, 5), 'num_output must be positive'),
    (dict(num_output=2, kernel_size=3, group=2), (1, 3, 5, 5), 'group 2 must divide'),
    (dict(num_output=3, kernel_size=3, group=2), (1, 4, 5, 5), 'group 2 must divide'),
    (dict(num_output=2, kernel_size=1), (1, 1, 2, 2, 2, 2), 'supports 1 to 3 spatial'),
    (dict(num_output=2, kernel_size=1, axis=4), (1, 1, 2, 2), 'out of range'),
    (dict(num_output=2, kernel_size=5), (1, 1, 3, 6), 'kernel extent 5 exceeds'),
])
def test_catch_conv_bad_params(fields, shape, match):
    """Bad convolution parameters fail at set-up with a message naming the fix."""
    with pytest.raises(LayerSetupError, match=match):
        make_layer(conv_text(**fields), [np.zeros(shape, np.float32)])


def test_catch_deconv_nonpositive_output():
    """A deconvolution whose padding eats the whole output fails with the formula."""
    with pytest.raises(LayerSetupError, match='is not positive'):
        make_layer(conv_text('Deconvolution', num_output=1, kernel_size=1, pad=1),
                   [np.zeros((1, 1, 1, 1), np.float32)])


def test_catch_conv_channel_mismatch():
    """A bottom whose channel count changed after set-up is refused with both counts."""
    layer, bottom, top = make_layer(conv_text(num_output=2, kernel_size=1),
                                    [np.zeros((1, 3, 4, 4), np.float32)])
    bottom[0].reshape(1, 4, 4, 4)
    with pytest.raises(LayerSetupError, match='4 channels .* expect 3'):
        layer.run_forward(bottom, top)


def test_catch_conv_bottoms_of_different_shapes():
    """All bottoms of a convolution must share one shape."""
    with pytest.raises(LayerSetupError, match='same shape'):
        make_layer(conv_text(num_output=2, kernel_size=1),
                   [np.zeros((1, 3, 4, 4), np.float32), np.zeros((1, 3, 4, 5), np.float32)],
                   ntop=2)


def test_catch_conv_bottom_top_count():
    """Convolution needs as many tops as bottoms."""
    with pytest.raises(LayerSetupError, match='as many tops as bottoms'):
        make_layer(conv_text(num_output=2, kernel_size=1),
                   [np.zeros((1, 3, 4, 4), np.float32)] * 2, ntop=1)


def test_catch_conv_replaced_weight_of_wrong_shape():
    """A parameter blob swapped for one of the wrong shape is refused at forward."""
    layer, bottom, top = make_layer(conv_text(num_output=2, kernel_size=1),
                                    [np.zeros((1, 3, 4, 4), np.float32)])
    layer.blobs[0] = Blob((2, 4, 1, 1))
    with pytest.raises(LayerSetupError, match='expected'):
        layer.run_forward(bottom, top)


# -- Pooling --------------------------------------------------------------------------------
def _pool_sweep():
    # Pads up to kernel - 1 take both code paths: torch's kernels (2 pad <= kernel) and
    # the framed fallback Caffe's wider padding needs.
    for size, k, s, p in itertools.product(range(1, 8), range(2, 5), range(1, 4), range(4)):
        if p < k:
            yield size, k, s, p


@pytest.mark.parametrize('ave', [False, True])
def test_pool_ceil_edge_cases_match_caffe_loops(ave):
    """Sizes 1..7, kernels 2..4, strides 1..3, pads below the kernel: tops, mask, diffs."""
    rng = np.random.RandomState(9)
    for size, k, s, p in _pool_sweep():
        width = 8 - size
        # Small integers make ties common, so MAX's first-maximum rule is exercised.
        x = rng.randint(0, 3, (2, 2, size, width)).astype(np.float32)
        ref = caffe_pool(x, lambda shape: rng.uniform(-1, 1, shape).astype(np.float32),
                         ave, k, k, p, p, s, s)
        text = pool_text(f'pool: {"AVE" if ave else "MAX"} kernel_size: {k} stride: {s} '
                         f'pad: {p}')
        if ref is None:
            with pytest.raises(LayerSetupError):
                make_layer(text, [x], ntop=1 if ave else 2)
            continue
        top, mask, dy, dx = ref
        out = run_layer(text, [x], top_diffs=[dy, None], ntop=1 if ave else 2)
        where = f'size {size}x{width} k {k} s {s} p {p}'
        assert out['tops'][0].shape == top.shape, where
        np.testing.assert_allclose(out['tops'][0], top, rtol=1e-6, err_msg=where)
        if not ave:
            np.testing.assert_array_equal(out['tops'][1], mask, err_msg=where)
        np.testing.assert_allclose(out['bottom_diffs'][0], dx, rtol=1e-5, atol=1e-6,
                                   err_msg=where)


@pytest.mark.parametrize('ave', [False, True])
def test_pool_rect_and_floor_match_caffe_loops(ave):
    """kernel_h/_w, stride_h/_w, pad_h/_w and round_mode FLOOR follow pooling_layer.cpp."""
    rng = np.random.RandomState(10)
    x = rand(rng, 2, 3, 9, 11)
    for floor in (False, True):
        body = (f'pool: {"AVE" if ave else "MAX"} kernel_h: 3 kernel_w: 2 stride_h: 2 '
                f'stride_w: 3 pad_h: 1 pad_w: 0 round_mode: {"FLOOR" if floor else "CEIL"}')
        top, _, dy, dx = caffe_pool(x, lambda shape: rand(rng, *shape), ave, 3, 2, 1, 0, 2, 3,
                                    floor)
        out = run_layer(pool_text(body), [x], top_diffs=[dy])
        np.testing.assert_allclose(out['tops'][0], top, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(out['bottom_diffs'][0], dx, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize('ave', [False, True])
@pytest.mark.parametrize('pad_h', [1, 2])
def test_pool_pad_on_one_axis_clips_the_other(ave, pad_h):
    """pad_h > 0 with pad_w 0: Caffe drops a last W window starting past the bottom too
    (it clips whenever pad_h || pad_w), so stride_w > kernel_w pools W = 4 into 2."""
    rng = np.random.RandomState(13)
    x = rand(rng, 1, 2, 5, 4)
    body = (f'pool: {"AVE" if ave else "MAX"} kernel_h: 3 kernel_w: 1 stride_h: 2 '
            f'stride_w: 2 pad_h: {pad_h} pad_w: 0')
    top, _, dy, dx = caffe_pool(x, lambda shape: rand(rng, *shape), ave, 3, 1, pad_h, 0, 2,
                                2)
    assert top.shape == (1, 2, 3 if pad_h == 1 else 4, 2)
    out = run_layer(pool_text(body), [x], top_diffs=[dy])
    np.testing.assert_allclose(out['tops'][0], top, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(out['bottom_diffs'][0], dx, rtol=1e-5, atol=1e-7)


def test_pool_global_is_mean_and_max():
    """Global pooling gives the per-channel mean (AVE) and maximum (MAX)."""
    rng = np.random.RandomState(11)
    x = rand(rng, 2, 3, 5, 7)
    ave = run_layer(pool_text('pool: AVE global_pooling: true'), [x])['tops'][0]
    top = run_layer(pool_text('pool: MAX global_pooling: true'), [x])['tops'][0]
    np.testing.assert_allclose(ave[..., 0, 0], x.mean(axis=(2, 3)), rtol=1e-5)
    np.testing.assert_allclose(top[..., 0, 0], x.max(axis=(2, 3)), rtol=0)


def test_pool_max_backward_follows_the_mask_top():
    """MAX backward routes each top diff to the index in the mask top, as Caffe reads it."""
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    layer, bottom, top = make_layer(pool_text('pool: MAX kernel_size: 2 stride: 2'), [x], ntop=2)
    layer.run_forward(bottom, top)
    np.testing.assert_array_equal(top[1].data.ravel(), [5, 7, 13, 15])
    top[0].diff[...] = 1
    top[1].data[0, 0, 0, 0] = 0
    layer.run_backward(top, [True], bottom)
    assert bottom[0].diff.ravel()[0] == 1 and bottom[0].diff.ravel()[5] == 0


@pytest.mark.parametrize('body', ['pool: AVE kernel_size: 3 stride: 2 pad: 1',
                                  'pool: MAX kernel_size: 3 stride: 2 pad: 1'])
def test_pool_gradient(body):
    """Pooling bottom diffs agree with finite differences (distinct inputs, no ties)."""
    rng = np.random.RandomState(12)
    x = rng.permutation(2 * 5 * 6).reshape(1, 2, 5, 6).astype(np.float32) / 10
    check_gradient(pool_text(body), [x])


@pytest.mark.parametrize('body, match', [
    ('pool: STOCHASTIC kernel_size: 2', 'STOCHASTIC'),
    ('pool: MAX kernel_size: 2 pad: 2', 'smaller than the kernel'),
    ('pool: MAX global_pooling: true kernel_size: 2', 'whole bottom'),
    ('pool: AVE global_pooling: true stride: 2', 'pad 0 and stride 1'),
    ('pool: MAX kernel_size: 2 kernel_h: 2 kernel_w: 2', 'kernel_size, or as both'),
    ('pool: MAX kernel_h: 2', 'kernel_size, or as both'),
    ('pool: MAX kernel_size: 2 pad: 1 pad_h: 1 pad_w: 1', 'not a mix'),
    ('pool: MAX kernel_size: 2 stride_h: 1', 'not a mix'),
    ('pool: MAX kernel_size: 2 stride: 0', 'stride must be positive'),
    ('pool: MAX kernel_size: 0', 'must be positive'),
    ('pool: MAX kernel_size: 2 stride: 3', 'past the bottom'),
    ('pool: MAX kernel_size: 6 stride: 3', 'too small'),
])
def test_catch_pool_bad_params(body, match):
    """Bad pooling parameters fail with a message naming the fix."""
    with pytest.raises(LayerSetupError, match=match):
        make_layer(pool_text(body), [np.zeros((1, 1, 3, 3), np.float32)])


def test_catch_pool_mask_top_for_ave():
    """Only MAX pooling may have a second (mask) top."""
    with pytest.raises(LayerSetupError, match='only MAX pooling'):
        make_layer(pool_text('pool: AVE kernel_size: 2'), [np.zeros((1, 1, 4, 4), np.float32)],
                   ntop=2)


def test_catch_pool_not_4d():
    """Pooling needs a 4-axis bottom."""
    with pytest.raises(LayerSetupError, match='4 axes'):
        make_layer(pool_text('pool: MAX kernel_size: 2'), [np.zeros((1, 4, 4), np.float32)])


# -- LRN ------------------------------------------------------------------------------------
LRN_CASES = [(5, 0.1, 0.75, 1.0, False), (3, 0.5, 0.5, 2.0, False), (1, 0.3, 0.75, 1.5, False),
             (3, 0.1, 0.75, 1.0, True), (5, 0.7, 0.6, 3.0, True)]


def lrn_text(size, alpha, beta, k, within):
    region = 'WITHIN_CHANNEL' if within else 'ACROSS_CHANNELS'
    return (f'type: "LRN" lrn_param {{ local_size: {size} alpha: {alpha} beta: {beta} '
            f'k: {k} norm_region: {region} }}')


@pytest.mark.parametrize('size, alpha, beta, k, within', LRN_CASES)
def test_lrn_matches_numpy_forward_and_backward(size, alpha, beta, k, within):
    """LRN top and bottom diff equal the NumPy formula and its float64 numeric gradient."""
    rng = np.random.RandomState(13)
    x, dy = rand(rng, 2, 4, 3, 5) * 2, rand(rng, 2, 4, 3, 5)
    out = run_layer(lrn_text(size, alpha, beta, k, within), [x], top_diffs=[dy])
    fn = lambda v: np_lrn(v, size, alpha, beta, k, within)  # noqa: E731
    np.testing.assert_allclose(out['tops'][0], fn(x), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(out['bottom_diffs'][0], numeric_bottom_grad(fn, x, dy),
                               rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize('within', [False, True])
def test_lrn_propagate_down_false(within):
    """Caffe's CrossChannelBackward_cpu never reads propagate_down: called with it false
    it still writes the bottom diff; WithinChannelBackward leaves the diff alone."""
    rng = np.random.RandomState(15)
    x, dy = rand(rng, 1, 4, 3, 3) * 2, rand(rng, 1, 4, 3, 3)
    out = run_layer(lrn_text(3, 0.5, 0.75, 2.0, within), [x], top_diffs=[dy],
                    propagate_down=[False])
    if within:
        assert not out['bottom_diffs'][0].any()
        return
    fn = lambda v: np_lrn(v, 3, 0.5, 0.75, 2.0, False)  # noqa: E731
    np.testing.assert_allclose(out['bottom_diffs'][0], numeric_bottom_grad(fn, x, dy),
                               rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize('within', [False, True])
def test_lrn_gradient(within):
    """LRN bottom diffs agree with finite differences through the layer itself."""
    rng = np.random.RandomState(14)
    check_gradient(lrn_text(3, 0.5, 0.75, 1.0, within), [rand(rng, 1, 4, 3, 3)])


def test_catch_lrn_even_local_size():
    """LRN's local_size must be odd."""
    with pytest.raises(LayerSetupError, match='odd'):
        make_layer(lrn_text(4, 1, 0.75, 1, False), [np.zeros((1, 4, 3, 3), np.float32)])


def test_catch_lrn_not_4d():
    """LRN needs a 4-axis bottom."""
    with pytest.raises(LayerSetupError, match='4 axes'):
        make_layer(lrn_text(3, 1, 0.75, 1, False), [np.zeros((4, 3, 3), np.float32)])


# -- Crop -----------------------------------------------------------------------------------
@pytest.mark.parametrize('axis, offsets, ref_shape, expected', [
    (2, [1, 3], (1, 2, 5, 6), (slice(None), slice(None), slice(1, 6), slice(3, 9))),
    (1, [1], (2, 2, 4, 5), (slice(None), slice(1, 3), slice(1, 5), slice(1, 6))),
    (-1, [], (9, 9, 9, 4), (slice(None), slice(None), slice(None), slice(0, 4))),
    (0, [0, 1, 2, 3], (1, 2, 3, 4), (slice(0, 1), slice(1, 3), slice(2, 5), slice(3, 7))),
])
def test_crop_forward_and_backward(axis, offsets, ref_shape, expected):
    """Crop takes bottom[0] at the offsets; backward zero-fills and skips bottom[1]."""
    rng = np.random.RandomState(15)
    x, ref = rand(rng, 2, 3, 9, 11), rand(rng, *ref_shape)
    body = ' '.join([f'axis: {axis}'] + [f'offset: {o}' for o in offsets])
    text = f'type: "Crop" crop_param {{ {body} }}'
    layer, bottom, top = make_layer(text, [x, ref])
    layer.run_forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, x[expected])
    top[0].diff[...] = dy = rand(rng, *top[0].shape)
    bottom[0].diff[...] = 5
    bottom[1].diff[...] = 5
    layer.run_backward(top, [True, True], bottom)
    want = np.zeros_like(x)
    want[expected] = dy
    np.testing.assert_array_equal(bottom[0].diff, want)
    assert np.all(bottom[1].diff == 5)


@pytest.mark.parametrize('body, ref_shape, match', [
    ('axis: 2 offset: 5', (1, 3, 5, 6), 'axis 2 is out of bounds: offset 5 \\+ size 5 > '
                                        'bottom\\[0\\] size 9'),
    ('axis: 2 offset: 1 offset: 2 offset: 3', (1, 3, 5, 6), 'one per cropped axis'),
    ('axis: 4', (1, 3, 5, 6), 'out of range'),
    ('axis: 1', (1, 3, 5), 'fewer axes'),
])
def test_catch_crop_errors(body, ref_shape, match):
    """Crops out of bounds, wrong offset counts and bad axes fail with the numbers."""
    with pytest.raises(LayerSetupError, match=match):
        make_layer(f'type: "Crop" crop_param {{ {body} }}',
                   [np.zeros((1, 3, 9, 11), np.float32), np.zeros(ref_shape, np.float32)])


# -- forward-only fast forms (keep_blobs without backward) ----------------------------------
FAST_NET = '''
layer {{ name: "in" type: "Input" top: "data"
        input_param {{ shape {{ dim: 1 dim: 3 dim: {size} dim: {size} }} }} }}
layer {{ name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param {{ num_output: 8 kernel_size: 3 pad: {pad} stride: {stride} }} }}
layer {{ name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }}
layer {{ name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param {{ pool: MAX kernel_size: 2 stride: 2 }} }}
layer {{ name: "fc6" type: "Convolution" bottom: "pool1" top: "fc6"
        convolution_param {{ num_output: 16 kernel_size: {fc_kernel} }} }}
layer {{ name: "relu6" type: "ReLU" bottom: "fc6" top: "fc6" }}
layer {{ name: "fc7" type: "Convolution" bottom: "fc6" top: "fc7"
        convolution_param {{ num_output: 5 kernel_size: 1 }} }}
'''


def _np_pool_max(x):
    n, c, h, w = x.shape
    ph, pw = -(-(h - 2) // 2) + 1, -(-(w - 2) // 2) + 1
    padded = np.full((n, c, 2 * ph, 2 * pw), -np.inf)
    padded[:, :, :h, :w] = x
    return padded.reshape(n, c, ph, 2, pw, 2).max(axis=(3, 5))


@pytest.mark.parametrize('size, pad, stride, fc_kernel', [
    (23, 1, 1, 7),   # fc6's filters (8 x 7 x 7 = 392 taps) over 25 pixels: im2col + gemm
    (30, 0, 2, 3),   # 72 taps over 25 pixels: oneDNN channels-last
    (17, 2, 1, 9)])  # 648 taps over 1 pixel: gemm; pool1 clips its last window
def test_forward_only_fast_forms_match_numpy(size, pad, stride, fc_kernel, tmp_path):
    """With keep_blobs(['fc7']) and no backward, the convolutions run channels-last, by
    im2col + gemm where the filters outweigh the image and with the in-place ReLU applied
    by the convolution, and the pooling channels-last: fc7 equals the float64 NumPy chain
    (rel. 1e-5) and the keep-everything net's (rel. 1e-6), and the in-between blobs are
    freed; forwards after the input grows, and then shrinks below its first size, give the
    new numbers by the same forms (a smaller input's blobs, whose memory is larger than
    they need, take the fresh results too)."""
    import caffe_torch as caffe
    path = tmp_path / 'net.prototxt'
    path.write_text(FAST_NET.format(size=size, pad=pad, stride=stride, fc_kernel=fc_kernel))
    full, lean = caffe.Net(str(path), caffe.TEST), caffe.Net(str(path), caffe.TEST)
    rng = np.random.RandomState(size)
    for name in full.params:
        for a, b in zip(full.params[name], lean.params[name]):
            a.data[...] = b.data[...] = rand(rng, *a.shape)
    lean.keep_blobs(['fc7'])
    for grow in (0, 4, -2):  # the same size, larger, then smaller than at first
        shape = (1, 3, size + grow, size + grow)
        x = rand(rng, *shape)
        for net in (full, lean):
            net.blobs['data'].reshape(*shape)
            net.blobs['data'].data[...] = x
            net.forward()
        p = {name: [b.data for b in blobs] for name, blobs in full.params.items()}
        h = np.maximum(np_conv(x, *p['conv1'], (stride,) * 2, (pad,) * 2, (1, 1), 1), 0)
        h = np.maximum(np_conv(_np_pool_max(h), *p['fc6'], (1, 1), (0, 0), (1, 1), 1), 0)
        want = np_conv(h, *p['fc7'], (1, 1), (0, 0), (1, 1), 1)
        got = lean.blobs['fc7'].data
        assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()
        assert np.abs(got - full.blobs['fc7'].data).max() <= 1e-6 * np.abs(want).max()
        assert all(lean.blobs[name]._data._head is None for name in ('conv1', 'pool1', 'fc6'))
        assert lean.layers[1].applied_relu and lean.layers[4].applied_relu  # fused
    laid_out = {}  # a hook stops the fusion, not the layout: which tops were NHWC
    lean.after_forward(lambda i: laid_out.update(
        {name: lean.blobs[name]._data._nhwc is not None for name in lean.top_names[
            lean._layer_names[i]] if name != 'fc7'}))
    lean.forward()
    one_pixel = lean.blobs['fc6'].shape[2:] == (1, 1)  # both orders at once: kept NCHW
    assert laid_out == {'data': False, 'conv1': True, 'pool1': True, 'fc6': not one_pixel}
    assert not lean.layers[1].applied_relu


def test_gemm_form_is_taken_where_the_filters_outweigh_the_image():
    """The rule behind the im2col + gemm form: 1 x 1 convolutions, and filters with at least
    8 times as many taps as output pixels (VGG's fc6 at 500 x 500: 25088 taps, 256
    pixels); VGG's 3 x 3 layers (4608 taps, 1936 pixels and more) stay with oneDNN."""
    def pays(channels, kernel, size, **fields):
        text = conv_text(num_output=4, kernel_size=kernel, **fields)
        layer = make_layer(text, [np.zeros((1, channels, size, size), np.float32)])[0]
        import torch
        return layer._gemm_pays(torch.zeros(1, channels, size, size))
    assert pays(512, 7, 22) and pays(4096, 1, 16) and pays(8, 1, 100)
    assert not pays(512, 3, 44, pad=1) and not pays(64, 3, 698, pad=1)
    assert not pays(512, 7, 22, group=2) and not pays(512, 7, 22, dilation=2)


@pytest.mark.parametrize('kind', ['Convolution', 'Deconvolution'])
def test_forward_only_relu_after_any_convolution_matches_numpy(kind, tmp_path):
    """An in-place ReLU after a Convolution or a Deconvolution that oneDNN runs (unequal
    strides: not by phases), in a forward-only plan: the ReLU is applied once, by the
    convolution (the ReLU layer then skips), and the top equals NumPy's (rel. 1e-5)."""
    import caffe_torch as caffe
    fields = 'num_output: 4 kernel_size: 3 stride_h: 2 stride_w: 1'
    path = tmp_path / 'net.prototxt'
    path.write_text(f'''
layer {{ name: "in" type: "Input" top: "data"
        input_param {{ shape {{ dim: 1 dim: 3 dim: 9 dim: 8 }} }} }}
layer {{ name: "conv" type: "{kind}" bottom: "data" top: "conv"
        convolution_param {{ {fields} }} }}
layer {{ name: "relu" type: "ReLU" bottom: "conv" top: "conv" }}
layer {{ name: "pool" type: "Pooling" bottom: "conv" top: "out"
        pooling_param {{ pool: MAX kernel_size: 1 stride: 1 }} }}
''')
    net = caffe.Net(str(path), caffe.TEST)
    rng = np.random.RandomState(7)
    x = rand(rng, 1, 3, 9, 8)
    w, b = (rand(rng, *blob.shape) for blob in net.params['conv'])
    net.params['conv'][0].data[...], net.params['conv'][1].data[...] = w, b
    net.blobs['data'].data[...] = x
    net.keep_blobs(['out'])
    assert net.layers[1].fuse_relu
    net.forward()
    reference = np_conv if kind == 'Convolution' else np_deconv
    want = np.maximum(reference(x, w, b, (2, 1), (0, 0), (1, 1), 1), 0)
    np.testing.assert_allclose(net.blobs['out'].data, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('ceil', [True, False])
def test_forward_only_max_pool_matches_caffes_windows(ceil):
    """The forward-only channels-last max pooling (2 x 2 / stride 2: by phases on even sides,
    torch's kernel on odd ones, as VGG's pool2 and pool3 bottoms at 500 x 500) equals
    Caffe's windows: ceil mode clips the last one to the bottom, floor mode drops it."""
    import torch
    from caffe_torch.layer_types.pooling import PoolingLayer
    rng = np.random.RandomState(5)
    for h, w in ((6, 8), (7, 8), (6, 9), (7, 9), (3, 4), (2, 5)):
        x = rand(rng, 2, 5, h, w)
        oh, ow = ((h + 1) // 2, (w + 1) // 2) if ceil else (h // 2, w // 2)
        padded = np.full((2, 5, 2 * oh, 2 * ow), -np.inf, np.float32)
        padded[:, :, :min(h, 2 * oh), :min(w, 2 * ow)] = x[:, :, :2 * oh, :2 * ow]
        want = padded.reshape(2, 5, oh, 2, ow, 2).max(axis=(3, 5))
        got = PoolingLayer._max_channels_last(
            torch.from_numpy(x).contiguous(memory_format=torch.channels_last), [2, 2],
            [2, 2], [0, 0], ceil)
        assert got.is_contiguous(memory_format=torch.channels_last)
        np.testing.assert_array_equal(got.numpy(), want, err_msg=f'{h} x {w}')
