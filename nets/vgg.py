"""FCN-VGG16: the trunk from a table, and the FCN-32s/16s/8s heads (with at-once scaling).

The trunk is VGG16's 13 3x3 convolutions with conv1_1 padded by 100, so that the output
still covers small inputs after 32x downsampling, and the classifier's fc6/fc7 as 7x7 and
1x1 convolutions. Heads fuse pool4 and pool3 scores through crops that coord_map derives.
"""
from caffe_torch import layers as L, params as P
from caffe_torch.coord_map import crop
from nets.layers import FROZEN, conv_relu, fc_layers, max_pool, score, upscore

VGG16_BLOCKS = [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]
AT_ONCE_SCALES = {'pool4': 0.01, 'pool3': 0.0001}   # fixed, as the reference's at-once net


def vgg16_convs(n, bottom, suffix='', first_conv='conv1_1', first_pad=100):
    """conv1_1 .. pool5 on `bottom`; layer names carry `suffix` (two-stream nets)."""
    for b, (width, count) in enumerate(VGG16_BLOCKS, 1):
        for i in range(1, count + 1):
            first = (b, i) == (1, 1)
            name = first_conv if first else f'conv{b}_{i}'
            n[name + suffix], n[f'relu{b}_{i}{suffix}'] = conv_relu(
                bottom, width, pad=first_pad if first else 1)
            bottom = n[f'relu{b}_{i}{suffix}']
        n[f'pool{b}{suffix}'] = max_pool(bottom)
        bottom = n[f'pool{b}{suffix}']
    return bottom


def vgg16_trunk(n, bottom, suffix='', first_conv='conv1_1', train=True):
    """The FCN trunk: conv1_1 (pad 100) .. pool5, then fc6 (7x7) and fc7 as convolutions."""
    pool5 = vgg16_convs(n, bottom, suffix, first_conv)
    return fc_layers(n, pool5, 7, suffix, train)


def skip_score(n, pool, classes, suffix, atonce):
    """score_<pool> on the pool output, through a fixed Scale when trained at once."""
    bottom = n[pool]
    if atonce:
        n[f'scale_{pool}{suffix}'] = L.Scale(bottom, param=FROZEN, filler=dict(
            type='constant', value=AT_ONCE_SCALES[pool]))
        bottom = n[f'scale_{pool}{suffix}']
    return score(bottom, classes)


def fcn_head(n, fr, classes, stride, reference, suffix='', atonce=False, ks32=64):
    """Upsample the coarse score `fr` to `reference`'s size through stride 32, 16 or 8.

    Skip scores come from pool4/pool3 (score_pool4<suffix>, ...) unless the net already
    holds a top of that name (two-stream nets fuse their own)."""
    pools = {'pool4': 'pool4', 'pool3': 'pool3'}
    if stride == 32:
        n['upscore' + suffix] = upscore(fr, classes, ks32, 32)
        return crop(n['upscore' + suffix], reference)
    n['upscore2' + suffix] = upscore(fr, classes, 4, 2)
    fused = _fuse(n, 'pool4', n['upscore2' + suffix], classes, suffix, pools, atonce)
    if stride == 16:
        n['upscore16' + suffix] = upscore(fused, classes, 32, 16)
        return crop(n['upscore16' + suffix], reference)
    n['upscore_pool4' + suffix] = upscore(fused, classes, 4, 2)
    fused = _fuse(n, 'pool3', n['upscore_pool4' + suffix], classes, suffix, pools, atonce)
    n['upscore8' + suffix] = upscore(fused, classes, 16, 8)
    return crop(n['upscore8' + suffix], reference)


def _fuse(n, pool, upsampled, classes, suffix, pools, atonce):
    name = f'score_{pool}{suffix}'
    if name not in n.keys():
        n[name] = skip_score(n, pools[pool], classes, suffix, atonce)
    n[name + 'c'] = crop(n[name], upsampled)
    n[f'fuse_{pool}{suffix}'] = L.Eltwise(upsampled, n[name + 'c'], operation=P.Eltwise.SUM)
    return n[f'fuse_{pool}{suffix}']
