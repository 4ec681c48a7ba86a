"""One builder per family: a model's train, val or deploy NetParameter from its options.

    single(dataset, trunk, stride)      VOC, PASCAL-Context, FCN-AlexNet, FCN-GoogLeNet, and
                                        the demo's narrow VGG16 nets (widths, fc6_size)
    nyud(modalities, stride)            color, hha, color-d (4 channels), color-hha (late
                                        fusion of two streams, 0.5/0.5 sum of their scores)
    siftflow(stride)                    one trunk, two heads: 33 semantic and 3 geometric
`split` is 'train', 'val' or 'deploy': train and val read the dataset through its Python
data layer and end in the loss; deploy takes an Input and ends in `score`, without Dropout.
"""
from backend import caffe
from nets.alexnet import caffenet_trunk
from nets.datasets import DATASETS, data_tops
from nets.googlenet import googlenet_trunk
from nets.layers import loss, score
from nets.vgg import fcn_head, vgg16_trunk

L, P = caffe.layers, caffe.params

TRUNKS = {'vgg16': vgg16_trunk, 'caffenet': caffenet_trunk, 'googlenet': googlenet_trunk}
# The 32x deconvolution's kernel: 2 x stride for VGG16; 63 where the trunk's pooling leaves
# the coarse grid half a pixel off (AlexNet's reference net; GoogLeNet likewise), so that
# the crop offset is a whole number of pixels.
UPSCORE32_KERNEL = {'vgg16': 64, 'caffenet': 63, 'googlenet': 63}


def single(dataset, split, trunk='vgg16', stride=32, atonce=False, normalize=False,
           widths=None, fc6_size=None):
    """data -> trunk -> score_fr -> FCN-<stride>s head -> score (-> loss). `widths` and
    `fc6_size` narrow the VGG16 trunk and size its fc6 kernel (nets.vgg; the demo's nets)."""
    n = caffe.NetSpec()
    tops = ['data'] if split == 'deploy' else ['data', 'label']
    for name, top in zip(tops, data_tops(dataset, split, tops)):
        n[name] = top
    classes = DATASETS[dataset]['classes']
    kwargs = {k: v for k, v in (('widths', widths), ('fc6_size', fc6_size)) if v is not None}
    if kwargs and trunk != 'vgg16':
        raise ValueError(f'{" and ".join(kwargs)} apply to the vgg16 trunk only, not {trunk}')
    n.score_fr = score(TRUNKS[trunk](n, n.data, train=split != 'deploy', **kwargs), classes)
    n.score = fcn_head(n, n.score_fr, classes, stride, n.data, atonce=atonce,
                       ks32=UPSCORE32_KERNEL[trunk])
    if split != 'deploy':
        n.loss = loss(n.score, n.label, normalize)
    return n.to_proto()


def nyud(split, modalities='color', stride=32):
    """NYUDv2 nets, named as fcn's: one stream reads its modality (param_str 'tops') into
    the top `data`; two streams name their tops after the modalities and average their
    scores into `score_fused`."""
    streams = modalities.split('-')
    inputs = ['color', 'depth'] if streams == ['color', 'd'] else streams
    n = caffe.NetSpec()
    tops = inputs + ([] if split == 'deploy' else ['label'])
    names = ['data'] + tops[1:] if len(streams) == 1 else tops
    for name, top in zip(names, data_tops('nyud', split, tops)):
        n[name] = top
    train, classes = split != 'deploy', DATASETS['nyud']['classes']
    scores = 'score_fr'
    if streams == ['color', 'd']:
        n.data = L.Concat(n.color, n.depth)
        fr = score(vgg16_trunk(n, n.data, first_conv='conv1_1_bgrd', train=train), classes)
        reference = n.data
    elif len(streams) == 1:
        fr = score(vgg16_trunk(n, n.data, train=train), classes)
        reference = n.data
    else:
        fr, reference = _late_fusion(n, streams, classes, stride, train), n[streams[0]]
        scores = 'score_fused'
    n[scores] = fr
    n.score = fcn_head(n, n[scores], classes, stride, reference)
    if train:
        n.loss = loss(n.score, n.label)
    return n.to_proto()


def _late_fusion(n, streams, classes, stride, train):
    """Two full streams, suffixed by modality; scores averaged (0.5/0.5 Eltwise sum)."""
    for stream in streams:
        n['score_fr' + stream] = score(vgg16_trunk(n, n[stream], suffix=stream, train=train),
                                       classes)
        if stride < 32:
            n['score_pool4' + stream] = score(n['pool4' + stream], classes)
    if stride < 32:
        n.score_pool4 = _average(*(n['score_pool4' + s] for s in streams))
    return _average(*(n['score_fr' + s] for s in streams))


def _average(a, b):
    return L.Eltwise(a, b, operation=P.Eltwise.SUM, coeff=[0.5, 0.5])


def siftflow(split, stride=32):
    """One VGG16 trunk with a semantic (33) and a geometric (3) head and a loss each."""
    n = caffe.NetSpec()
    tops = ['data'] if split == 'deploy' else ['data', 'sem', 'geo']
    for name, top in zip(tops, data_tops('siftflow', split, tops)):
        n[name] = top
    trunk = vgg16_trunk(n, n.data, train=split != 'deploy')
    for task, classes, loss_name in (('sem', 33, 'loss'), ('geo', 3, 'loss_geo')):
        n['score_fr_' + task] = score(trunk, classes)
        n['score_' + task] = fcn_head(n, n['score_fr_' + task], classes, stride, n.data,
                                      suffix='_' + task)
        if split != 'deploy':
            n[loss_name] = loss(n['score_' + task], n[task])
    return n.to_proto()
