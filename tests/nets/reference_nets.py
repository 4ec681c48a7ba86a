"""The reference implementation's nets, rebuilt independently of nets/ for comparison.

A transcription of what each `<model>/net.py` of shelhamer/fcn.berkeleyvision.org
(@3f83b8d) writes with pycaffe's NetSpec: layer names, order, kernels, strides, pads,
multipliers, outputs, Eltwise coefficients and the crops coord_map derives. Only the data
layer's python_param is not transcribed faithfully (the tests ignore it); its tops are.

    reference_net(model_id, 'train' | 'val')   the NetParameter of that split

'train' is the split the reference writes to train(val).prototxt, 'val' the one it writes
to val.prototxt or test.prototxt (SPLITS). Dropout stays in both: the reference's fcn()
builds the same net for every split.
"""
from caffe_torch import NetSpec, layers as L, params as P
from caffe_torch.coord_map import crop

LEARN = [dict(lr_mult=1, decay_mult=1), dict(lr_mult=2, decay_mult=0)]
FIXED = [dict(lr_mult=0)]
VGG16 = [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]

# family: data-layer module, its layer classes (train, val), split names (train, val), classes
FAMILIES = {
    'voc': ('voc_layers', ('SBDDSegDataLayer', 'VOCSegDataLayer'), ('train', 'seg11valid'), 21),
    'pascalcontext': ('pascalcontext_layers', ('PASCALContextSegDataLayer',) * 2,
                      ('train', 'val'), 60),
    'nyud': ('nyud_layers', ('NYUDSegDataLayer',) * 2, ('trainval', 'test'), 40),
    'siftflow': ('siftflow_layers', ('SIFTFlowSegDataLayer',) * 2, ('trainval', 'test'), None),
}
SPLITS = {family: spec[2] for family, spec in FAMILIES.items()}


def _data(n, family, which, tops):
    module, layers, splits = FAMILIES[family][:3]
    index = ('train', 'val').index(which)
    outs = L.Python(module=module, layer=layers[index], ntop=len(tops),
                    param_str=str(dict(split=splits[index], seed=1337)))
    for name, top in zip(tops, outs):
        n[name] = top


def _conv(bottom, nout, ks=3, pad=1):
    conv = L.Convolution(bottom, kernel_size=ks, stride=1, num_output=nout, pad=pad,
                         param=LEARN)
    return conv, L.ReLU(conv, in_place=True)


def _score(bottom, classes):
    return L.Convolution(bottom, num_output=classes, kernel_size=1, pad=0, param=LEARN)


def _up(bottom, classes, ks, stride):
    return L.Deconvolution(bottom, param=FIXED, convolution_param=dict(
        num_output=classes, kernel_size=ks, stride=stride, bias_term=False))


def _loss(score, label, normalize=False):
    return L.SoftmaxWithLoss(score, label,
                             loss_param=dict(normalize=normalize, ignore_label=255))


def vgg16(n, bottom, s='', first=None):
    """conv1_1 (pad 100) .. pool5, fc6 7x7, fc7 1x1, each fc with ReLU and Dropout 0.5;
    names carry the suffix `s`; `first` renames conv1_1. Returns drop7's top."""
    top = bottom
    for b, (width, count) in enumerate(VGG16, 1):
        for i in range(1, count + 1):
            conv = (first or f'conv1_1{s}') if (b, i) == (1, 1) else f'conv{b}_{i}{s}'
            n[conv], n[f'relu{b}_{i}{s}'] = _conv(top, width, pad=100 if b == i == 1 else 1)
            top = n[f'relu{b}_{i}{s}']
        n[f'pool{b}{s}'] = L.Pooling(top, pool=P.Pooling.MAX, kernel_size=2, stride=2)
        top = n[f'pool{b}{s}']
    for i, ks in ((6, 7), (7, 1)):
        n[f'fc{i}{s}'], n[f'relu{i}{s}'] = _conv(top, 4096, ks=ks, pad=0)
        n[f'drop{i}{s}'] = L.Dropout(n[f'relu{i}{s}'], dropout_ratio=0.5, in_place=True)
        top = n[f'drop{i}{s}']
    return top


def caffenet(n, bottom):
    """conv1 (11x11/4, pad 100) .. pool5 with pooling before LRN, fc6 6x6, fc7 1x1; no
    param specs (Caffe's default multipliers), group given explicitly as the reference does."""
    def conv(name, i, top, ks, nout, stride=1, pad=0, group=1):
        n[name] = L.Convolution(top, kernel_size=ks, stride=stride, num_output=nout,
                                pad=pad, group=group)
        n[f'relu{i}'] = L.ReLU(n[name], in_place=True)
        return n[f'relu{i}']

    def pool(i, top):
        n[f'pool{i}'] = L.Pooling(top, pool=P.Pooling.MAX, kernel_size=3, stride=2)
        return n[f'pool{i}']

    def norm(i, top):
        n[f'norm{i}'] = L.LRN(top, local_size=5, alpha=1e-4, beta=0.75)
        return n[f'norm{i}']

    top = norm(1, pool(1, conv('conv1', 1, bottom, 11, 96, stride=4, pad=100)))
    top = norm(2, pool(2, conv('conv2', 2, top, 5, 256, pad=2, group=2)))
    top = conv('conv3', 3, top, 3, 384, pad=1)
    top = conv('conv4', 4, top, 3, 384, pad=1, group=2)
    top = pool(5, conv('conv5', 5, top, 3, 256, pad=1, group=2))
    for i, ks in ((6, 6), (7, 1)):
        top = conv(f'fc{i}', i, top, ks, 4096)
        n[f'drop{i}'] = L.Dropout(top, dropout_ratio=0.5, in_place=True)
        top = n[f'drop{i}']
    return top


