"""Winograd's F(2x2, 3x3) (caffe_torch.winograd) against the float64 convolution, the error
of oneDNN's direct kernel, and the forward-only nets that take it."""
import numpy as np
import pytest
import torch

from caffe_torch import winograd
from layer_check import make_layer, np_conv


def _problem(rng, c, k, h, w, scale=1.0):
    x = rng.uniform(0, scale, (1, c, h, w)).astype(np.float32)  # a rectified bottom
    weight = (rng.normal(0, (2.0 / (9 * c)) ** 0.5, (k, c, 3, 3))).astype(np.float32)
    bias = rng.uniform(-0.1, 0.1, k).astype(np.float32)
    return x, weight, bias


def _channels_last(a):
    return torch.from_numpy(a).contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize('c, k, h, w, pad, relu, with_bias', [
    (5, 7, 8, 8, 1, False, True),     # even sides: whole tiles
    (5, 7, 9, 6, 1, True, True),      # an odd side: the last tile's second row is dropped
    (3, 4, 7, 11, 0, False, False),   # no padding, odd output, no bias
    (6, 2, 5, 4, 2, True, True),      # pad 2: the top is larger than the bottom
    (4, 3, 3, 3, 0, False, True),     # one output pixel
    (8, 16, 1, 2, 1, True, False),    # a bottom smaller than a tile
    (2, 3, 6, 9, (1, 2), False, True)])  # pad_h != pad_w
def test_convolve_matches_the_float64_convolution(c, k, h, w, pad, relu, with_bias):
    """Every size, padding and tile edge: the top equals NumPy's float64 convolution to
    float32 rounding (1e-6 of the top's scale), laid out channels-last, rectified when
    asked."""
    rng = np.random.RandomState(c * 100 + h)
    x, weight, bias = _problem(rng, c, k, h, w)
    bias = bias if with_bias else None
    pad = pad if isinstance(pad, tuple) else (pad, pad)
    want = np_conv(x, weight, bias, (1, 1), pad, (1, 1), 1)
    if relu:
        want = np.maximum(want, 0)
    got = winograd.convolve(_channels_last(x), torch.from_numpy(weight),
                            None if bias is None else torch.from_numpy(bias), list(pad), relu)
    assert got.shape == want.shape
    assert got.is_contiguous(memory_format=torch.channels_last)
    assert np.abs(got.numpy() - want).max() <= 1e-6 * np.abs(want).max()
    if relu:
        assert (got.numpy() >= 0).all()


def _sum_in_order(x, weight, bias):
    """A 3 x 3, pad 1 convolution summed in float32 one term at a time, channel by channel
    and tap by tap (Caffe's gemm on a BLAS that adds in order): the same bits on every
    machine, NumPy's elementwise float32 arithmetic being IEEE's."""
    c, h, w = x.shape[1:]
    padded = np.pad(x[0], ((0, 0), (1, 1), (1, 1)))
    y = np.zeros((len(weight), h, w), np.float32)
    for ci in range(c):
        for i in range(3):
            for j in range(3):
                y += weight[:, ci, i, j, None, None] * padded[ci, i:i + h, j:j + w]
    return (y + bias[:, None, None])[None]


def test_error_is_below_a_float32_sum_in_order():
    """The claim that makes it a fast form and not an approximation: on a VGG-like layer
    (512 channels of 3 x 3 sums, 4608 terms each) its worst error against float64 is below
    that of the same sums added in order in float32, as Caffe's gemm on a plain BLAS adds
    them (measured: 5.7e-6 against 2.6e-5; Caffe's own im2col + OpenBLAS gemm 5.4e-6,
    oneDNN's channels-last kernel 2.6e-5, its NCHW kernel 3.5e-6). Winograd's gemms sum
    512 terms where the direct form sums 4608: with its gemms too added in order, the worst
    a BLAS can do, 0.9e-5. So the bound holds whatever this machine's BLAS is."""
    rng = np.random.RandomState(0)
    x, weight, bias = _problem(rng, 512, 64, 12, 12, scale=4.0)
    want = np_conv(x, weight, bias, (1, 1), (1, 1), (1, 1), 1)
    fast = winograd.convolve(_channels_last(x), torch.from_numpy(weight),
                             torch.from_numpy(bias), [1, 1]).numpy()
    in_order = _sum_in_order(x, weight, bias)
    assert in_order.dtype == np.float32
    fast_error, in_order_error = (np.abs(y - want).max() for y in (fast, in_order))
    assert 0 < fast_error <= in_order_error, (fast_error, in_order_error)


