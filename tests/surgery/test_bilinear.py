"""Bilinear upsampling: the kernel formula, diagonal weights, and what upsampling computes."""
import textwrap

import numpy as np
import pytest

import caffe_torch as caffe
from caffe_torch.fillers import bilinear_kernel
from surgery import bilinear_targets, interp, upsample_filt

# 1-D profiles worked out by hand from the formula (fcn-facts §2)
PROFILES = {
    3: [0.5, 1.0, 0.5],
    4: [0.25, 0.75, 0.75, 0.25],
    16: [(2 * i + 1) / 16 for i in range(8)] + [(15 - 2 * i) / 16 for i in range(8)],
}


@pytest.mark.parametrize('size', [3, 4, 16])
def test_kernel_is_the_outer_product_of_the_hand_profile(size):
    """The kernel is the outer product of its 1-D profile, computed by hand."""
    profile = np.array(PROFILES[size])
    np.testing.assert_allclose(upsample_filt(size), np.outer(profile, profile), rtol=1e-12)


@pytest.mark.parametrize('size, factor, peak', [(63, 32, 1.0), (64, 32, 63 / 64),
                                                (16, 8, 15 / 16), (4, 2, 0.75), (3, 2, 1.0)])
def test_kernel_peak_and_mass(size, factor, peak):
    """The 1-D profile peaks at the centre and sums to the upsampling factor (so the 2-D
    kernel peaks at its square and sums to the factor squared)."""
    kernel = upsample_filt(size)
    assert kernel.max() == pytest.approx(peak ** 2)
    assert kernel.sum() == pytest.approx(factor ** 2)


@pytest.mark.parametrize('size', [2, 3, 4, 6, 7, 10, 16, 63, 64])
def test_surgery_kernel_equals_caffe_filler(size):
    """The surgery kernel and Caffe's (fixed) bilinear filler give the same numbers."""
    np.testing.assert_allclose(upsample_filt(size), bilinear_kernel(size).numpy(), atol=1e-12)


def _deconv_net(tmp_path, layers):
    path = tmp_path / 'up.prototxt'
    path.write_text(textwrap.dedent(f'''
        layer {{ name: 'x' type: 'Input' top: 'x' input_param {{ shape {{ dim: 1 dim: 3 dim: 6 dim: 7 }} }} }}
        {layers}'''))
    return caffe.Net(str(path), caffe.TEST)


UP = ("layer {{ name: '{name}' type: 'Deconvolution' bottom: 'x' top: '{name}' "
      "param {{ lr_mult: {lr} }} convolution_param {{ num_output: 3 kernel_size: {k} "
      "stride: {s} bias_term: false }} }}")


def test_targets_are_frozen_deconvolutions_whatever_their_names(tmp_path):
    """interp selects Deconvolutions with lr_mult 0, not layers whose name contains 'up'."""
    net = _deconv_net(tmp_path, UP.format(name='fixed', lr=0, k=4, s=2) +
                      UP.format(name='upscore_learned', lr=1, k=4, s=2))
    assert bilinear_targets(net.param) == ['fixed']
    assert interp(net) == ['fixed']
    weights = net.params['fixed'][0].data
    for c in range(3):
        np.testing.assert_allclose(weights[c, c], upsample_filt(4), rtol=1e-6)
    assert not weights[0, 1].any() and not net.params['upscore_learned'][0].data.any()


@pytest.mark.parametrize('factor', [2, 4, 8])
def test_upsampling_reproduces_linear_images_in_the_interior(tmp_path, factor):
    """Upsampling a linear ramp by `factor` gives, cropped as FCN crops it, the ramp sampled
    at the output pixels' positions (a float64 reference), away from the borders."""
    net = _deconv_net(tmp_path, UP.format(name='up', lr=0, k=2 * factor, s=factor))
    interp(net)
    rows, cols = np.mgrid[0:6, 0:7].astype(np.float64)
    image = np.stack([rows, cols, 2 * rows - cols])[None]
    out = net.forward(x=image.astype(np.float32))['up'][0].astype(np.float64)
    offset = factor // 2  # coord_map: kernel 2s, stride s -> output y maps to input
    y, x = np.mgrid[0:6 * factor, 0:7 * factor].astype(np.float64)
    src_y, src_x = (y + 0.5) / factor - 0.5, (x + 0.5) / factor - 0.5
    expected = np.stack([src_y, src_x, 2 * src_y - src_x])
    inner = (slice(None), slice(factor, 5 * factor), slice(factor, 6 * factor))
    cropped = out[:, offset:offset + 6 * factor, offset:offset + 7 * factor]
    np.testing.assert_allclose(cropped[inner], expected[inner], atol=1e-4)


def test_catch_non_square_kernel(tmp_path):
    """A rectangular Deconvolution kernel is refused with its shape."""
    net = _deconv_net(tmp_path, "layer { name: 'up' type: 'Deconvolution' bottom: 'x' "
                      "top: 'up' param { lr_mult: 0 } convolution_param { num_output: 3 "
                      "kernel_h: 4 kernel_w: 2 stride: 2 bias_term: false } }")
    with pytest.raises(ValueError, match=r'weight shape \(3, 3, 4, 2\).*square'):
        interp(net)


def test_catch_channel_layout_off_the_diagonal(tmp_path):
    """Weights with more outputs than inputs (not group 1 or group C) are refused."""
    net = _deconv_net(tmp_path, "layer { name: 'up' type: 'Deconvolution' bottom: 'x' "
                      "top: 'up' param { lr_mult: 0 } convolution_param { num_output: 6 "
                      "kernel_size: 4 stride: 2 bias_term: false } }")
    with pytest.raises(ValueError, match=r'weight shape \(3, 6, 4, 4\): 6 inputs per group'):
        interp(net)


def test_catch_bad_kernel_size():
    """upsample_filt needs a positive integer size."""
    with pytest.raises(ValueError, match='positive integer'):
        upsample_filt(0)
