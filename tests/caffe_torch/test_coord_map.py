"""Coordinate mapping: offsets between tops agree with hand-derived values, FCN's included."""
import numpy as np
import pytest

from caffe_torch.coord_map import (PASS_THROUGH_LAYERS, AxisMismatchException, compose,
                                   conv_params, coord_map, coord_map_from_to, crop, inverse)
from caffe_torch.errors import CoordMapError
from caffe_torch.net_spec import NetSpec, layers as L, params as P

LR = [dict(lr_mult=1, decay_mult=1), dict(lr_mult=2, decay_mult=0)]


def coord_net_spec(ks=3, stride=1, pad=0, pool=2, dstride=2, dpad=0):
    """data -> conv -> max pool -> deconv (kernel 2 x stride), as in pycaffe's tests."""
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[2, 1, 100, 100]))
    n.aux = L.Input(shape=dict(dim=[2, 1, 20, 20]))
    n.conv = L.Convolution(n.data, num_output=10, kernel_size=ks, stride=stride, pad=pad)
    n.pool = L.Pooling(n.conv, pool=P.Pooling.MAX, kernel_size=pool, stride=pool, pad=0)
    deconv_ks = [2 * s for s in dstride] if isinstance(dstride, list) else 2 * dstride
    n.deconv = L.Deconvolution(n.pool, num_output=10, kernel_size=deconv_ks, stride=dstride,
                               pad=dpad)
    return n


def conv_relu(bottom, nout, ks=3, pad=1):
    conv = L.Convolution(bottom, kernel_size=ks, num_output=nout, pad=pad, param=LR)
    return conv, L.ReLU(conv, in_place=True)


def fcn_trunk():
    """VGG16 as FCN uses it: conv1_1 padded by 100, fc6/fc7 as 7x7/1x1 convs, 21 scores."""
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 3, 500, 500]))
    bottom, pad = n.data, 100
    for block, convs in enumerate([2, 2, 3, 3, 3], start=1):
        for i in range(1, convs + 1):
            n['conv%d_%d' % (block, i)], bottom = conv_relu(bottom, 64, pad=pad)
            pad = 1
        n['pool%d' % block] = bottom = L.Pooling(bottom, pool=P.Pooling.MAX, kernel_size=2,
                                                 stride=2)
    n.fc6, n.relu6 = conv_relu(bottom, 4096, ks=7, pad=0)
    n.fc7, n.relu7 = conv_relu(n.relu6, 4096, ks=1, pad=0)
    n.score_fr = L.Convolution(n.relu7, num_output=21, kernel_size=1, pad=0, param=LR)
    return n


def upsample(bottom, factor):
    return L.Deconvolution(bottom, convolution_param=dict(
        num_output=21, kernel_size=2 * factor, stride=factor, bias_term=False),
        param=[dict(lr_mult=0)])


def crop_offset(crop_top):
    layer = crop_top.to_proto().layer[-1]
    return layer.crop_param.axis, list(layer.crop_param.offset)


def test_conv_pool_deconv():
    """2x pool then 2x deconv is the identity; 4x then 4x shifts by one (hand-derived)."""
    n = coord_net_spec()
    ax, a, b = coord_map_from_to(n.deconv, n.data)
    assert (ax, a.tolist(), b.tolist()) == (1, [1.0], [0.0])
    # conv k3: y = x - 1; pool k4 s4: y = x/4 - 3/8; deconv k8 s4: y = 4x + 7/2
    # deconv(pool(conv(x))) = x + 1, so data = deconv - 1
    n = coord_net_spec(pool=4, dstride=4)
    ax, a, b = coord_map_from_to(n.deconv, n.data)
    assert (ax, a.tolist(), b.tolist()) == (1, [1.0], [-1.0])


