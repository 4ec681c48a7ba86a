"""How each dataset enters a net: its Python data layer, splits, tops, classes and shape.

Train nets read the reference's training split in random order (seeded, with replacement);
val nets read the evaluation split in order. The layers find the data through
data_layers.paths (FCN_DATA), so the prototxts carry no path. Deploy nets take an Input of
the dataset's typical image size instead.
"""
from caffe_torch import layers as L

VOC_MEAN = (104.00699, 116.66877, 122.67892)
SEED = 1337

DATASETS = {
    'voc': dict(module='data_layers.voc', classes=21, deploy_hw=(500, 500),
                train=('SBDDSegDataLayer', 'train'), val=('VOCSegDataLayer', 'seg11valid'),
                extra=dict(mean=VOC_MEAN), requires=('sbdd', 'voc')),
    'nyud': dict(module='data_layers.nyud', classes=40, deploy_hw=(425, 560),
                 train=('NYUDSegDataLayer', 'trainval'), val=('NYUDSegDataLayer', 'test'),
                 extra={}, requires=('nyud',)),
    'siftflow': dict(module='data_layers.siftflow', classes=(33, 3), deploy_hw=(256, 256),
                     train=('SIFTFlowSegDataLayer', 'trainval'),
                     val=('SIFTFlowSegDataLayer', 'test'), extra={}, requires=('siftflow',)),
    'pascalcontext': dict(module='data_layers.pascalcontext', classes=60,
                          deploy_hw=(500, 500), train=('PASCALContextSegDataLayer', 'train'),
                          val=('PASCALContextSegDataLayer', 'val'), extra={},
                          requires=('voc2010', 'pascal_context')),
}

CHANNELS = {'data': 3, 'color': 3, 'hha': 3, 'depth': 1}


def data_tops(dataset, split, tops):
    """The data layer (or, for 'deploy', Input layers) producing `tops`, as a tuple."""
    spec = DATASETS[dataset]
    if split == 'deploy':
        h, w = spec['deploy_hw']
        return tuple(L.Input(shape=dict(dim=[1, CHANNELS[t], h, w]))
                     for t in tops if t in CHANNELS)
    layer, split_name = spec[split]
    params = dict(split=split_name, randomize=split == 'train', seed=SEED, **spec['extra'])
    if dataset == 'nyud':
        params['tops'] = list(tops)
    result = L.Python(module=spec['module'], layer=layer, ntop=len(tops),
                      param_str=str(params))
    return result if len(tops) > 1 else (result,)
