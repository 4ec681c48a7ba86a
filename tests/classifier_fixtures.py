"""A small VGG-shaped ImageNet-style classifier written in Caffe's V1 format, and its FCN
twin: the test material of surgery and weight conversion."""
import numpy as np

from caffe_torch import formats
from caffe_torch.proto import caffe_pb2

CLASSES = 5
# A VGG-shaped classifier in Caffe's V1 format: 12x12 windows, convolutions without padding
# (so a window's score does not depend on what lies around it), fc6/fc7/fc8 InnerProduct.
V1_CLASSIFIER = '''
name: "tiny_vgg"
input: "data" input_dim: 1 input_dim: 3 input_dim: 12 input_dim: 12
layers { name: "conv1_1" type: CONVOLUTION bottom: "data" top: "conv1_1"
         blobs_lr: 1 blobs_lr: 2 convolution_param { num_output: 4 kernel_size: 3 } }
layers { name: "relu1_1" type: RELU bottom: "conv1_1" top: "conv1_1" }
layers { name: "pool1" type: POOLING bottom: "conv1_1" top: "pool1"
         pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layers { name: "conv2_1" type: CONVOLUTION bottom: "pool1" top: "conv2_1"
         convolution_param { num_output: 6 kernel_size: 3 } }
layers { name: "relu2_1" type: RELU bottom: "conv2_1" top: "conv2_1" }
layers { name: "fc6" type: INNER_PRODUCT bottom: "conv2_1" top: "fc6"
         inner_product_param { num_output: 8 } }
layers { name: "relu6" type: RELU bottom: "fc6" top: "fc6" }
layers { name: "fc7" type: INNER_PRODUCT bottom: "fc6" top: "fc7"
         inner_product_param { num_output: 8 } }
layers { name: "relu7" type: RELU bottom: "fc7" top: "fc7" }
layers { name: "fc8" type: INNER_PRODUCT bottom: "fc7" top: "fc8"
         inner_product_param { num_output: %d } }
''' % CLASSES
# legacy 4-D shapes of the V1 blobs: biases 1x1x1xN, InnerProduct weights 1x1xOxI
V1_BLOBS = {'conv1_1': [(4, 3, 3, 3), (1, 1, 1, 4)], 'conv2_1': [(6, 4, 3, 3), (1, 1, 1, 6)],
            'fc6': [(1, 1, 8, 54), (1, 1, 1, 8)], 'fc7': [(1, 1, 8, 8), (1, 1, 1, 8)],
            'fc8': [(1, 1, CLASSES, 8), (1, 1, 1, CLASSES)]}


def fcn_text(size=20, fc8='fc8'):
    """The FCN twin: the same convolutions, fc6 as a 3x3 and fc7/fc8 as 1x1 convolutions."""
    conv = "layer { name: '%s' type: 'Convolution' bottom: '%s' top: '%s' " \
           "convolution_param { num_output: %d kernel_size: %d } }\n"
    relu = "layer { name: 'relu_%s' type: 'ReLU' bottom: '%s' top: '%s' }\n"
    text = ("layer { name: 'data' type: 'Input' top: 'data' "
            "input_param { shape { dim: 1 dim: 3 dim: %d dim: %d } } }\n" % (size, size))
    text += conv % ('conv1_1', 'data', 'conv1_1', 4, 3) + relu % (('conv1_1',) * 3)
    text += ("layer { name: 'pool1' type: 'Pooling' bottom: 'conv1_1' top: 'pool1' "
             "pooling_param { pool: MAX kernel_size: 2 stride: 2 } }\n")
    text += conv % ('conv2_1', 'pool1', 'conv2_1', 6, 3) + relu % (('conv2_1',) * 3)
    text += conv % ('fc6', 'conv2_1', 'fc6', 8, 3) + relu % (('fc6',) * 3)
    text += conv % ('fc7', 'fc6', 'fc7', 8, 1) + relu % (('fc7',) * 3)
    return text + conv % (fc8, 'fc7', 'score', CLASSES, 1)


def write_v1_classifier(folder, seed=0):
    """The classifier's prototxt and caffemodel, both in the V1 format, as files."""
    rng = np.random.RandomState(seed)
    net = formats.parse_prototxt(V1_CLASSIFIER, caffe_pb2.NetParameter())
    for layer in net.layers:
        for shape in V1_BLOBS.get(layer.name, []):
            blob = layer.blobs.add(num=shape[0], channels=shape[1], height=shape[2],
                                   width=shape[3])
            blob.data.extend(rng.normal(0, 0.5, shape).astype(np.float32).ravel())
    (folder / 'classifier.prototxt').write_text(V1_CLASSIFIER)
    (folder / 'classifier.caffemodel').write_bytes(net.SerializeToString())
    return folder / 'classifier.prototxt', folder / 'classifier.caffemodel'
