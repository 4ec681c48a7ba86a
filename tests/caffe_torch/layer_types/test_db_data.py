"""Data: Datums from an LMDB or a LevelDB written here, read in key order, wrapping round."""
import numpy as np
import pytest

import caffe_torch as caffe
from caffe_torch import io, mode
from caffe_torch.errors import DataRecordError, DataSourceError, LayerSetupError
from caffe_torch.proto import caffe_pb2
from layer_check import make_layer

RNG = np.random.RandomState(11)
IMAGES = RNG.randint(0, 256, (5, 2, 4, 5)).astype(np.uint8)


def write_lmdb(path, records):
    import lmdb
    env = lmdb.open(str(path), map_size=1 << 24)
    with env.begin(write=True) as txn:
        for key, value in records:
            txn.put(key, value)
    env.close()
    return path


def write_leveldb(path, records):
    import plyvel
    db = plyvel.DB(str(path), create_if_missing=True)
    for key, value in records:
        db.put(key, value)
    db.close()
    return path


def datums(images=IMAGES, first_label=10):
    return [(b'%08d' % i, io.array_to_datum(a, first_label + i).SerializeToString())
            for i, a in enumerate(images)]


def data_layer(source, backend='LMDB', batch=2, transform='', phase=caffe_pb2.TEST, ntop=2):
    text = (f'type: "Data" data_param {{ source: "{source}" batch_size: {batch} '
            f'backend: {backend} }} transform_param {{ {transform} }}')
    return make_layer(text, [], ntop=ntop, phase=phase)


def forwards(layer, top, count):
    out = []
    for _ in range(count):
        layer.run_forward([], top)
        out.append((top[0].data.copy(), top[1].data.copy() if len(top) > 1 else None))
    return out


@pytest.mark.parametrize('backend', ['LMDB', 'LEVELDB'])
def test_records_in_key_order_wrapping_round(tmp_path, backend):
    """Batches of 2 from 5 records: 0 1 | 2 3 | 4 0 | 1 2, labels as written."""
    writer = write_lmdb if backend == 'LMDB' else write_leveldb
    records = datums()
    source = writer(tmp_path / 'db', records[::-1])  # written out of order: keys sort
    layer, _, top = data_layer(source, backend)
    assert top[0].shape == (2, 2, 4, 5) and top[1].shape == (2,)
    for (data, label), rows in zip(forwards(layer, top, 4), [[0, 1], [2, 3], [4, 0], [1, 2]]):
        np.testing.assert_array_equal(data, IMAGES[rows].astype(np.float32))
        np.testing.assert_array_equal(label, np.array(rows) + 10)


def test_batch_larger_than_database_wraps_within_batch(tmp_path):
    layer, _, top = data_layer(write_lmdb(tmp_path / 'db', datums()[:2]), batch=5)
    layer.run_forward([], top)
    np.testing.assert_array_equal(top[1].data, [10, 11, 10, 11, 10])


def test_float_data_with_scale_mean_and_crop(tmp_path):
    """float_data Datums, TEST crop (central) then (x - mean) * scale, as NumPy says."""
    values = RNG.uniform(0, 1, (3, 3, 6, 6)).astype(np.float32)
    records = [(b'%08d' % i, io.array_to_datum(v, i).SerializeToString())
               for i, v in enumerate(values)]
    layer, _, top = data_layer(write_lmdb(tmp_path / 'db', records), batch=3,
                               transform='crop_size: 4 scale: 2 mean_value: 0.5')
    layer.run_forward([], top)
    expected = (values[:, :, 1:5, 1:5].astype(np.float64) - 0.5) * 2
    np.testing.assert_allclose(top[0].data, expected, rtol=0, atol=1e-6)


def test_encoded_records(tmp_path):
    import cv2
    hwc = RNG.randint(0, 256, (2, 4, 6, 3)).astype(np.uint8)
    records = [(b'%08d' % i, caffe_pb2.Datum(data=cv2.imencode('.png', im)[1].tobytes(),
                                             encoded=True, label=i).SerializeToString())
               for i, im in enumerate(hwc)]
    layer, _, top = data_layer(write_lmdb(tmp_path / 'db', records))
    layer.run_forward([], top)
    np.testing.assert_array_equal(top[0].data, hwc.transpose(0, 3, 1, 2))


def test_label_top_is_optional(tmp_path):
    layer, _, top = data_layer(write_lmdb(tmp_path / 'db', datums()), ntop=1)
    layer.run_forward([], top)
    np.testing.assert_array_equal(top[0].data, IMAGES[:2])


def test_train_and_test_nets_share_one_leveldb(tmp_path):
    """Two Data layers on one LevelDB in one process (LevelDB alone would refuse)."""
    source = write_leveldb(tmp_path / 'db', datums())
    first, _, top1 = data_layer(source, 'LEVELDB', phase=caffe_pb2.TRAIN)
    second, _, top2 = data_layer(source, 'LEVELDB', batch=3)
    first.run_forward([], top1)
    second.run_forward([], top2)
    np.testing.assert_array_equal(top2[1].data, [10, 11, 12])
    del first
    second.run_forward([], top2)
    np.testing.assert_array_equal(top2[1].data, [13, 14, 10])


