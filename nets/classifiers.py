"""The ImageNet classifiers FCN starts from, as deploy nets with their layer names.

Surgery transplants their weights by name: convolutions directly, the InnerProduct fc6/fc7
reshaped into the FCN's convolutions, the 1000-way classifiers dropped. The published
VGG16 and CaffeNet prototxts are V1 files; these are their current-format twins.
"""
from caffe_torch import layers as L, params as P, NetSpec
from nets.alexnet import caffenet_convs
from nets.googlenet import googlenet_convs
from nets.layers import fc_layers
from nets.vgg import vgg16_convs


def _classify(n, bottom, name='fc8'):
    n[name] = L.InnerProduct(bottom, num_output=1000)
    n.prob = L.Softmax(n[name])
    return n.to_proto()


def vgg16_ilsvrc():
    """VGG_ILSVRC_16_layers deploy: 224x224, conv pad 1, fc6/fc7/fc8 InnerProduct."""
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[10, 3, 224, 224]))
    pool5 = vgg16_convs(n, n.data, first_pad=1)
    return _classify(n, fc_layers(n, pool5, None, convolutional=False))


def caffenet_ilsvrc():
    """bvlc_reference_caffenet deploy: 227x227, pool before LRN, grouped conv2/4/5."""
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[10, 3, 227, 227]))
    pool5 = caffenet_convs(n, n.data, first_pad=0)
    return _classify(n, fc_layers(n, pool5, None, convolutional=False))


def googlenet_ilsvrc():
    """bvlc_googlenet deploy: 224x224, 7x7 average pooling, dropout 0.4, loss3/classifier."""
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[10, 3, 224, 224]))
    top = googlenet_convs(n, n.data, first_pad=3)
    n['pool5/7x7_s1'] = L.Pooling(top, pool=P.Pooling.AVE, kernel_size=7, stride=1)
    n['pool5/drop_7x7_s1'] = L.Dropout(n['pool5/7x7_s1'], dropout_ratio=0.4, in_place=True)
    return _classify(n, n['pool5/drop_7x7_s1'], 'loss3/classifier')


CLASSIFIERS = {'vgg16-ilsvrc': vgg16_ilsvrc, 'caffenet-ilsvrc': caffenet_ilsvrc,
               'googlenet-ilsvrc': googlenet_ilsvrc}
