"""FCN-GoogLeNet (paper Table 1; never released): the BVLC GoogLeNet trunk through
inception_5b, its final average pooling and classifier dropped, then FCN-32s's head.

The auxiliary classifiers exist only in GoogLeNet's training net and are not part of the
FCN. conv1/7x7_s2 is padded by 100 like the other FCNs' first layer. Layer names are
GoogLeNet's own (with '/'), so the ILSVRC weights transplant by name.
"""
from backend import caffe

L, P = caffe.layers, caffe.params
from nets.layers import LEARNED

# name: (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj); 'pool' marks a 3x3/2 max pool
INCEPTIONS = [('3a', (64, 96, 128, 16, 32, 32)), ('3b', (128, 128, 192, 32, 96, 64)), 'pool',
              ('4a', (192, 96, 208, 16, 48, 64)), ('4b', (160, 112, 224, 24, 64, 64)),
              ('4c', (128, 128, 256, 24, 64, 64)), ('4d', (112, 144, 288, 32, 64, 64)),
              ('4e', (256, 160, 320, 32, 128, 128)), 'pool',
              ('5a', (256, 160, 320, 32, 128, 128)), ('5b', (384, 192, 384, 48, 128, 128))]


def _conv(n, name, relu, bottom, nout, ks, stride=1, pad=0):
    n[name] = L.Convolution(bottom, num_output=nout, kernel_size=ks, stride=stride, pad=pad,
                            param=LEARNED)
    n[relu] = L.ReLU(n[name], in_place=True)
    return n[relu]


def inception(n, name, bottom, widths):
    """Four branches (1x1; 1x1-3x3; 1x1-5x5; 3x3 max pool-1x1) concatenated on channels."""
    b1, r3, b3, r5, b5, proj = widths
    p = f'inception_{name}/'
    one = _conv(n, p + '1x1', p + 'relu_1x1', bottom, b1, 1)
    three = _conv(n, p + '3x3_reduce', p + 'relu_3x3_reduce', bottom, r3, 1)
    three = _conv(n, p + '3x3', p + 'relu_3x3', three, b3, 3, pad=1)
    five = _conv(n, p + '5x5_reduce', p + 'relu_5x5_reduce', bottom, r5, 1)
    five = _conv(n, p + '5x5', p + 'relu_5x5', five, b5, 5, pad=2)
    n[p + 'pool'] = L.Pooling(bottom, pool=P.Pooling.MAX, kernel_size=3, stride=1, pad=1)
    pool = _conv(n, p + 'pool_proj', p + 'relu_pool_proj', n[p + 'pool'], proj, 1)
    n[p + 'output'] = L.Concat(one, three, five, pool)
    return n[p + 'output']


def googlenet_convs(n, bottom, first_pad=100):
    """conv1/7x7_s2 .. inception_5b/output."""
    top = _conv(n, 'conv1/7x7_s2', 'conv1/relu_7x7', bottom, 64, 7, stride=2, pad=first_pad)
    top = _pool_norm(n, 'pool1/3x3_s2', 'pool1/norm1', top, norm_first=False)
    top = _conv(n, 'conv2/3x3_reduce', 'conv2/relu_3x3_reduce', top, 64, 1)
    top = _conv(n, 'conv2/3x3', 'conv2/relu_3x3', top, 192, 3, pad=1)
    top = _pool_norm(n, 'pool2/3x3_s2', 'conv2/norm2', top, norm_first=True)
    pools = iter(['pool3/3x3_s2', 'pool4/3x3_s2'])
    for entry in INCEPTIONS:
        if entry == 'pool':
            name = next(pools)
            n[name] = L.Pooling(top, pool=P.Pooling.MAX, kernel_size=3, stride=2)
            top = n[name]
        else:
            top = inception(n, entry[0], top, entry[1])
    return top


def googlenet_trunk(n, bottom, train=True):
    """The FCN trunk: everything to inception_5b, then GoogLeNet's dropout (0.4) in training;
    the 7x7 average pooling and the classifier that followed it are gone."""
    top = googlenet_convs(n, bottom)
    if train:
        n['pool5/drop_7x7_s1'] = L.Dropout(top, dropout_ratio=0.4, in_place=True)
        top = n['pool5/drop_7x7_s1']
    return top


def _pool_norm(n, pool, norm, bottom, norm_first):
    """GoogLeNet's max pool 3x3/2 and LRN(5, 1e-4, 0.75), in the order it uses them."""
    steps = [(norm, lambda b: L.LRN(b, local_size=5, alpha=1e-4, beta=0.75)),
             (pool, lambda b: L.Pooling(b, pool=P.Pooling.MAX, kernel_size=3, stride=2))]
    for name, make in (steps if norm_first else steps[::-1]):
        n[name] = make(bottom)
        bottom = n[name]
    return bottom
