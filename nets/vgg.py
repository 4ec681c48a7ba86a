"""FCN-VGG16: the trunk from a table, and the FCN-32s/16s/8s heads (with at-once scaling).

The trunk is VGG16's 13 3x3 convolutions with conv1_1 padded by 100, so that the output
still covers small inputs after 32x downsampling, and the classifier's fc6/fc7 as 7x7 and
1x1 convolutions. Heads fuse pool4 and pool3 scores through crops that coord_map derives.

`widths` (five block widths, then the fc6/fc7 width) narrows the layers and nothing else:
names, kernels, strides, pads and so every crop offset stay VGG16's. VGG16_WIDTHS is the
paper's net; scaled_widths(8, 16) the demo's (make demo), cheap enough for a CPU.
"""
from backend import caffe, coord_map
from nets.layers import FROZEN, conv_relu, fc_layers, max_pool, score, upscore

L, P = caffe.layers, caffe.params

VGG16_BLOCKS = [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]
VGG16_WIDTHS = tuple(width for width, _ in VGG16_BLOCKS) + (4096,)  # conv1-5, fc6/fc7
AT_ONCE_SCALES = {'pool4': 0.01, 'pool3': 0.0001}   # fixed, as the reference's at-once net


def scaled_widths(conv_divisor, fc_divisor):
    """VGG16's widths divided: conv blocks by `conv_divisor`, fc6/fc7 by `fc_divisor`."""
    return tuple(w // conv_divisor for w in VGG16_WIDTHS[:5]) + (VGG16_WIDTHS[5] // fc_divisor,)


def check_widths(widths):
    """`widths` as a tuple of six positive ints (conv1-5 blocks, fc6/fc7), or ValueError."""
    widths = tuple(widths)
    if len(widths) != 6 or not all(type(w) is int and w > 0 for w in widths):
        raise ValueError(f'widths must be six positive ints (the conv1..conv5 block widths, '
                         f'then fc6/fc7), e.g. {VGG16_WIDTHS}; got {widths}')
    return widths


def vgg16_convs(n, bottom, suffix='', first_conv='conv1_1', first_pad=100,
                widths=VGG16_WIDTHS, fillers=None):
    """conv1_1 .. pool5 on `bottom`; layer names carry `suffix` (two-stream nets)."""
    for b, ((_, count), width) in enumerate(zip(VGG16_BLOCKS, check_widths(widths)), 1):
        for i in range(1, count + 1):
            first = (b, i) == (1, 1)
            name = first_conv if first else f'conv{b}_{i}'
            n[name + suffix], n[f'relu{b}_{i}{suffix}'] = conv_relu(
                bottom, width, pad=first_pad if first else 1, fillers=fillers)
            bottom = n[f'relu{b}_{i}{suffix}']
        n[f'pool{b}{suffix}'] = max_pool(bottom)
        bottom = n[f'pool{b}{suffix}']
    return bottom


def vgg16_trunk(n, bottom, suffix='', first_conv='conv1_1', train=True, widths=VGG16_WIDTHS,
                fc6_size=7):
    """The FCN trunk: conv1_1 (pad 100) .. pool5, then fc6 (7x7) and fc7 as convolutions.
    fc6's kernel is the classifier's pool5 size: 7 for VGG16's 224 x 224 input, `fc6_size`
    (its input / 32) for a classifier trained on smaller images, as the demo's."""
    pool5 = vgg16_convs(n, bottom, suffix, first_conv, first_pad(fc6_size), widths=widths)
    return fc_layers(n, pool5, fc6_size, suffix, train, width=check_widths(widths)[5])


def first_pad(fc6_size):
    """conv1_1's pad for a `fc6_size` x `fc6_size` fc6: 100 for VGG16's 7.

    A smaller fc6 moves score_fr's windows 16 px per unit of kernel towards the image, so
    less padding covers it: the pad drops by 32 px (one pool5 cell, which keeps the pooling
    grids aligned) per two units, keeping the paper's score offset 19 for odd sizes (35 for
    even ones). The skip crops depend on the kernel alone, score_pool4c k - 2 and
    score_pool3c 2 k - 5 (5 and 9 for 7); below 4 they leave no room for the rounding of
    odd input sizes."""
    if type(fc6_size) is not int or not 4 <= fc6_size <= 7:
        raise ValueError(f'fc6_size must be an int from 4 to 7 (the classifier input / 32: '
                         f'128 to 224 px), got {fc6_size!r}')
    return 100 - 32 * ((7 - fc6_size) // 2)


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
        return coord_map.crop(n['upscore' + suffix], reference)
    n['upscore2' + suffix] = upscore(fr, classes, 4, 2)
    fused = _fuse(n, 'pool4', n['upscore2' + suffix], classes, suffix, pools, atonce)
    if stride == 16:
        n['upscore16' + suffix] = upscore(fused, classes, 32, 16)
        return coord_map.crop(n['upscore16' + suffix], reference)
    n['upscore_pool4' + suffix] = upscore(fused, classes, 4, 2)
    fused = _fuse(n, 'pool3', n['upscore_pool4' + suffix], classes, suffix, pools, atonce)
    n['upscore8' + suffix] = upscore(fused, classes, 16, 8)
    return coord_map.crop(n['upscore8' + suffix], reference)


def _fuse(n, pool, upsampled, classes, suffix, pools, atonce):
    name = f'score_{pool}{suffix}'
    if name not in n.keys():
        n[name] = skip_score(n, pools[pool], classes, suffix, atonce)
    n[name + 'c'] = coord_map.crop(n[name], upsampled)
    n[f'fuse_{pool}{suffix}'] = L.Eltwise(upsampled, n[name + 'c'], operation=P.Eltwise.SUM)
    return n[f'fuse_{pool}{suffix}']