def test_single_layer_maps():
    """coord_map is (axis, 1/s, (p - (k-1)/2)/s) for conv, (axis, s, (k-1)/2 - p) for deconv."""
    n = coord_net_spec(ks=5, stride=2, pad=3)
    ax, a, b = coord_map(n.conv.fn)
    assert (ax, a.tolist(), b.tolist()) == (1, [0.5], [0.5])
    ax, a, b = coord_map(n.deconv.fn)
    assert (ax, a.tolist(), b.tolist()) == (1, [2], [1.5])
    assert coord_map(L.ReLU(n.data).fn) == (None, 1, 0)


def test_conv_params_dilation():
    """Dilation d widens a kernel k to the extent (k - 1) d + 1."""
    data = L.Input(shape=dict(dim=[1, 1, 32, 32]))
    conv = L.Convolution(data, kernel_size=3, dilation=4, pad=2, num_output=1)
    axis, stride, extent, pad = conv_params(conv.fn)
    assert (axis, stride.tolist(), extent.tolist(), pad.tolist()) == (1, [1], [9], [2])
    assert coord_map_from_to(conv, data)[2].tolist() == [2.0]  # data = conv + (9-1)/2 - 2


def test_pass_through_layers():
    """Every element-wise layer maps coordinates by the identity, as does a 1x1 conv."""
    assert set(PASS_THROUGH_LAYERS) >= {
        'AbsVal', 'BatchNorm', 'Bias', 'BNLL', 'Dropout', 'Eltwise', 'ELU', 'Log', 'LRN',
        'Exp', 'MVN', 'Power', 'ReLU', 'PReLU', 'Scale', 'Sigmoid', 'Split', 'TanH',
        'Threshold'}
    n = coord_net_spec()
    expected = coord_map_from_to(n.deconv, n.data)
    for type_name in PASS_THROUGH_LAYERS:
        top = getattr(L, type_name)(n.deconv)
        top = L.Convolution(top, num_output=10, kernel_size=1, stride=1, pad=0)
        ax, a, b = coord_map_from_to(top, n.data)
        assert (ax, a.tolist(), b.tolist()) == (expected[0], expected[1].tolist(),
                                                expected[2].tolist()), type_name


def test_padding():
    """Conv padding p shifts the map by -p, deconv padding by +p; both cancel."""
    rng = np.random.default_rng(0)
    pad = int(rng.integers(1, 11))
    n = coord_net_spec()
    _, a, b = coord_map_from_to(n.deconv, n.data)
    n = coord_net_spec(pad=pad)
    _, a_pad, b_pad = coord_map_from_to(n.deconv, n.data)
    assert a_pad.tolist() == a.tolist() and b_pad.tolist() == (b - pad).tolist()
    n = coord_net_spec(dpad=pad)
    _, a_pad, b_pad = coord_map_from_to(n.deconv, n.data)
    assert a_pad.tolist() == a.tolist() and b_pad.tolist() == (b + pad).tolist()
    n = coord_net_spec(pad=pad, dpad=pad)
    _, a_pad, b_pad = coord_map_from_to(n.deconv, n.data)
    assert a_pad.tolist() == a.tolist() and b_pad.tolist() == b.tolist()


def test_multi_bottom_conv():
    """Each bottom/top pair of a multi-bottom layer is mapped identically."""
    n = coord_net_spec()
    n.conv_data, n.conv_aux = L.Convolution(n.data, n.aux, ntop=2, num_output=10,
                                            kernel_size=5, stride=2, pad=0)
    m1 = coord_map_from_to(n.conv_data, n.data)
    m2 = coord_map_from_to(n.conv_aux, n.aux)
    assert (m1[0], m1[1].tolist(), m1[2].tolist()) == (m2[0], m2[1].tolist(), m2[2].tolist())


