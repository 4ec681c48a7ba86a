"""The ImageNet classifiers FCN starts from, as deploy nets with their layer names.

Surgery transplants their weights by name: convolutions directly, the InnerProduct fc6/fc7
reshaped into the FCN's convolutions, the 1000-way classifiers dropped. The published
VGG16 and CaffeNet prototxts are V1 files; these are their current-format twins.

vgg16_classifier also builds the demo's classifier (make demo): VGG16's layers and names at
reduced widths, trained from scratch on the demo's classification set through its data
layer (train/val) or taking an Input (deploy).
"""
from backend import caffe
from nets.alexnet import caffenet_convs
from nets.datasets import data_tops
from nets.googlenet import googlenet_convs
from nets.layers import fc_layers
from nets.vgg import VGG16_WIDTHS, check_widths, vgg16_convs

L, P = caffe.layers, caffe.params

# He et al.'s initialisation for the layers of a classifier trained from scratch; the
# classifier (fc8) stays zero-initialised, as FCN's scorers.
SCRATCH = dict(weight_filler=dict(type='msra'))


def _classify(n, bottom, name='fc8', classes=1000):
    n[name] = L.InnerProduct(bottom, num_output=classes)
    n.prob = L.Softmax(n[name])
    return n.to_proto()


def vgg16_ilsvrc():
    """VGG_ILSVRC_16_layers deploy: 224x224, conv pad 1, fc6/fc7/fc8 InnerProduct."""
    return vgg16_classifier()


def vgg16_classifier(split='deploy', widths=VGG16_WIDTHS, classes=1000, dataset=None,
                     fillers=None):
    """VGG16's classifier, conv1_1 (pad 1) .. pool5, fc6/fc7/fc8 InnerProduct, at `widths`
    (nets.vgg) with `classes` outputs. The data: the `dataset`'s layer (nets.datasets) for
    'train' and 'val', ending in the softmax loss (and accuracy for 'val'); for 'deploy' an
    Input (the dataset's deploy size, or 10 x 3 x 224 x 224), ending in prob. fc6 sees pool5
    whole, input / 32 on a side, which surgery makes FCN's fc6 kernel: 7 for 224 x 224
    images, 4 for the demo's 128 x 128 (nets.vgg.vgg16_trunk's fc6_size)."""
    n = caffe.NetSpec()
    if split == 'deploy':
        n.data = (L.Input(shape=dict(dim=[10, 3, 224, 224])) if dataset is None
                  else data_tops(dataset, split, ['data'])[0])
    else:
        n.data, n.label = data_tops(dataset, split, ['data', 'label'])
    widths = check_widths(widths)
    pool5 = vgg16_convs(n, n.data, first_pad=1, widths=widths, fillers=fillers)
    top = fc_layers(n, pool5, None, convolutional=False, width=widths[5], fillers=fillers)
    if split == 'deploy':
        return _classify(n, top, classes=classes)
    n.fc8 = L.InnerProduct(top, num_output=classes)
    n.loss = L.SoftmaxWithLoss(n.fc8, n.label)
    if split == 'val':
        n.accuracy = L.Accuracy(n.fc8, n.label)
    return n.to_proto()


def caffenet_ilsvrc():
    """bvlc_reference_caffenet deploy: 227x227, pool before LRN, grouped conv2/4/5."""
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[10, 3, 227, 227]))
    pool5 = caffenet_convs(n, n.data, first_pad=0)
    return _classify(n, fc_layers(n, pool5, None, convolutional=False))


def googlenet_ilsvrc():
    """bvlc_googlenet deploy: 224x224, 7x7 average pooling, dropout 0.4, loss3/classifier."""
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[10, 3, 224, 224]))
    top = googlenet_convs(n, n.data, first_pad=3)
    n['pool5/7x7_s1'] = L.Pooling(top, pool=P.Pooling.AVE, kernel_size=7, stride=1)
    n['pool5/drop_7x7_s1'] = L.Dropout(n['pool5/7x7_s1'], dropout_ratio=0.4, in_place=True)
    return _classify(n, n['pool5/drop_7x7_s1'], 'loss3/classifier')


CLASSIFIERS = {'vgg16-ilsvrc': vgg16_ilsvrc, 'caffenet-ilsvrc': caffenet_ilsvrc,
               'googlenet-ilsvrc': googlenet_ilsvrc}
