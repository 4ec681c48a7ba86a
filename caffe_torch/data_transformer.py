"""Caffe's DataTransformer (data_transformer.cpp): transform_param applied to one image.

For an image of C x H x W values (a Datum's uint8 `data` or `float_data`, or a decoded
image), in float32 as Caffe's Dtype:
  crop:   with crop_size, a crop_size x crop_size window; in TRAIN at offsets drawn
          uniformly from [0, H - crop] and [0, W - crop], in TEST central ((H - crop) / 2,
          integer division);
  mean:   mean_file (a BlobProto of the uncropped C x H x W, subtracted over the crop's
          window) or mean_value (once for all channels, or once per channel), not both;
  scale:  (value - mean) * scale;
  mirror: with `mirror`, flipped left-right with probability 1/2 (in TEST too).
Random draws come in Caffe's order (mirror first, then the crop's row and column offsets)
from the engine's generator (caffe_torch.mode), so caffe.set_random_seed repeats them; they
cannot repeat Caffe's own stream.

Encoded Datums (JPEG/PNG bytes, `encoded: true`) are decoded as Caffe's cv::imdecode:
unchanged (grey stays 1 channel, BGRA keeps 4) unless force_color (3-channel BGR) or
force_gray (1 channel); OpenCV's channel order (BGR) is kept, as Caffe keeps it.
"""
import logging

import numpy as np
import torch

from caffe_torch import formats, io, mode
from caffe_torch.errors import DataRecordError, LayerSetupError
from caffe_torch.proto import caffe_pb2

log = logging.getLogger(__name__)


class DataTransformer:
    """`DataTransformer(transform_param, phase, where)`; `where` (the layer) starts
    messages. transform(array) returns the transformed float32 C x H' x W' array."""

    def __init__(self, param, phase, where='transform_param'):
        self.param = param
        self.phase = int(phase)
        self.where = where
        self._warned = False
        self.scale = np.float32(param.scale)
        self.crop_size = int(param.crop_size)
        self.mean = None
        self.mean_values = np.array(param.mean_value, dtype=np.float32)
        if param.force_color and param.force_gray:
            self._fail('cannot set both force_color and force_gray; choose one')
        if param.HasField('mean_file'):
            if len(self.mean_values):
                self._fail('cannot specify mean_file and mean_value at the same time; '
                           'remove one of them')
            self.mean = read_mean(param.mean_file, self._fail)

    # -- the image a record holds --------------------------------------------------------
    def datum_array(self, datum, what='Datum'):
        """The C x H x W array `datum` holds: uint8 from `data` (decoded when `encoded`),
        else float32 from float_data; `what` names the record in errors."""
        if datum.encoded:
            return self.decode(datum.data, what)
        if (self.param.force_color or self.param.force_gray) and not self._warned:
            self._warned = True
            log.error('%s: force_color and force_gray only for encoded datum', self.where)
        shape = (datum.channels, datum.height, datum.width)
        count = int(np.prod(shape, dtype=np.int64))
        if datum.channels <= 0 or datum.height <= 0 or datum.width <= 0:
            raise DataRecordError(f'{self.where}: {what} has shape channels x height x '
                                  f'width = {"x".join(map(str, shape))}; each must be '
                                  f'positive (is the record a Datum?)')
        got = len(datum.data) if len(datum.data) else len(datum.float_data)
        if got != count:
            kind = 'bytes of data' if len(datum.data) else 'float_data values'
            raise DataRecordError(f'{self.where}: {what} declares {datum.channels}x'
                                  f'{datum.height}x{datum.width} = {count} values but holds '
                                  f'{got} {kind}; the record is truncated or its shape wrong')
        array = io.datum_to_array(datum)
        return array if array.dtype == np.uint8 else array.astype(np.float32)

    def decode(self, data, what='image'):
        """Bytes of an encoded image as C x H x W uint8, read as transform_param says."""
        import cv2
        flag = cv2.IMREAD_UNCHANGED
        if self.param.force_color:
            flag = cv2.IMREAD_COLOR
        elif self.param.force_gray:
            flag = cv2.IMREAD_GRAYSCALE
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flag) if len(data) \
            else None
        if image is None:
            raise DataRecordError(f'{self.where}: could not decode {what} ({len(data)} '
                                  f'bytes marked encoded); it is not an image OpenCV reads')
        return hwc_to_chw(image, f'{self.where}: {what}')

    # -- shape and transform -------------------------------------------------------------
    def infer_shape(self, array):
        """Caffe's InferBlobShape: (C, H, W) of the transformed `array` (C x H x W)."""
        channels, height, width = array.shape
        if channels <= 0:
            raise DataRecordError(f'{self.where}: an image has {channels} channels')
        if height < self.crop_size or width < self.crop_size:
            raise DataRecordError(
                f'{self.where}: crop_size {self.crop_size} is larger than an image of '
                f'{height}x{width} (height x width); lower crop_size or resize the images')
        self._check_mean(array.shape)
        side = self.crop_size
        return (channels, side or height, side or width)

    def transform(self, array):
        """transform_param applied to one C x H x W array (uint8 or float32)."""
        channels, height, width = array.shape
        do_mirror = bool(self.param.mirror) and self.rand(2) == 1
        self.infer_shape(array)
        h_off = w_off = 0
        out_h, out_w = height, width
        if self.crop_size:
            out_h = out_w = self.crop_size
            if self.phase == caffe_pb2.TRAIN:
                h_off = self.rand(height - self.crop_size + 1)
                w_off = self.rand(width - self.crop_size + 1)
            else:
                h_off = (height - self.crop_size) // 2
                w_off = (width - self.crop_size) // 2
        window = (slice(None), slice(h_off, h_off + out_h), slice(w_off, w_off + out_w))
        values = array[window].astype(np.float32)
        if self.mean is not None:
            values = values - self.mean[window]
        elif len(self.mean_values):
            values = values - self._channel_means(channels)[:, None, None]
        values = values * self.scale
        if do_mirror:
            values = values[:, :, ::-1]
        return np.ascontiguousarray(values)

    def rand(self, n):
        """Caffe's Rand(n): uniform in [0, n)."""
        return rand_int(n)

    def _channel_means(self, channels):
        if len(self.mean_values) == 1:
            return np.repeat(self.mean_values, channels)
        return self.mean_values

    def _check_mean(self, shape):
        channels = shape[0]
        if len(self.mean_values) not in (0, 1, channels):
            raise DataRecordError(
                f'{self.where}: specify either 1 mean_value or as many as channels: '
                f'{channels} (got {len(self.mean_values)})')
        if self.mean is not None and self.mean.shape != tuple(shape):
            raise DataRecordError(
                f'{self.where}: mean_file "{self.param.mean_file}" is '
                f'{"x".join(map(str, self.mean.shape))} (channels x height x width) but the '
                f'data are {"x".join(map(str, shape))}; the mean must have the size of the '
                f'images before cropping (compute it on the same data)')

    def _fail(self, message):
        raise LayerSetupError(f'{self.where}: {message}')