def test_rectangular_kernel_list():
    """An anisotropic kernel maps each axis like the isotropic net with that axis's values."""
    n3 = coord_net_spec(ks=3, stride=1, pad=0)
    n5 = coord_net_spec(ks=5, stride=2, pad=10)
    n35 = coord_net_spec(ks=[3, 5], stride=[1, 2], pad=[0, 10])
    _, a3, b3 = coord_map_from_to(n3.deconv, n3.data)
    _, a5, b5 = coord_map_from_to(n5.deconv, n5.data)
    ax, a35, b35 = coord_map_from_to(n35.deconv, n35.data)
    assert ax == 1
    assert a35.tolist() == [a3[0], a5[0]] and b35.tolist() == [b3[0], b5[0]]


def test_rectangular_kernel_h_w():
    """kernel_h/kernel_w, stride_h/stride_w and pad_h/pad_w equal the [h, w] list form."""
    def net(**conv):
        n = NetSpec()
        n.data = L.Input(shape=dict(dim=[1, 1, 64, 64]))
        n.conv = L.Convolution(n.data, num_output=1, **conv)
        n.pool = L.Pooling(n.conv, pool=P.Pooling.MAX, kernel_h=2, kernel_w=4, stride_h=2,
                           stride_w=4)
        return coord_map_from_to(n.pool, n.data)
    listed = net(kernel_size=[3, 5], stride=[1, 2], pad=[0, 4])
    split = net(kernel_h=3, kernel_w=5, stride_h=1, stride_w=2, pad_h=0, pad_w=4)
    assert listed[1].tolist() == split[1].tolist() == [2, 8]
    # h: conv y = x - 1, pool y = x/2 - 1/4 -> pool = x/2 - 3/4, data = 2 pool + 3/2
    # w: conv y = x/2 + 1, pool y = x/4 - 3/8 -> pool = x/8 - 1/8, data = 8 pool + 1
    assert listed[2].tolist() == split[2].tolist() == [1.5, 1.0]


def test_params_inside_param_dicts():
    """Parameters given inside convolution_param / pooling_param map like plain keywords."""
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 1, 32, 32]))
    n.conv = L.Convolution(n.data, convolution_param=dict(num_output=1, kernel_size=5, pad=1))
    n.pool = L.Pooling(n.conv, pooling_param=dict(pool=P.Pooling.MAX, kernel_size=2, stride=2))
    plain = coord_net_spec(ks=5, pad=1)
    m1, m2 = coord_map_from_to(n.pool, n.data), coord_map_from_to(plain.pool, plain.data)
    # conv k5 p1: y = x - 1; pool k2 s2: y = x/2 - 1/4 -> data = 2 pool + 3/2
    assert (m1[1].tolist(), m1[2].tolist()) == (m2[1].tolist(), m2[2].tolist()) == ([2], [1.5])


def test_nd_conv():
    """A 3-D conv maps each of its three spatial axes with that axis's pad."""
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[2, 3, 100, 100, 100]))
    n.conv = L.Convolution(n.data, num_output=10, kernel_size=[3, 3, 3], stride=[1, 1, 1],
                           pad=[0, 1, 2])
    n.pool = L.Pooling(n.conv, pool=P.Pooling.MAX, kernel_size=2, stride=2, pad=0)
    n.deconv = L.Deconvolution(n.pool, num_output=10, kernel_size=4, stride=2, pad=0)
    ax, a, b = coord_map_from_to(n.deconv, n.data)
    assert ax == 1 and a.tolist() == [1, 1, 1]
    assert b.tolist() == [0.0, -1.0, -2.0]


def test_crop_of_crop():
    """Mapping through a Crop layer adds its offset to the shift."""
    rng = np.random.default_rng(1)
    offset = int(rng.integers(0, 11))
    n = coord_net_spec()
    ax, a, b = coord_map_from_to(n.deconv, n.data)
    n.crop = L.Crop(n.deconv, n.data, axis=2, offset=offset)
    ax_c, a_c, b_c = coord_map_from_to(n.crop, n.data)
    assert (ax_c, a_c.tolist(), b_c.tolist()) == (ax, a.tolist(), (b + offset).tolist())


