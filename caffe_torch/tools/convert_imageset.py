"""convert_imageset (tools/convert_imageset.cpp): images listed in a file into an LMDB or
LevelDB of Datums, the input of Caffe's Data layer.

    python -m caffe_torch.tools.convert_imageset [FLAGS] ROOTFOLDER/ LISTFILE DB_NAME

Each LISTFILE line is `path label` (split at the last space; the label read as C's atoi).
Images are read with OpenCV as Caffe reads them (cv::imread, color BGR or --gray), resized
with cv::resize (bilinear) when both --resize_height and --resize_width are positive, and
stored as CHW uint8 Datums under the keys `%08d_<path>` (line number, so the database
keeps the list's order). --encoded keeps the file's own bytes when they already are what
is asked for (same colour mode, no resize, extension matching --encode_type or guessed
from the file name), else re-encodes with cv::imencode. Unreadable images are logged and
skipped. The database is new: an existing DB_NAME is an error, as in Caffe.
"""
import logging
import os
import random
import re
import sys

import numpy as np

from caffe_torch.errors import CaffeError
from caffe_torch.proto import caffe_pb2
from caffe_torch.tools.caffe_flags import UsageError, parse_flags, usage

log = logging.getLogger('caffe_torch.tools.convert_imageset')

SPEC = {
    'gray': (bool, False, 'When this option is on, treat images as grayscale ones'),
    'shuffle': (bool, False, 'Randomly shuffle the order of images and their labels'),
    'backend': (str, 'lmdb', 'The backend {lmdb, leveldb} for storing the result'),
    'resize_width': (int, 0, 'Width images are resized to'),
    'resize_height': (int, 0, 'Height images are resized to'),
    'check_size': (bool, False, 'When this option is on, check that all the datum have the '
                                'same size'),
    'encoded': (bool, False, 'When this option is on, the encoded image will be save in '
                             'datum'),
    'encode_type': (str, '', "Optional: What type should we encode the image as "
                             "('png','jpg',...)."),
}
USAGE = ('Convert a set of images to the leveldb/lmdb\nformat used as input for Caffe.\n'
         'Usage:\n    convert_imageset [FLAGS] ROOTFOLDER/ LISTFILE DB_NAME\n'
         'The ImageNet dataset for the training demo is at\n'
         '    http://www.image-net.org/download-images\n')
COMMIT_EVERY = 1000


def atoi(text):
    """C's atoi: leading blanks, a sign and digits; 0 when there are none."""
    match = re.match(r'\s*([+-]?\d+)', text)
    return int(match.group(1)) if match else 0


def read_list(path):
    """[(file name, label)] as convert_imageset reads LISTFILE with std::getline."""
    with open(path, encoding='utf-8', errors='surrogateescape') as f:
        lines = f.read().split('\n')
    if lines and lines[-1] == '':
        lines.pop()
    pairs = []
    for line in lines:
        pos = line.rfind(' ')
        pairs.append((line, atoi(line)) if pos < 0 else (line[:pos], atoi(line[pos + 1:])))
    return pairs


def read_image(filename, height, width, is_color):
    """ReadImageToCVMat: the image (H x W x C uint8, BGR) or None if it cannot be read."""
    import cv2
    image = cv2.imread(filename, cv2.IMREAD_COLOR if is_color else cv2.IMREAD_GRAYSCALE)
    if image is None:
        log.error('Could not open or find file %s', filename)
        return None
    if height > 0 and width > 0:
        image = cv2.resize(image, (width, height))
    return image


def match_ext(filename, encoding):
    """matchExt: the file's extension is the encoding (jpeg counts as jpg)."""
    ext = filename[filename.rfind('.') + 1:].lower() if '.' in filename else ''
    encoding = encoding.lower()
    return ext == encoding or (encoding == 'jpg' and ext == 'jpeg')


def image_to_datum(image, label):
    """CVMatToDatum plus the label: CHW bytes."""
    if image.ndim == 2:
        image = image[:, :, np.newaxis]
    datum = caffe_pb2.Datum(channels=image.shape[2], height=image.shape[0],
                            width=image.shape[1], label=label, encoded=False)
    datum.data = np.ascontiguousarray(image.transpose(2, 0, 1)).tobytes()
    return datum