def head(n, fr, classes, stride, ref, s='', ks32=64, at_once=False):
    """score_fr -> FCN-32s/16s/8s upsampling and skips -> n['score' + s] cropped to `ref`."""
    if stride == 32:
        n['upscore' + s] = _up(fr, classes, ks32, 32)
        n['score' + s] = crop(n['upscore' + s], ref)
        return
    up = n['upscore2' + s] = _up(fr, classes, 4, 2)
    skips = [('pool4', 0.01)] + ([('pool3', 0.0001)] if stride == 8 else [])
    for k, (pool, scale) in enumerate(skips):
        bottom = n[pool]
        if at_once:
            n[f'scale_{pool}{s}'] = L.Scale(bottom, param=FIXED,
                                            filler=dict(type='constant', value=scale))
            bottom = n[f'scale_{pool}{s}']
        n[f'score_{pool}{s}'] = _score(bottom, classes)
        n[f'score_{pool}{s}c'] = crop(n[f'score_{pool}{s}'], up)
        n[f'fuse_{pool}{s}'] = L.Eltwise(up, n[f'score_{pool}{s}c'], operation=P.Eltwise.SUM)
        if k + 1 < len(skips):
            up = n[f'upscore_{pool}{s}'] = _up(n[f'fuse_{pool}{s}'], classes, 4, 2)
    final = n[f'upscore{stride}{s}'] = _up(n[f'fuse_{pool}{s}'], classes, 2 * stride, stride)
    n['score' + s] = crop(final, ref)


def single(family, which, stride=32, at_once=False, trunk='vgg16'):
    """VOC and PASCAL-Context nets (and FCN-AlexNet): data, label -> score -> loss."""
    n, classes = NetSpec(), FAMILIES[family][3]
    _data(n, family, which, ['data', 'label'])
    alex = trunk == 'caffenet'
    n.score_fr = _score(caffenet(n, n.data) if alex else vgg16(n, n.data), classes)
    head(n, n.score_fr, classes, stride, n.data, ks32=63 if alex else 64, at_once=at_once)
    n.loss = _loss(n.score, n.label, normalize=alex)
    return n.to_proto()


def nyud(which, modalities):
    """NYUDv2 FCN-32s: one stream (`data`), color+depth concatenated into `data`
    (conv1_1_bgrd), or color and hha streams averaged into score_fused."""
    n, classes = NetSpec(), 40
    if modalities in ('color', 'hha'):
        _data(n, 'nyud', which, ['data', 'label'])
        n.score_fr = _score(vgg16(n, n.data), classes)
        fr, ref = n.score_fr, n.data
    elif modalities == 'color-d':
        _data(n, 'nyud', which, ['color', 'depth', 'label'])
        n.data = L.Concat(n.color, n.depth)
        n.score_fr = _score(vgg16(n, n.data, first='conv1_1_bgrd'), classes)
        fr, ref = n.score_fr, n.data
    else:
        _data(n, 'nyud', which, ['color', 'hha', 'label'])
        for m in ('color', 'hha'):
            n['score_fr' + m] = _score(vgg16(n, n[m], s=m), classes)
        n.score_fused = L.Eltwise(n.score_frcolor, n.score_frhha, operation=P.Eltwise.SUM,
                                  coeff=[0.5, 0.5])
        fr, ref = n.score_fused, n.color
    head(n, fr, classes, 32, ref)
    n.loss = _loss(n.score, n.label)
    return n.to_proto()


def siftflow(which, stride):
    """SIFT Flow: one VGG16 trunk, a 33-class semantic and a 3-class geometric head."""
    n = NetSpec()
    _data(n, 'siftflow', which, ['data', 'sem', 'geo'])
    drop7 = vgg16(n, n.data)
    for task, classes, loss in (('sem', 33, 'loss'), ('geo', 3, 'loss_geo')):
        n['score_fr_' + task] = _score(drop7, classes)
        head(n, n['score_fr_' + task], classes, stride, n.data, s='_' + task)
        n[loss] = _loss(n['score_' + task], n[task])
    return n.to_proto()


BUILDERS = {
    'voc-fcn32s': lambda w: single('voc', w, 32),
    'voc-fcn16s': lambda w: single('voc', w, 16),
    'voc-fcn8s': lambda w: single('voc', w, 8),
    'voc-fcn8s-atonce': lambda w: single('voc', w, 8, at_once=True),
    'voc-fcn-alexnet': lambda w: single('voc', w, 32, trunk='caffenet'),
    'nyud-fcn32s-color': lambda w: nyud(w, 'color'),
    'nyud-fcn32s-hha': lambda w: nyud(w, 'hha'),
    'nyud-fcn32s-color-d': lambda w: nyud(w, 'color-d'),
    'nyud-fcn32s-color-hha': lambda w: nyud(w, 'color-hha'),
    'siftflow-fcn32s': lambda w: siftflow(w, 32),
    'siftflow-fcn16s': lambda w: siftflow(w, 16),
    'siftflow-fcn8s': lambda w: siftflow(w, 8),
    'pascalcontext-fcn32s': lambda w: single('pascalcontext', w, 32),
    'pascalcontext-fcn16s': lambda w: single('pascalcontext', w, 16),
    'pascalcontext-fcn8s': lambda w: single('pascalcontext', w, 8),
}


def reference_net(model_id, which):
    """The reference's NetParameter for `model_id`: 'train' or 'val' (its test split)."""
    if which not in ('train', 'val'):
        raise ValueError(f"which must be 'train' or 'val', got {which!r}")
    return BUILDERS[model_id](which)