def test_crop_helper():
    """crop() returns a Crop layer on the two tops with axis 2 and the derived offset."""
    n = coord_net_spec(pool=4, dstride=4)
    n.crop = crop(n.deconv, n.data)
    layer = n.to_proto().layer[-1]
    assert (layer.type, list(layer.bottom)) == ('Crop', ['deconv', 'data'])
    assert (layer.crop_param.axis, list(layer.crop_param.offset)) == (2, [1])


def test_crop_pass_through_only():
    """Tops related only by element-wise layers crop on axis 2 with offset 0."""
    data = L.Input(shape=dict(dim=[1, 1, 8, 8]))
    assert crop_offset(crop(L.ReLU(data), data)) == (2, [0])


def test_fcn32s_offset():
    """FCN-32s crops its 32x upscore by 19 to align with the data (as in the paper's nets)."""
    # data -> score_fr: y = (x + 99)/32 - 31/64 - 3; upscore (k64 s32): z = 32 y + 63/2 = x + 19
    n = fcn_trunk()
    n.upscore = upsample(n.score_fr, 32)
    ax, a, b = coord_map_from_to(n.upscore, n.data)
    assert (ax, a.tolist(), b.tolist()) == (1, [1.0], [-19.0])
    assert crop_offset(crop(n.upscore, n.data)) == (2, [19])


def test_fcn16s_and_fcn8s_offsets():
    """FCN-16s/8s skip crops get offsets 5 (pool4), 9 (pool3) and final 27 / 31."""
    n = fcn_trunk()
    n.upscore2 = upsample(n.score_fr, 2)
    n.score_pool4 = L.Convolution(n.pool4, num_output=21, kernel_size=1, pad=0)
    n.score_pool4c = crop(n.score_pool4, n.upscore2)
    assert crop_offset(n.score_pool4c) == (2, [5])
    n.fuse_pool4 = L.Eltwise(n.upscore2, n.score_pool4c, operation=P.Eltwise.SUM)
    assert crop_offset(crop(upsample(n.fuse_pool4, 16), n.data)) == (2, [27])
    n.upscore_pool4 = upsample(n.fuse_pool4, 2)
    n.score_pool3 = L.Convolution(n.pool3, num_output=21, kernel_size=1, pad=0)
    n.score_pool3c = crop(n.score_pool3, n.upscore_pool4)
    assert crop_offset(n.score_pool3c) == (2, [9])
    n.fuse_pool3 = L.Eltwise(n.upscore_pool4, n.score_pool3c, operation=P.Eltwise.SUM)
    assert crop_offset(crop(upsample(n.fuse_pool3, 8), n.data)) == (2, [31])


def test_compose_and_inverse():
    """A map composed with its inverse is the identity; None axes adopt the other axis."""
    m = (1, np.array([0.5, 2.0]), np.array([1.5, -3.0]))
    ax, a, b = compose(m, inverse(m))
    assert ax == 1 and a.tolist() == [1, 1] and b.tolist() == [0, 0]
    assert compose((None, 1, 0), m)[0] == 1 and compose(m, (None, 1, 0))[0] == 1
    ax, a, b = compose((1, 2, 1), (1, 3, 4))  # x -> 2 (3 x + 4) + 1
    assert (ax, a, b) == (1, 6, 9)


def test_catch_unconnected():
    """Tops joined only through a layer without a coordinate map raise CoordMapError."""
    n = coord_net_spec()
    n.ip = L.InnerProduct(n.deconv, num_output=10)
    with pytest.raises(CoordMapError, match=r"could not compute map from 'ip' .* to 'data' .*"
                                            r"stopped at InnerProduct.*connected by spatial"):
        coord_map_from_to(n.ip, n.data)