def rand_int(n):
    """Uniform in [0, n) from the engine's CPU generator (seeded by set_random_seed)."""
    return int(torch.randint(n, (1,), generator=mode.generator('cpu')))


def rand_uint32():
    """Caffe's caffe_rng_rand() / PrefetchRand(): a uniform 32-bit unsigned integer."""
    return rand_int(1 << 32)


def shuffle(items):
    """Caffe's shuffle (and std::random_shuffle): Fisher-Yates in place, swapping item i
    with one drawn from [0, i], i from the last down."""
    for i in range(len(items) - 1, 0, -1):
        j = rand_int(i + 1)
        items[i], items[j] = items[j], items[i]


def hwc_to_chw(image, what='image'):
    """An OpenCV image (H x W or H x W x C, uint8) as C x H x W; other depths refused as
    Caffe refuses them ("Image data type must be unsigned byte")."""
    if image.dtype != np.uint8:
        raise DataRecordError(f'{what} has {image.dtype} pixels; Caffe reads unsigned bytes '
                              f'only (convert it to 8 bits per channel)')
    if image.ndim == 2:
        return image[None]
    return np.ascontiguousarray(image.transpose(2, 0, 1))


def read_mean(path, fail):
    """mean_file as C x H x W float32, read as Blob::FromProto then indexed as Caffe does:
    its legacy channels/height/width, the first image's values."""
    try:
        blob = formats.read_binaryproto(path, caffe_pb2.BlobProto)
    except (OSError, ValueError) as e:
        fail(f'cannot read mean_file: {e}')
    try:
        values = io.blobproto_to_array(blob)
    except ValueError as e:
        fail(f'mean_file "{path}": {e}')
    shape = values.shape
    if len(shape) > 4:
        fail(f'mean_file "{path}" has {len(shape)} axes {shape}; it must be 1 x C x H x W')
    dims = [io.legacy_shape(shape, axis) for axis in (1, 2, 3)]
    count = int(np.prod(dims))
    if count == 0 or values.size < count:
        fail(f'mean_file "{path}" has shape {shape}; expected 1 x C x H x W')
    return values.astype(np.float32).reshape(-1)[:count].reshape(dims)
