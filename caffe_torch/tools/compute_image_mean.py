"""compute_image_mean (tools/compute_image_mean.cpp): the mean image of a Datum database.

    python -m caffe_torch.tools.compute_image_mean [--backend lmdb|leveldb] INPUT_DB
                                                    [OUTPUT_FILE]

Reads every Datum of INPUT_DB in key order (encoded ones decoded to their native channels,
as DecodeDatumNative), sums them elementwise in float32 as Caffe's BlobProto does, divides
by the count, writes a 1 x C x H x W BlobProto (legacy num/channels/height/width fields,
as Caffe writes it) to OUTPUT_FILE if given, and logs the mean of each channel.
"""
import logging
import sys

import numpy as np

from caffe_torch import db, formats, io
from caffe_torch.data_transformer import DataTransformer
from caffe_torch.errors import CaffeError
from caffe_torch.proto import caffe_pb2
from caffe_torch.tools.caffe_flags import UsageError, parse_flags, usage

log = logging.getLogger('caffe_torch.tools.compute_image_mean')

SPEC = {'backend': (str, 'lmdb', 'The backend {leveldb, lmdb} containing the images')}
USAGE = ('Compute the mean_image of a set of images given by a leveldb/lmdb\n'
         'Usage:\n    compute_image_mean [FLAGS] INPUT_DB [OUTPUT_FILE]\n')
BACKENDS = {'lmdb': db.LMDB, 'leveldb': db.LEVELDB}


def datum_values(transformer, datum, where):
    """The Datum's C x H x W values as float32, an encoded image decoded to its native
    channels (DecodeDatumNative: OpenCV's IMREAD_UNCHANGED), as the Data layer reads it."""
    return transformer.datum_array(datum, where).astype(np.float32)


def compute_mean(source, backend='lmdb'):
    """(mean BlobProto, count) of the Datums in `source`."""
    if backend not in BACKENDS:
        raise CaffeError(f'Unknown db backend {backend}; use lmdb or leveldb')
    database = db.open_db(source, BACKENDS[backend])
    try:
        cursor = database.cursor()
        if not cursor.valid:
            raise CaffeError(f'{source}: the database holds no Datum')
        transformer = DataTransformer(caffe_pb2.TransformationParameter(), caffe_pb2.TEST,
                                      where=source)
        first = caffe_pb2.Datum.FromString(cursor.value())
        if first.encoded:
            log.info('Decoding Datum')
        shape = datum_values(transformer, first, f'record {cursor.key()!r}').shape
        data_size = int(np.prod(shape))
        total = np.zeros(data_size, dtype=np.float32)
        log.info('Starting iteration')
        count = 0
        while cursor.valid:
            datum = caffe_pb2.Datum.FromString(cursor.value())
            values = datum_values(transformer, datum, f'record {cursor.key()!r}').ravel()
            if values.size != data_size:
                raise CaffeError(f'Check failed: size_in_datum == data_size ({values.size} '
                                 f'vs. {data_size}) Incorrect data field size '
                                 f'{values.size} (record {cursor.key()!r}: every Datum must '
                                 f'be {shape[0]}x{shape[1]}x{shape[2]})')
            total += values  # float32, one rounding per image as Caffe's float sums
            count += 1
            if count % 10000 == 0:
                log.info('Processed %d files.', count)
            cursor.next()
    finally:
        database.close()
    if count % 10000 != 0:
        log.info('Processed %d files.', count)
    mean = (total / np.float32(count)).astype(np.float32)
    blob = caffe_pb2.BlobProto.FromString(io.packed_floats(5, mean))
    blob.num, blob.channels, blob.height, blob.width = 1, shape[0], shape[1], shape[2]
    return blob, count


def channel_means(blob):
    """Caffe's per-channel log values: a float32 running sum over H x W, divided."""
    dim = blob.height * blob.width
    data = np.array(blob.data, dtype=np.float32).reshape(blob.channels, dim)
    return [float(np.add.accumulate(row, dtype=np.float32)[-1] / np.float32(dim))
            if dim else 0.0 for row in data]


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        flags, args = parse_flags(argv, SPEC, USAGE)
    except UsageError as e:
        print(f'ERROR: {e}', file=sys.stderr)
        return 1
    if len(args) not in (1, 2):
        return usage(1, SPEC, USAGE, 'tools/compute_image_mean.cpp')
    try:
        blob, _ = compute_mean(args[0], flags['backend'])
        if len(args) == 2:
            log.info('Write to %s', args[1])
            formats.write_binaryproto(blob, args[1])
    except (CaffeError, OSError) as e:
        log.critical('%s', e)
        return 1
    log.info('Number of channels: %d', blob.channels)
    for c, value in enumerate(channel_means(blob)):
        log.info('mean_value channel [%d]: %g', c, value)
    return 0


if __name__ == '__main__':
    sys.exit(main())