def test_catch_global_pooling_stops_walk():
    """Global pooling has no coordinate map, so mapping across it fails as unconnected."""
    n = coord_net_spec()
    n.gp = L.Pooling(n.conv, pool=P.Pooling.AVE, global_pooling=True)
    with pytest.raises(CoordMapError, match=r"stopped at Pooling"):
        coord_map_from_to(n.gp, n.data)


def test_catch_scale_mismatch():
    """Cropping a 3x-pooled, 2x-upsampled top to the data raises a scale mismatch, an
    AssertionError as in pycaffe's test_catch_scale_mismatch."""
    n = coord_net_spec(pool=3, dstride=2)
    with pytest.raises(AssertionError):
        crop(n.deconv, n.data)
    with pytest.raises(CoordMapError, match=r"cannot crop 'deconv' .* to 'data' .*scale "
                                            r"mismatch.*a = \[1\.5\]"):
        crop(n.deconv, n.data)


def test_catch_negative_crop():
    """A top smaller than the reference (deconv pad 10) would need a negative offset."""
    n = coord_net_spec(dpad=10)
    with pytest.raises(AssertionError):  # as pycaffe's test_catch_negative_crop
        crop(n.deconv, n.data)
    with pytest.raises(CoordMapError, match=r"negative offset \(map shift b = \[10\.0\].*"
                                            r"Pad the input more"):
        crop(n.deconv, n.data)


def test_catch_noninteger_crop():
    """An even conv kernel misaligns the grids by half a pixel, which no crop can fix."""
    # conv k2: y = x - 1/2; pool: y = x/2 - 1/4; deconv k4 s2: y = 2x + 3/2 -> data = deconv - 1/2
    n = coord_net_spec(ks=2)
    with pytest.raises(CoordMapError, match=r"non-integer offset \(map shift b = \[-0\.5\]"):
        crop(n.deconv, n.data)


def test_catch_axis_mismatch():
    """Composing maps over different axes raises AxisMismatchException, a CoordMapError."""
    with pytest.raises(AxisMismatchException, match=r"axis 1 and axis 2"):
        compose((1, 1, 0), (2, 1, 0))


def test_catch_missing_kernel():
    """A conv without any kernel size cannot be mapped."""
    data = L.Input(shape=dict(dim=[1, 1, 8, 8]))
    conv = L.Convolution(data, num_output=1, name='nokernel')
    with pytest.raises(CoordMapError, match=r"Convolution layer 'nokernel' has neither "
                                            r"kernel_size nor kernel_h/kernel_w"):
        coord_map(conv.fn)


def test_catch_kernel_size_and_kernel_h():
    """Giving both kernel_size and kernel_h/kernel_w is refused, as Caffe refuses it."""
    data = L.Input(shape=dict(dim=[1, 1, 8, 8]))
    pool = L.Pooling(data, kernel_size=2, kernel_h=2, kernel_w=3)
    with pytest.raises(CoordMapError, match=r"either kernel_size or kernel_h/kernel_w"):
        coord_map(pool.fn)


def test_channel_concat_passes_coordinates_through_its_first_bottom():
    """An inception-style channel Concat maps like its first branch (a toolkit extension)."""
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 3, 32, 32]))
    n.a = L.Convolution(n.data, kernel_size=1, num_output=2)
    n.b = L.Convolution(n.data, kernel_size=3, pad=1, num_output=2)
    n.cat = L.Concat(n.a, n.b)
    n.pool = L.Pooling(n.cat, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.up = L.Deconvolution(n.pool, convolution_param=dict(num_output=4, kernel_size=4,
                                                          stride=2))
    ax, a, b = coord_map_from_to(n.up, n.data)
    assert (ax, a, b) == (1, 1, -1)


def test_catch_concat_along_a_spatial_axis():
    """Concatenating along height has no coordinate map."""
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 3, 8, 8]))
    n.cat = L.Concat(n.data, n.data, axis=2)
    with pytest.raises(CoordMapError, match='Concat'):
        coord_map_from_to(n.cat, n.data)