def test_solvers_take_every_other_record_in_train(tmp_path):
    """With 2 solvers, rank 1's TRAIN net keeps records 1, 3, 0, 2, ... (Caffe's Skip)."""
    source = write_lmdb(tmp_path / 'db', datums())
    mode.set_solver_count(2)
    mode.set_solver_rank(1)
    try:
        layer, _, top = data_layer(source, phase=caffe_pb2.TRAIN, batch=3)
        layer.run_forward([], top)
        np.testing.assert_array_equal(top[1].data, [11, 13, 10])
    finally:
        mode.set_solver_count(1)
        mode.set_solver_rank(0)


def test_through_net_mirror_seeded(tmp_path):
    """A Net with mirror: each image is itself or flipped; set_random_seed repeats them."""
    source = write_lmdb(tmp_path / 'db', datums())
    proto = tmp_path / 'net.prototxt'
    proto.write_text(f'layer {{ name: "d" type: "Data" top: "data" top: "label" '
                     f'data_param {{ source: "{source}" batch_size: 5 backend: LMDB }} '
                     f'transform_param {{ mirror: true }} }}')
    runs = []
    for _ in range(2):
        caffe.set_random_seed(4)
        net = caffe.Net(str(proto), caffe.TEST)
        net.forward()
        runs.append(net.blobs['data'].data.copy())
        del net
    np.testing.assert_array_equal(runs[0], runs[1])
    for got, image in zip(runs[0], IMAGES):
        assert np.array_equal(got, image) or np.array_equal(got, image[:, :, ::-1])


# -- errors ---------------------------------------------------------------------------------
def test_catch_missing_database(tmp_path):
    with pytest.raises(DataSourceError, match=r'LMDB database ".*nope" does not exist'):
        data_layer(tmp_path / 'nope')


def test_catch_lmdb_read_as_default_leveldb(tmp_path):
    source = write_lmdb(tmp_path / 'db', datums())
    with pytest.raises(DataSourceError, match=r'holds an LMDB database \(data.mdb\), but the '
                                              r'backend is LEVELDB.*add `backend: LMDB`'):
        data_layer(source, 'LEVELDB')


def test_catch_leveldb_read_as_lmdb(tmp_path):
    source = write_leveldb(tmp_path / 'db', datums())
    with pytest.raises(DataSourceError, match=r'holds a LevelDB database.*`backend: LEVELDB`'):
        data_layer(source, 'LMDB')


def test_catch_empty_database(tmp_path):
    with pytest.raises(DataRecordError, match='holds no records'):
        data_layer(write_lmdb(tmp_path / 'db', []))


def test_catch_corrupt_record(tmp_path):
    records = datums()[:1] + [(b'00000001', b'\xff\xff\xff garbage')]
    layer, _, top = data_layer(write_lmdb(tmp_path / 'db', records))
    with pytest.raises(DataRecordError, match=r"record b'00000001' of .* is not a Datum"):
        layer.run_forward([], top)


def test_catch_records_of_two_sizes_in_a_batch(tmp_path):
    records = datums()[:1] + datums(RNG.randint(0, 256, (1, 2, 3, 3)).astype(np.uint8), 1)
    records[1] = (b'00000001', records[1][1])
    layer, _, top = data_layer(write_lmdb(tmp_path / 'db', records))
    with pytest.raises(DataRecordError, match=r"b'00000001'.* gives a 2x3x3 image but this "
                                              r"batch's first record gives 2x4x5"):
        layer.run_forward([], top)


def test_catch_zero_batch_size(tmp_path):
    with pytest.raises(LayerSetupError, match='data_param.batch_size must be positive, got 0'):
        data_layer(write_lmdb(tmp_path / 'db', datums()), batch=0)


def test_lmdb_without_a_lock_file_is_read_unlocked(tmp_path, monkeypatch):
    """Where lock.mdb cannot be made (read-only folder), LMDB is opened without locking,
    as Caffe built with ALLOW_LMDB_NOLOCK does."""
    import lmdb
    source = write_lmdb(tmp_path / 'db', datums())
    real_open, calls = lmdb.open, []

    def open_read_only_folder(path, **kwargs):
        calls.append(kwargs.get('lock', True))
        if kwargs.get('lock', True):
            raise lmdb.ReadonlyError(f'{path}/lock.mdb: Permission denied')
        return real_open(path, **kwargs)
    monkeypatch.setattr(lmdb, 'open', open_read_only_folder)
    layer, _, top = data_layer(source)
    layer.run_forward([], top)
    assert calls == [True, False]
    np.testing.assert_array_equal(top[1].data, [10, 11])
