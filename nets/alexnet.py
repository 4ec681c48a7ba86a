"""FCN-AlexNet on the CaffeNet trunk (pool before LRN), as the reference trains it.

conv1 is padded by 100; the trunk's convolutions keep Caffe's default multipliers (lr_mult 1,
decay_mult 1 for weights and biases) because the reference gives them no param spec; only the
new score_fr takes FCN's 1/2 and 1/0. fc6 becomes a 6x6 convolution, and a 63-wide
deconvolution upsamples by 32 (crop offset 18).
"""
from backend import caffe

L = caffe.layers
from nets.layers import conv_relu, fc_layers, max_pool

CAFFENET = [  # name, kernel, outputs, stride, pad, group, pool+norm after
    ('conv1', 11, 96, 4, 100, 1, 'norm'), ('conv2', 5, 256, 1, 2, 2, 'norm'),
    ('conv3', 3, 384, 1, 1, 1, None), ('conv4', 3, 384, 1, 1, 2, None),
    ('conv5', 3, 256, 1, 1, 2, 'pool')]


def caffenet_convs(n, bottom, first_pad=100, every_group=False):
    """conv1 .. pool5 with CaffeNet's pooling and LRN; Caffe's default multipliers.
    `every_group` writes `group: 1` too (FCN-AlexNet's net.py), else only groups of 2
    (BVLC's CaffeNet deploy)."""
    for i, (name, ks, nout, stride, pad, group, after) in enumerate(CAFFENET, 1):
        n[name], n[f'relu{i}'] = conv_relu(bottom, nout, ks=ks, stride=stride,
                                           pad=first_pad if i == 1 else pad, param=None,
                                           group=group if every_group or group != 1 else None)
        bottom = n[f'relu{i}']
        if after:
            n[f'pool{i}'] = max_pool(bottom, 3, 2)
            bottom = n[f'pool{i}']
        if after == 'norm':
            n[f'norm{i}'] = L.LRN(bottom, local_size=5, alpha=1e-4, beta=0.75)
            bottom = n[f'norm{i}']
    return bottom


def caffenet_trunk(n, bottom, train=True):
    """The FCN trunk: conv1 (pad 100) .. pool5, fc6 as a 6x6 and fc7 as a 1x1 convolution."""
    return fc_layers(n, caffenet_convs(n, bottom, every_group=True), 6, train=train,
                     param=None, group=1)
