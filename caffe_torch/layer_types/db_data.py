"""Data: Caffe's DataLayer (data_layer.cpp), Datum records from an LMDB or LevelDB.

Records are read in key order from the first, one per batch item; past the last record
the cursor wraps round to the first, so a batch may span the end (records N-1, 0, 1...).
Caffe reads in a prefetch thread; this layer reads when forward runs, in the same order.
"""
import logging

import numpy as np
import torch
from google.protobuf import message as pb_message

from caffe_torch import db, mode
from caffe_torch.data_transformer import DataTransformer
from caffe_torch.errors import DataRecordError
from caffe_torch.layer import Layer
from caffe_torch.layer_factory import register
from caffe_torch.proto import caffe_pb2

log = logging.getLogger(__name__)


def where(layer):
    return f'layer "{layer.name}" ({layer.type})'


def positive_batch_size(layer, value, field):
    if value <= 0:
        layer.fail(f'{field} must be positive, got {value}; set the number of records per '
                   f'batch')
    return int(value)


def fill_tops(top, data, labels):
    """Shape top[0] (and top[1] when present) to the batch and copy it in."""
    top[0].reshape(*data.shape)
    top[0].data_tensor.copy_(torch.from_numpy(data))
    if len(top) > 1:
        top[1].reshape(len(labels))
        top[1].data_tensor.copy_(torch.from_numpy(np.asarray(labels, dtype=np.float32)))


@register('Data')
class DataLayer(Layer):
    """Datum records from a database: data_param.source, backend (LEVELDB, the default,
    or LMDB), batch_size; transform_param as Caffe's DataTransformer.

    bottoms: none. tops: data (batch_size x C x H x W, H = W = crop_size when cropping),
      and optionally label (batch_size), the Datums' labels.
    Each batch takes its image shape from its first record (so batches of differently
    sized records work, as in Caffe); the others must match. With several solvers
    (mode.solver_count), TRAIN nets keep every solver_count-th record from their rank on,
    as Caffe's Skip(). data_param.rand_skip is deprecated and ignored, as in Caffe master;
    so are the legacy data_param.scale/mean_file/crop_size/mirror (upgrade moves V1 ones).
    """
    exact_bottoms = 0
    min_tops, max_tops = 1, 2

    def setup(self, bottom, top):
        param = self.layer_param.data_param
        self.batch_size = positive_batch_size(self, param.batch_size, 'data_param.batch_size')
        if param.rand_skip:
            log.warning('%s: data_param.rand_skip is deprecated and ignored (as in Caffe)',
                        where(self))
        self.transformer = DataTransformer(self.layer_param.transform_param, self.phase,
                                           where(self))
        self.db = db.open_db(param.source, param.backend, where(self))
        self.cursor = self.db.cursor()
        if not self.cursor.valid:
            self.db.close()
            raise DataRecordError(f'{where(self)}: database "{param.source}" holds no '
                                  f'records; fill it first (convert_imageset)')
        self.offset = 0
        shape = self.transformer.infer_shape(self._read()[0])
        top[0].reshape(self.batch_size, *shape)
        if len(top) > 1:
            top[1].reshape(self.batch_size)

    def reshape(self, bottom, top):
        """Tops are shaped by each forward's batch."""

    def forward(self, bottom, top):
        images, labels, shape = [], [], None
        for _ in range(self.batch_size):
            while self._skip():
                self._next()
            array, label, what = self._read()
            if shape is None:
                shape = self.transformer.infer_shape(array)
            image = self.transformer.transform(array)
            if image.shape != shape:
                raise DataRecordError(
                    f'{where(self)}: {what} gives a {"x".join(map(str, image.shape))} image '
                    f'but this batch\'s first record gives {"x".join(map(str, shape))}; '
                    f'records in one batch must have one size (set crop_size, or resize '
                    f'them when converting)')
            images.append(image)
            labels.append(label)
            self._next()
        fill_tops(top, np.stack(images), labels)

    def _read(self):
        """(array, label, description) of the record under the cursor."""
        key = self.cursor.key()
        value = self.cursor.value()
        what = f'record {key!r} of "{self.db.source}"'
        datum = caffe_pb2.Datum()
        try:
            datum.ParseFromString(value)
        except (pb_message.DecodeError, RuntimeError, ValueError) as e:
            raise DataRecordError(f'{where(self)}: {what} ({len(value)} bytes) is not a '
                                  f'Datum: {e}; the database is corrupt or holds other '
                                  f'records') from None
        return self.transformer.datum_array(datum, what), datum.label, what

    def _skip(self):
        size = mode.solver_count()
        keep = self.offset % size == mode.solver_rank() or self.phase == caffe_pb2.TEST
        return not keep

    def _next(self):
        self.cursor.next()
        if not self.cursor.valid:
            self.cursor.seek_to_first()
        self.offset += 1

    def __del__(self):
        handle = getattr(self, 'db', None)
        if handle is not None:
            handle.close()
