"""Data: Datum records in an LMDB (even i) or a LevelDB (odd i) in the case folder, written
here with `lmdb` / `plyvel` and the engine's caffe_pb2.

Records: uint8 `data`, float_data, both (Caffe reads `data` then), or PNG bytes with
`encoded: true` (grey, BGR or BGRA; decoded unchanged, or by force_color / force_gray);
1 to 6 of them under keys whose byte order is not their writing order; labels of any sign.
Batches of 1 to 7 wrap round the DB; forwards=3 compares the read position. transform_param:
scale, mean_value (once or per channel), mean_file (a BlobProto in N-d or legacy fields),
crop_size in TEST (central) or, in TRAIN, the whole record (offsets Rand(1) = 0: TRAIN
only where nothing is drawn), mirror false. Without crop, records of different sizes go in
batches of one (Caffe shapes each batch by its first record). Caffe aborts in set-up (or
on the first record, in its prefetch thread: the engine must refuse then too) on a crop
larger than the records, on a mean_value count that fits no channel count, on a mean_file
of another size, and on an empty DB (an assertion in LevelDB's iterator).
"""
import numpy as np

from real_caffe.cases import Case, Enum, layer, net


def _datum(rng, kind, shape, label):
    from caffe_torch.proto import caffe_pb2
    c, h, w = shape
    pixels = rng.integers(0, 256, shape).astype(np.uint8)
    datum = caffe_pb2.Datum(channels=c, height=h, width=w, label=int(label))
    if kind == 'encoded':
        import cv2
        image = pixels[0] if c == 1 else pixels.transpose(1, 2, 0)
        ok, png = cv2.imencode('.png', image)
        assert ok
        datum.data, datum.encoded = png.tobytes(), True
    if kind in ('uint8', 'both'):
        datum.data = pixels.tobytes()
    if kind in ('float', 'both'):
        values = rng.standard_normal(shape).astype(np.float32) * 50
        datum.float_data.extend(values.ravel().tolist())
    return datum.SerializeToString()


def _db_writer(backend, records):
    def write(path):
        if backend == 'LMDB':
            import lmdb
            env = lmdb.open(str(path), map_size=1 << 24)
            with env.begin(write=True) as txn:
                for key, value in records:
                    txn.put(key, value)
            env.close()
        else:
            import plyvel
            db = plyvel.DB(str(path), create_if_missing=True)
            for key, value in records:
                db.put(key, value)
            db.close()
    return write


def _mean_writer(mean, legacy):
    def write(path):
        from caffe_torch.proto import caffe_pb2
        blob = caffe_pb2.BlobProto()
        if legacy:
            blob.num, (blob.channels, blob.height, blob.width) = 1, mean.shape
        else:
            blob.shape.dim.extend([1, *mean.shape])
        blob.data.extend(mean.ravel().tolist())
        path.write_bytes(blob.SerializeToString())
    return write


def _keys(rng, n):
    """Keys written in one order and read in their byte order: 1, 10, 2, ... or shuffled."""
    keys = [str(k).encode() for k in range(n)] if rng.random() < 0.5 else \
        [f'{k:08d}_{rng.integers(0, 99)}'.encode() for k in range(n)]
    return [keys[k] for k in rng.permutation(n)]


def data(rng, i):
    backend = 'LMDB' if i % 2 == 0 else 'LEVELDB'
    kinds = ['uint8', 'float', 'uint8', 'both', 'encoded', 'encoded']
    kind = kinds[i % 6] if i < 16 else 'uint8'
    channels = int(rng.choice([1, 3, 4] if kind == 'encoded' else [1, 2, 3]))
    n = int(rng.integers(1, 7))
    crop = i % 3 != 0
    full = i in (8, 13)  # TRAIN crops of the whole record: Caffe's Rand(1) offsets are 0
    phase = 'TEST' if (crop and not full) or i % 4 == 1 else 'TRAIN'
    size = [int(rng.integers(2, 6)), int(rng.integers(2, 6))]
    if full:
        size[1] = size[0]
    varied = i % 5 == 2  # records of different sizes
    sizes = [[size[0] + int(rng.integers(0, 3)), size[1] + int(rng.integers(0, 3))]
             if varied else size for _ in range(n)]
    batch = 1 if varied and not crop else int(rng.integers(1, 8))
    transform = {'scale': float(rng.choice([1.0, 0.5, 0.00390625, 2.0])), 'mirror': False}
    files = {}
    mean_kind = ('none', 'value1', 'values', 'file')[int(rng.integers(0, 4))]
    if mean_kind == 'file' and varied:
        mean_kind = 'values'
    if mean_kind == 'value1':
        transform['mean_value'] = float(rng.uniform(0, 200))
    elif mean_kind == 'values':
        transform['mean_value'] = [float(v) for v in rng.uniform(0, 200, channels)]
    elif mean_kind == 'file':
        mean = rng.uniform(0, 255, (channels, *size)).astype(np.float32)
        files['mean.binaryproto'] = _mean_writer(mean, bool(rng.random() < 0.5))
        transform['mean_file'] = 'mean.binaryproto'
    if crop:
        transform['crop_size'] = size[0] if full else \
            int(rng.integers(1, min(min(s) for s in sizes) + 1))
    if kind == 'encoded' and i % 3 == 1:
        transform['force_color' if rng.random() < 0.5 else 'force_gray'] = True
        if mean_kind in ('values', 'file'):  # the decoded channel count changes
            transform.pop('mean_file', None)
            transform['mean_value'] = 10.0
    if i == 16:  # a crop larger than the records
        transform['crop_size'] = max(max(s) for s in sizes) + 1
    if i == 17:  # two mean values for three channels
        channels, transform['mean_value'] = 3, [1.0, 2.0]
        transform.pop('mean_file', None)
    if i == 18:  # a mean_file of another size
        transform.pop('mean_value', None)
        mean = np.zeros((channels, size[0] + 1, size[1]), np.float32)
        files['mean.binaryproto'] = _mean_writer(mean, False)
        transform['mean_file'] = 'mean.binaryproto'
    keys = _keys(rng, n)
    records = [(key, _datum(rng, kind, (channels, *s), rng.integers(-5, 100)))
               for key, s in zip(keys, sizes)]
    if i == 19:
        records = []
    files['db'] = _db_writer(backend, records)
    tops = ['data', 'label'] if i % 7 != 6 else ['data']
    param = {'source': 'db', 'batch_size': batch, 'backend': Enum(backend)}
    body = layer('d', 'Data', top=tops, transform_param=transform, data_param=param)
    abort = i >= 16
    return Case(net({}, body), files=files, phase=phase, forwards=1 if abort else 3,
                backward=not abort)


GENERATORS = {'Data': data}
