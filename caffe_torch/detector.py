"""pycaffe's Detector: R-CNN-style windowed detection (Girshick et al., "Rich feature
hierarchies for accurate object detection and semantic segmentation", arXiv:1311.2524).

Each window is cropped from its image, optionally grown so that a `context_pad`-pixel
border of the net input shows the surroundings (padded with the mean where the grown box
leaves the image), warped to the net input size and classified. detect_selective_search
takes its windows from the selective_search_ijcv_with_python package, which runs MATLAB.
"""
import os

import numpy as np

from caffe_torch import io
from caffe_torch.classifier import input_transformer
from caffe_torch.net import Net
from caffe_torch.proto import caffe_pb2

SELECTIVE_SEARCH = 'selective_search_ijcv_with_python'


class Detector(Net):
    """`Detector(model_file, pretrained_file, mean=None, input_scale=None, raw_scale=None,
    channel_swap=None, context_pad=None)`: the net in TEST phase with the weights of
    `pretrained_file` (None: its fillers); windows are (ymin, xmin, ymax, xmax)."""

    def __init__(self, model_file, pretrained_file, mean=None, input_scale=None,
                 raw_scale=None, channel_swap=None, context_pad=None):
        super().__init__(model_file, caffe_pb2.TEST, weights=pretrained_file)
        self.transformer = input_transformer(self, mean, input_scale, raw_scale,
                                             channel_swap)
        self.configure_crop(context_pad)

    def detect_windows(self, images_windows):
        """Classify the windows of each (image filename, windows) pair: a list of
        {'window', 'prediction', 'filename'} dicts in input order. Unlike pycaffe on
        Python 3, a one-pass iterator (a zip) works: it is read once."""
        images_windows = [(name, list(windows)) for name, windows in images_windows]
        crops = []
        for name, windows in images_windows:
            image = io.load_image(name).astype(np.float32)
            crops.extend(self.crop(image, window) for window in windows)
        in_ = self.inputs[0]
        caffe_in = np.stack([self.transformer.preprocess(in_, crop) for crop in crops])
        predictions = iter(self.forward_all(**{in_: caffe_in})[self.outputs[0]])
        return [{'window': window, 'prediction': next(predictions), 'filename': name}
                for name, windows in images_windows for window in windows]

    def detect_selective_search(self, image_fnames):
        """detect_windows over the Selective Search proposals of each image."""
        try:
            import selective_search_ijcv_with_python as selective_search
        except ImportError as err:
            raise ImportError(
                f'Detector.detect_selective_search needs the {SELECTIVE_SEARCH} package '
                f'(https://github.com/sergeyk/{SELECTIVE_SEARCH}, with MATLAB) on '
                f'PYTHONPATH, as pycaffe does; or compute windows yourself and call '
                f'detect_windows([(filename, windows), ...]).') from err
        image_fnames = [os.path.abspath(name) for name in image_fnames]  # for MATLAB
        windows = selective_search.get_windows(image_fnames, cmd='selective_search_rcnn')
        return self.detect_windows(zip(image_fnames, windows))

    def crop(self, im, window):
        """The H x W x K pixels of `window` (ymin, xmin, ymax, xmax); with context_pad,
        the input-sized crop whose border of context_pad pixels is context."""
        if not self.context_pad:
            return im[window[0]:window[2], window[1]:window[3]]
        box = np.array(window, dtype=np.float64)
        crop_size = self.blobs[self.inputs[0]].width  # a square input, as pycaffe assumes
        scale = crop_size / (crop_size - 2.0 * self.context_pad)
        half_h, half_w = (box[2] - box[0] + 1) / 2.0, (box[3] - box[1] + 1) / 2.0
        center = (box[0] + half_h, box[1] + half_w)
        box = np.round(np.tile(center, 2) + scale * np.array((-half_h, -half_w,
                                                              half_h, half_w)))
        scale_h = crop_size / (box[2] - box[0] + 1)
        scale_w = crop_size / (box[3] - box[1] + 1)
        pad_y = round(max(0, -box[0]) * scale_h)  # rows of the box above the image
        pad_x = round(max(0, -box[1]) * scale_w)
        im_h, im_w = im.shape[:2]
        box = np.clip(box, 0.0, [im_h, im_w, im_h, im_w])
        clip_h, clip_w = box[2] - box[0] + 1, box[3] - box[1] + 1
        if not (clip_h > 0 and clip_w > 0):
            raise ValueError(f'Detector.crop: window {window} lies outside the '
                             f'{im_h} x {im_w} image or has ymax < ymin / xmax < xmin.')
        crop_h = min(round(clip_h * scale_h), crop_size - pad_y)
        crop_w = min(round(clip_w * scale_w), crop_size - pad_x)
        top, left, bottom, right = (int(v) for v in box)
        context = io.resize_image(im[top:bottom, left:right], (crop_h, crop_w))
        crop = np.ones(self.crop_dims, dtype=np.float32) * self.crop_mean
        crop[pad_y:pad_y + crop_h, pad_x:pad_x + crop_w] = context
        return crop

    def configure_crop(self, context_pad):
        """Set crop_dims (the input's H x W x K) and context_pad; with context, crop_mean,
        the Transformer's mean taken back to image space to fill the padding."""
        in_ = self.inputs[0]
        order = self.transformer.transpose[in_]
        inverse = [order[t] for t in order]  # pycaffe's inverse: right for (2, 0, 1)
        self.crop_dims = np.array(self.blobs[in_].data.shape[1:])[inverse]
        self.context_pad = context_pad
        if not context_pad:
            return
        mean = self.transformer.mean.get(in_)
        if mean is None:
            self.crop_mean = np.zeros(self.crop_dims, dtype=np.float32)
            return
        crop_mean = np.array(mean, ndmin=3).transpose(inverse)
        swap = self.transformer.channel_swap.get(in_)
        if swap is not None:
            crop_mean = crop_mean[:, :, [list(swap).index(k)
                                         for k in range(crop_mean.shape[2])]]
        raw_scale = self.transformer.raw_scale.get(in_)
        if raw_scale is not None:
            crop_mean = crop_mean / raw_scale
        self.crop_mean = crop_mean
