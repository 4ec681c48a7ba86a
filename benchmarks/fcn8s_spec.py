"""FCN-8s VGG16 as NetSpec, for the benchmark only (the paper's nets live in nets/)."""
from caffe_torch import layers as L, params as P, NetSpec
from caffe_torch.coord_map import crop

VGG_BLOCKS = [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]
FROZEN = [dict(lr_mult=0)]
LEARN = [dict(lr_mult=1, decay_mult=1), dict(lr_mult=2, decay_mult=0)]


def _conv_relu(bottom, nout, ks=3, pad=1):
    conv = L.Convolution(bottom, kernel_size=ks, num_output=nout, pad=pad, param=LEARN)
    return conv, L.ReLU(conv, in_place=True)


def _upscore(bottom, classes, ks, stride):
    return L.Deconvolution(bottom, param=FROZEN, convolution_param=dict(
        num_output=classes, kernel_size=ks, stride=stride, bias_term=False))


def fcn8s(size, train=True, classes=21):
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 3, size, size]))
    bottom = n.data
    for b, (width, count) in enumerate(VGG_BLOCKS, 1):
        for i in range(1, count + 1):
            pad = 100 if (b, i) == (1, 1) else 1
            conv, relu = _conv_relu(bottom, width, pad=pad)
            setattr(n, f'conv{b}_{i}', conv)
            setattr(n, f'relu{b}_{i}', relu)
            bottom = relu
        setattr(n, f'pool{b}', L.Pooling(bottom, pool=P.Pooling.MAX, kernel_size=2, stride=2))
        bottom = getattr(n, f'pool{b}')
    n.fc6, n.relu6 = _conv_relu(n.pool5, 4096, ks=7, pad=0)
    n.drop6 = L.Dropout(n.relu6, dropout_ratio=0.5, in_place=True)
    n.fc7, n.relu7 = _conv_relu(n.drop6, 4096, ks=1, pad=0)
    n.drop7 = L.Dropout(n.relu7, dropout_ratio=0.5, in_place=True)
    n.score_fr = L.Convolution(n.drop7, num_output=classes, kernel_size=1, param=LEARN)
    n.upscore2 = _upscore(n.score_fr, classes, 4, 2)
    n.score_pool4 = L.Convolution(n.pool4, num_output=classes, kernel_size=1, param=LEARN)
    n.score_pool4c = crop(n.score_pool4, n.upscore2)
    n.fuse_pool4 = L.Eltwise(n.upscore2, n.score_pool4c, operation=P.Eltwise.SUM)
    n.upscore_pool4 = _upscore(n.fuse_pool4, classes, 4, 2)
    n.score_pool3 = L.Convolution(n.pool3, num_output=classes, kernel_size=1, param=LEARN)
    n.score_pool3c = crop(n.score_pool3, n.upscore_pool4)
    n.fuse_pool3 = L.Eltwise(n.upscore_pool4, n.score_pool3c, operation=P.Eltwise.SUM)
    n.upscore8 = _upscore(n.fuse_pool3, classes, 16, 8)
    n.score = crop(n.upscore8, n.data)
    if train:
        n.label = L.Input(shape=dict(dim=[1, 1, size, size]))
        n.loss = L.SoftmaxWithLoss(n.score, n.label,
                                   loss_param=dict(normalize=False, ignore_label=255))
    return n.to_proto()
