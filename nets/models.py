"""The paper's models: builder, options, solver recipe, initialisation and expected score.

Solver recipes are the reference's solver.prototxt values (fcn-facts §1.3); `rounds` x
`step` is its solve.py loop. Rows marked `ours` have no released recipe: FCN-GoogLeNet
follows the paper's §4.1 (lr 5e-5, normalized loss, 20-image batches as iter_size 20,
momentum 0.9); nyud-fcn16s-color-hha lowers the rate 10x from its 32s stage, as every other
skip stage does.
"""
from functools import partial

from nets import builders

VOC = dict(dataset='voc', test_iter=736, snapshot=4000, max_iter=100000, rounds=25,
           step=4000)
NYUD = dict(dataset='nyud', test_iter=654, snapshot=2000, max_iter=300000, rounds=50,
            step=2000)
SIFTFLOW = dict(dataset='siftflow', test_iter=200, snapshot=0, max_iter=300000, rounds=50,
                step=2000)
CONTEXT = dict(dataset='pascalcontext', test_iter=5105, snapshot=4000, max_iter=300000,
               rounds=50, step=8000)
UNNORMALIZED = dict(momentum=0.99, iter_size=1, normalized=False)


def _model(family, build, base_lr, init, expected, **extra):
    spec = dict(family, build=build, base_lr=base_lr, init=init, expected=expected)
    spec.update(UNNORMALIZED)
    spec.update(extra)
    return spec


MODELS = {
    'voc-fcn32s': _model(VOC, partial(builders.single, 'voc', stride=32), 1e-10,
                         'vgg16-fcn', 'seg11valid mean IU 63.6 (released model 63.63)'),
    'voc-fcn16s': _model(VOC, partial(builders.single, 'voc', stride=16), 1e-12,
                         'voc-fcn32s', 'seg11valid mean IU 65.0 (released model 65.01)'),
    'voc-fcn8s': _model(VOC, partial(builders.single, 'voc', stride=8), 1e-14,
                        'voc-fcn16s', 'seg11valid mean IU 65.5 (released 65.51); '
                                      'VOC2012 test 67.2'),
    'voc-fcn8s-atonce': _model(VOC, partial(builders.single, 'voc', stride=8, atonce=True),
                               1e-10, 'vgg16-fcn', 'seg11valid mean IU 65.4 (released 65.40)',
                               max_iter=300000, rounds=75),
    'voc-fcn-alexnet': _model(VOC, partial(builders.single, 'voc', trunk='caffenet',
                                           normalize=True), 1e-4, 'alexnet-fcn',
                              'seg11valid mean IU 48.0 (reference README)', momentum=0.9,
                              iter_size=20, normalized=True),
    'voc-fcn-googlenet': _model(VOC, partial(builders.single, 'voc', trunk='googlenet',
                                             normalize=True), 5e-5, 'googlenet-fcn',
                                'VOC2011 val mean IU 42.5 (paper Table 1, CVPR model)',
                                momentum=0.9, iter_size=20, normalized=True, ours=True),
    'nyud-fcn32s-color': _model(NYUD, partial(builders.nyud, modalities='color'), 1e-10,
                                'vgg16-fcn', 'NYUDv2 test mean IU 29.2 (paper Table 4)'),
    'nyud-fcn32s-hha': _model(NYUD, partial(builders.nyud, modalities='hha'), 1e-10,
                              'vgg16-fcn', 'NYUDv2 test mean IU 24.2 (paper Table 4)'),
    'nyud-fcn32s-color-d': _model(NYUD, partial(builders.nyud, modalities='color-d'), 1e-10,
                                  'vgg16-fcn', 'NYUDv2 test mean IU 30.5 (paper Table 4, '
                                               'RGBD)'),
    'nyud-fcn32s-color-hha': _model(NYUD, partial(builders.nyud, modalities='color-hha'),
                                    1e-12, 'nyud-fcn32s-color + nyud-fcn32s-hha',
                                    'NYUDv2 test mean IU 32.8 (paper Table 4)'),
    'nyud-fcn16s-color-hha': _model(NYUD, partial(builders.nyud, modalities='color-hha',
                                                  stride=16), 1e-13, 'nyud-fcn32s-color-hha',
                                    'NYUDv2 test mean IU 34.0 (paper Table 4)', ours=True),
    'siftflow-fcn32s': _model(SIFTFLOW, partial(builders.siftflow, stride=32), 1e-10,
                              'vgg16-fcn', 'SIFT Flow test (paper reports FCN-16s only)'),
    'siftflow-fcn16s': _model(SIFTFLOW, partial(builders.siftflow, stride=16), 1e-12,
                              'siftflow-fcn32s', 'SIFT Flow test: pixel acc. 85.2, mean IU '
                                                 '39.5, geom. acc. 94.3 (paper Table 5)'),
    'siftflow-fcn8s': _model(SIFTFLOW, partial(builders.siftflow, stride=8), 1e-12,
                             'siftflow-fcn16s', 'SIFT Flow test (paper reports FCN-16s only)'),
    'pascalcontext-fcn32s': _model(CONTEXT, partial(builders.single, 'pascalcontext',
                                                    stride=32), 1e-10, 'vgg16-fcn',
                                   'PASCAL-Context val, 59 classes: mean IU 31.8'),
    'pascalcontext-fcn16s': _model(CONTEXT, partial(builders.single, 'pascalcontext',
                                                    stride=16), 1e-12, 'pascalcontext-fcn32s',
                                   'PASCAL-Context val, 59 classes: mean IU 34.8'),
    'pascalcontext-fcn8s': _model(CONTEXT, partial(builders.single, 'pascalcontext',
                                                   stride=8), 1e-14, 'pascalcontext-fcn16s',
                                  'PASCAL-Context val, 59 classes: mean IU 35.1'),
}