def read_image_to_datum(filename, label, height, width, is_color, encoding):
    """ReadImageToDatum: a Datum, or None when the image cannot be read."""
    import cv2
    image = read_image(filename, height, width, is_color)
    if image is None:
        return None
    if not encoding:
        return image_to_datum(image, label)
    channels = 1 if image.ndim == 2 else image.shape[2]
    if (channels == 3) == is_color and not height and not width and \
            match_ext(filename, encoding):
        with open(filename, 'rb') as f:  # ReadFileToDatum: the file's bytes as they are
            return caffe_pb2.Datum(data=f.read(), label=label, encoded=True)
    try:
        ok, buf = cv2.imencode('.' + encoding, image)
    except cv2.error:
        ok = False
    if not ok:
        raise CaffeError(f'cannot encode {filename} as "{encoding}": OpenCV has no encoder '
                         f'for it; use --encode_type png or jpg')
    return caffe_pb2.Datum(data=buf.tobytes(), label=label, encoded=True)


class Writer:
    """A new database opened for writing (db::NEW), puts committed in batches."""

    def __init__(self, path, backend):
        self.path, self.backend, self.pending = path, backend, []
        if backend == 'lmdb':
            import lmdb
            try:
                os.mkdir(path, 0o744)
            except OSError as e:
                raise CaffeError(f'Check failed: mkdir(source.c_str(), 0744) == 0 (-1 vs. 0) '
                                 f'mkdir {path} failed ({e.strerror}); remove it or choose '
                                 f'another DB_NAME') from None
            self.map_size = 1 << 30
            self.db = lmdb.open(path, map_size=self.map_size, subdir=True)
            log.info('Opened lmdb %s', path)
        elif backend == 'leveldb':
            import plyvel
            try:
                self.db = plyvel.DB(path, create_if_missing=True, error_if_exists=True,
                                    write_buffer_size=268435456)
            except (plyvel.Error, OSError) as e:
                raise CaffeError(f'Check failed: status.ok() Failed to open leveldb {path} '
                                 f'({e}); remove it or choose another DB_NAME') from None
            log.info('Opened leveldb %s', path)
        else:
            raise CaffeError(f'Unknown database backend {backend}; use lmdb or leveldb')

    def put(self, key, value):
        self.pending.append((key, value))

    def commit(self):
        if self.backend == 'leveldb':
            with self.db.write_batch() as batch:
                for key, value in self.pending:
                    batch.put(key, value)
        else:
            import lmdb
            while True:
                try:
                    with self.db.begin(write=True) as txn:
                        for key, value in self.pending:
                            txn.put(key, value)
                    break
                except lmdb.MapFullError:  # grow the map, as Caffe's LMDB writer does
                    self.map_size *= 2
                    self.db.set_mapsize(self.map_size)
        self.pending = []

    def close(self):
        self.db.close()


def convert(root, list_file, db_name, gray=False, shuffle=False, backend='lmdb',
            resize_height=0, resize_width=0, check_size=False, encoded=False,
            encode_type=''):
    """Write the Datums; returns how many were stored."""
    is_color = not gray
    lines = read_list(list_file)
    if shuffle:
        log.info('Shuffling data')
        random.shuffle(lines)
    log.info('A total of %d images.', len(lines))
    if encode_type and not encoded:
        log.info('encode_type specified, assuming encoded=true.')
    resize_height, resize_width = max(0, resize_height), max(0, resize_width)
    writer = Writer(db_name, backend)
    count, data_size = 0, None
    try:
        for line_id, (name, label) in enumerate(lines):
            encoding = encode_type
            if encoded and not encoding:
                if '.' not in name:
                    log.warning("Failed to guess the encoding of '%s'", name)
                encoding = name[name.rfind('.') + 1:].lower()
            datum = read_image_to_datum(root + name, label, resize_height, resize_width,
                                        is_color, encoding)
            if datum is None:
                continue
            if check_size:
                if data_size is None:
                    data_size = datum.channels * datum.height * datum.width
                elif len(datum.data) != data_size:
                    raise CaffeError(f'Check failed: data.size() == data_size '
                                     f'({len(datum.data)} vs. {data_size}) Incorrect data '
                                     f'field size {len(datum.data)} ({name})')
            writer.put(f'{line_id:08d}_{name}'.encode('utf-8', 'surrogateescape'),
                       datum.SerializeToString())
            count += 1
            if count % COMMIT_EVERY == 0:
                writer.commit()
                log.info('Processed %d files.', count)
        if count % COMMIT_EVERY != 0:
            writer.commit()
            log.info('Processed %d files.', count)
    finally:
        writer.close()
    return count


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        flags, args = parse_flags(argv, SPEC, USAGE)
    except UsageError as e:
        print(f'ERROR: {e}', file=sys.stderr)
        return 1
    if len(args) < 3:
        return usage(1, SPEC, USAGE, 'tools/convert_imageset.cpp')
    try:
        convert(args[0], args[1], args[2], **{name: flags[name] for name in SPEC})
    except (CaffeError, OSError) as e:
        log.critical('%s', e)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