def test_filter_transform_is_g_g_transposed():
    """The 16 filter positions are G g G' of each (output, input) channel pair, G as in Lavin
    & Gray's F(2, 3): rows g0, (g0 + g1 + g2) / 2, (g0 - g1 + g2) / 2, g2."""
    rng = np.random.RandomState(1)
    g = rng.normal(size=(3, 2, 3, 3)).astype(np.float32)
    G = np.array([[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]])
    want = np.einsum('ai,kcij,bj->abkc', G, g.astype(np.float64), G).reshape(16, 3, 2)
    got = winograd.filter_transform(torch.from_numpy(g)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_pays_for_vggs_512_channel_layers_only():
    """Where it is taken (measured against oneDNN at 500 x 500): conv4_1 (256 -> 512) and the
    512 -> 512 layers; not conv3 (256 -> 256) nor the wider, shallower layers before."""
    assert winograd.pays(512, 512) and winograd.pays(256, 512) and winograd.pays(512, 256)
    assert not winograd.pays(256, 256) and not winograd.pays(64, 64)
    assert not winograd.pays(3, 4096) and not winograd.pays(4096, 21)


def test_convolution_layer_takes_it_where_it_pays():
    """The layer's rule: 3 x 3, stride 1, ungrouped, undilated, on the CPU, and `pays`."""
    def takes(channels, num_output, **fields):
        fields = ' '.join(f'{key}: {value}' for key, value in
                          dict(dict(kernel_size=3, pad=1), **fields).items())
        text = (f'name: "c" type: "Convolution" '
                f'convolution_param {{ num_output: {num_output} {fields} }}')
        x = np.zeros((1, channels, 6, 6), np.float32)
        return make_layer(text, [x])[0]._winograd_pays(torch.from_numpy(x))
    assert takes(512, 512) and takes(256, 512) and takes(512, 512, pad=0)
    assert not takes(256, 256) and not takes(512, 512, stride=2)
    assert not takes(512, 512, group=2) and not takes(512, 512, dilation=2)
    assert not takes(512, 512, kernel_size=5, pad=2)


NET = '''
layer {{ name: "in" type: "Input" top: "data"
        input_param {{ shape {{ dim: 1 dim: 256 dim: {h} dim: {w} }} }} }}
layer {{ name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param {{ num_output: 512 kernel_size: 3 pad: 1 }} }}
layer {{ name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }}
layer {{ name: "conv2" type: "Convolution" bottom: "conv1" top: "conv2"
        convolution_param {{ num_output: 8 kernel_size: 3 }} }}
'''


def test_forward_only_net_matches_numpy_and_the_keep_everything_net(tmp_path, monkeypatch):
    """A forward-only plan (keep_blobs(['conv2'])) runs conv1 (256 -> 512, 3 x 3, over more
    pixels than an eighth of its taps: not the gemm form) by F(2x2, 3x3) with its ReLU, its
    top transient and channels-last: conv2 equals the float64 NumPy chain and the net that
    keeps every blob (oneDNN's direct kernel) to 1e-5 of its scale, at an even and an odd
    size; changing conv1's weights through NumPy between passes changes the next top. The
    keep-everything net never takes it (a spy on winograd.convolve counts the calls)."""
    import caffe_torch as caffe
    calls = []
    convolve = winograd.convolve
    monkeypatch.setattr(winograd, 'convolve',
                        lambda *args, **kwargs: calls.append(args[0].shape) or
                        convolve(*args, **kwargs))
    for h, w in ((18, 18), (19, 17)):
        path = tmp_path / f'net{h}{w}.prototxt'
        path.write_text(NET.format(h=h, w=w))
        full, lean = caffe.Net(str(path), caffe.TEST), caffe.Net(str(path), caffe.TEST)
        lean.keep_blobs(['conv2'])
        assert lean.layers[1]._winograd_pays(torch.zeros(1, 256, h, w))
        assert not lean.layers[1]._gemm_pays(torch.zeros(1, 256, h, w))
        rng = np.random.RandomState(h)
        x = rng.uniform(0, 1, (1, 256, h, w)).astype(np.float32)
        for step in range(2):  # new weights each pass: nothing of the last is kept
            for name in full.params:
                fan_in = np.prod(full.params[name][0].shape[1:])
                weight = rng.normal(0, (2.0 / fan_in) ** 0.5, full.params[name][0].shape)
                bias = rng.uniform(-0.1, 0.1, full.params[name][1].shape)
                for net in (full, lean):
                    net.params[name][0].data[...] = weight
                    net.params[name][1].data[...] = bias
            for net in (full, lean):
                net.blobs['data'].data[...] = x
                net.forward()
            p = {name: [b.data for b in blobs] for name, blobs in full.params.items()}
            y = np.maximum(np_conv(x, *p['conv1'], (1, 1), (1, 1), (1, 1), 1), 0)
            want = np_conv(y, *p['conv2'], (1, 1), (0, 0), (1, 1), 1)
            got = lean.blobs['conv2'].data
            assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()
            assert np.abs(got - full.blobs['conv2'].data).max() <= 1e-5 * np.abs(want).max()
            assert lean.layers[1].applied_relu and lean.blobs['conv1'].channels_last
            assert calls.pop() == (1, 256, h, w) and not calls  # conv1 alone, each pass
