"""Building blocks shared by the FCN families, in the reference's NetSpec vocabulary.

Learned convolutions carry FCN's multipliers: weights lr_mult 1 / decay_mult 1, biases
lr_mult 2 / decay_mult 0. New layers get no filler, so Caffe's default constant 0 applies:
the paper's zero-initialised class scorers. Upsampling deconvolutions are bias-free and
frozen (lr_mult 0): surgery writes bilinear kernels into them before training.
"""
from backend import caffe

L, P = caffe.layers, caffe.params

LEARNED = [dict(lr_mult=1, decay_mult=1), dict(lr_mult=2, decay_mult=0)]
FROZEN = [dict(lr_mult=0)]


def conv_relu(bottom, nout, ks=3, stride=1, pad=1, group=None, param=LEARNED, fillers=None):
    """Convolution plus in-place ReLU; `param=None` leaves Caffe's defaults (AlexNet);
    `group` None leaves it out, 1 writes `group: 1` (as fcn's AlexNet net.py does);
    `fillers` ({'weight_filler': ..., 'bias_filler': ...}) for nets trained from scratch."""
    kwargs = dict(kernel_size=ks, stride=stride, num_output=nout, pad=pad)
    if group is not None:
        kwargs['group'] = group
    if param is not None:
        kwargs['param'] = param
    kwargs.update(fillers or {})
    conv = L.Convolution(bottom, **kwargs)
    return conv, L.ReLU(conv, in_place=True)


def max_pool(bottom, ks=2, stride=2):
    return L.Pooling(bottom, pool=P.Pooling.MAX, kernel_size=ks, stride=stride)


def score(bottom, classes):
    """A 1x1 class scorer, zero-initialised (no filler)."""
    return L.Convolution(bottom, num_output=classes, kernel_size=1, pad=0, param=LEARNED)


def upscore(bottom, classes, ks, stride):
    """Frozen, bias-free upsampling by `stride` with a `ks` kernel (bilinear by surgery)."""
    return L.Deconvolution(bottom, param=FROZEN, convolution_param=dict(
        num_output=classes, kernel_size=ks, stride=stride, bias_term=False))


def loss(score_top, label, normalize=False):
    """The unnormalized (summed) softmax loss of the paper, void 255 ignored."""
    return L.SoftmaxWithLoss(score_top, label,
                             loss_param=dict(normalize=normalize, ignore_label=255))


def fc_layers(n, bottom, ks, suffix='', train=True, param=LEARNED, dropout_ratio=0.5,
              convolutional=True, width=4096, fillers=None, group=None):
    """fc6 and fc7 (`width` outputs) with ReLU (and dropout when training): as 1x1-style
    convolutions of kernel `ks` for an FCN, or as InnerProduct layers for the ImageNet
    classifier (`fillers` as conv_relu's, for a classifier trained from scratch)."""
    for name, kernel in (('fc6', ks), ('fc7', 1)):
        index = name[2:]
        if convolutional:
            n[name + suffix], n[f'relu{index}{suffix}'] = conv_relu(
                bottom, width, ks=kernel, pad=0, param=param, fillers=fillers, group=group)
        else:
            n[name + suffix] = L.InnerProduct(bottom, num_output=width, **(fillers or {}))
            n[f'relu{index}{suffix}'] = L.ReLU(n[name + suffix], in_place=True)
        bottom = n[f'relu{index}{suffix}']
        if train:
            n[f'drop{index}{suffix}'] = L.Dropout(bottom, dropout_ratio=dropout_ratio,
                                                 in_place=True)
            bottom = n[f'drop{index}{suffix}']
    return bottom
