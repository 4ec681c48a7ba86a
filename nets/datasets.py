"""How each dataset enters a net: its Python data layer, splits, tops, classes and shape.

Train nets read the reference's training split in random order (seeded, with replacement);
val nets read the evaluation split in order. The layers find the data through
data_layers.paths (FCN_DATA), so the prototxts carry no path. Deploy nets take an Input of
the dataset's typical image size instead.
"""
from backend import caffe
from data_layers.voc import VOC_MEAN  # the layers' default: the nets write it out

L = caffe.layers

SEED = 1337
DEMO_BATCH = 16      # images per forward of the demo classifier (train and val)
DEMO_SCALE = 1 / 64  # the demo's inputs, mean-subtracted, times this: about unit variance

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
    # make demo's generated sets (solve/demo_data.py): background + 5 shape classes in VOC's
    # layout, and the 5 shapes as an ImageNet-style classification set of 128 x 128 images
    'demo_voc': dict(module='data_layers.voc', classes=6, deploy_hw=(160, 160),
                     train=('VOCLayoutSegDataLayer', 'train'),
                     val=('VOCLayoutSegDataLayer', 'val'),
                     extra=dict(mean=VOC_MEAN, scale=DEMO_SCALE, dataset='demo_voc'),
                     requires=('demo_voc',)),
    'demo_classes': dict(module='data_layers.classification', classes=5,
                         deploy_hw=(128, 128), train=('ClassificationDataLayer', 'train'),
                         val=('ClassificationDataLayer', 'val'),
                         extra=dict(mean=VOC_MEAN, scale=DEMO_SCALE, batch_size=DEMO_BATCH,
                                    classes=5),
                         requires=('demo_classes',)),
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
