"""pycaffe's Classifier: a Net that classifies H x W x K images.

predict resizes each image to image_dims (resize_image), then either averages the net's
output over ten crops of the net's input size (the four corners and the centre, each also
mirrored left-right: io.oversample) or classifies the centre crop alone. Preprocessing is a
caffe.io Transformer on the first input: H x W x K to K x H x W, then the optional channel
swap, raw_scale, mean and input_scale.
"""
import numpy as np

from caffe_torch import io
from caffe_torch.net import Net
from caffe_torch.proto import caffe_pb2


def input_transformer(net, mean=None, input_scale=None, raw_scale=None, channel_swap=None):
    """The Transformer pycaffe's Classifier and Detector set up for the net's first input."""
    in_ = net.inputs[0]
    transformer = io.Transformer({in_: net.blobs[in_].data.shape})
    transformer.set_transpose(in_, (2, 0, 1))
    for setter, value in ((transformer.set_mean, mean),
                          (transformer.set_input_scale, input_scale),
                          (transformer.set_raw_scale, raw_scale),
                          (transformer.set_channel_swap, channel_swap)):
        if value is not None:
            setter(in_, value)
    return transformer


class Classifier(Net):
    """`Classifier(model_file, pretrained_file, image_dims=None, mean=None,
    input_scale=None, raw_scale=None, channel_swap=None)`: the net in TEST phase with the
    weights of `pretrained_file` (None: its fillers). image_dims (height, width) is the
    size images are resized to before cropping; by default the net input's, so the crop
    is the whole image."""

    def __init__(self, model_file, pretrained_file, image_dims=None, mean=None,
                 input_scale=None, raw_scale=None, channel_swap=None):
        super().__init__(model_file, caffe_pb2.TEST, weights=pretrained_file)
        self.transformer = input_transformer(self, mean, input_scale, raw_scale,
                                             channel_swap)
        self.crop_dims = np.array(self.blobs[self.inputs[0]].data.shape[2:])
        if image_dims is None or len(image_dims) == 0:
            image_dims = self.crop_dims
        self.image_dims = image_dims

    def predict(self, inputs, oversample=True):
        """Class scores of each H x W x K image in `inputs`: an N x C array, the first
        output averaged over the ten crops (oversample) or of the centre crop (its
        output's own shape, N x ...)."""
        in_ = self.inputs[0]
        images = np.zeros((len(inputs), self.image_dims[0], self.image_dims[1],
                           inputs[0].shape[2]), dtype=np.float32)
        for ix, image in enumerate(inputs):
            images[ix] = io.resize_image(image, self.image_dims)
        if oversample:
            crops = io.oversample(images, self.crop_dims)
        else:
            center = np.array(self.image_dims) / 2.0
            box = (np.tile(center, 2) + np.concatenate([-self.crop_dims / 2.0,
                                                        self.crop_dims / 2.0])).astype(int)
            crops = images[:, box[0]:box[2], box[1]:box[3], :]
        caffe_in = np.stack([self.transformer.preprocess(in_, crop) for crop in crops])
        predictions = self.forward_all(**{in_: caffe_in})[self.outputs[0]]
        if oversample:
            predictions = predictions.reshape((len(predictions) // 10, 10, -1)).mean(1)
        return predictions
