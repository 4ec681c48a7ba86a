"""convert_imageset, compute_image_mean and the upgrade tools against Caffe's tools/*.cpp:
records, keys and Datum layout as Caffe writes them, float32 mean arithmetic, exit codes."""
import os

import cv2
import lmdb
import numpy as np
import plyvel
import pytest

from caffe_torch import formats, io
from caffe_torch.proto import caffe_pb2
from caffe_torch.tools import compute_image_mean, convert_imageset, upgrade_proto


@pytest.fixture
def images(tmp_path, monkeypatch):
    """Three small PNGs (BGR as cv2 writes them) and a list with a missing file."""
    monkeypatch.chdir(tmp_path)
    rng = np.random.RandomState(0)
    os.mkdir('imgs')
    arrays = {}
    for i in range(3):
        arrays[f'{i}.png'] = rng.randint(0, 256, (5, 7, 3)).astype(np.uint8)
        cv2.imwrite(f'imgs/{i}.png', arrays[f'{i}.png'])
    with open('list.txt', 'w') as f:
        f.write('0.png 4\n1.png 7\nmissing.png 1\n2.png -2\n')
    return arrays


def read_lmdb(path):
    env = lmdb.open(path, readonly=True, lock=False)
    with env.begin() as txn:
        records = [(k.decode(), caffe_pb2.Datum.FromString(v)) for k, v in txn.cursor()]
    env.close()
    return records


def read_leveldb(path):
    db = plyvel.DB(path)
    records = [(k.decode(), caffe_pb2.Datum.FromString(v)) for k, v in db]
    db.close()
    return records


def test_convert_imageset_datums_keys_labels(images):
    assert convert_imageset.main(['imgs/', 'list.txt', 'db']) == 0
    records = read_lmdb('db')
    # keys: the list line number (missing.png's line 2 is skipped), zero-padded
    assert [k for k, _ in records] == ['00000000_0.png', '00000001_1.png', '00000003_2.png']
    assert [d.label for _, d in records] == [4, 7, -2]
    for (key, datum), name in zip(records, ['0.png', '1.png', '2.png']):
        assert (datum.channels, datum.height, datum.width, datum.encoded) == (3, 5, 7, False)
        chw = np.frombuffer(datum.data, np.uint8).reshape(3, 5, 7)
        np.testing.assert_array_equal(chw, images[name].transpose(2, 0, 1))


def test_convert_imageset_resize_gray_leveldb(images):
    argv = ['--backend=leveldb', '--gray', '-resize_height', '4', '-resize_width=6',
            'imgs/', 'list.txt', 'db']
    assert convert_imageset.main(argv) == 0
    records = read_leveldb('db')
    assert len(records) == 3
    gray = cv2.imread('imgs/1.png', cv2.IMREAD_GRAYSCALE)
    expected = cv2.resize(gray, (6, 4))  # cv::resize to Size(width, height), bilinear
    datum = records[1][1]
    assert (datum.channels, datum.height, datum.width) == (1, 4, 6)
    np.testing.assert_array_equal(np.frombuffer(datum.data, np.uint8).reshape(4, 6), expected)


def test_convert_imageset_only_one_resize_side_keeps_size(images):
    assert convert_imageset.main(['--resize_height=4', 'imgs/', 'list.txt', 'db']) == 0
    assert {(d.height, d.width) for _, d in read_lmdb('db')} == {(5, 7)}


def test_convert_imageset_encoded_keeps_file_bytes_or_reencodes(images):
    assert convert_imageset.main(['--encoded', 'imgs/', 'list.txt', 'db1']) == 0
    records = read_lmdb('db1')
    with open('imgs/0.png', 'rb') as f:
        assert records[0][1].data == f.read()  # ReadFileToDatum: bytes as they are
    assert records[0][1].encoded and records[0][1].label == 4
    assert convert_imageset.main(['--encode_type=bmp', 'imgs/', 'list.txt', 'db2']) == 0
    datum = read_lmdb('db2')[2][1]
    assert datum.encoded and datum.data[:2] == b'BM'
    decoded = cv2.imdecode(np.frombuffer(datum.data, np.uint8), cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(decoded, images['2.png'])  # bmp is lossless


def test_convert_imageset_shuffle_keeps_pairs(images):
    assert convert_imageset.main(['--shuffle', 'imgs/', 'list.txt', 'db']) == 0
    pairs = {k.split('_', 1)[1]: d.label for k, d in read_lmdb('db')}
    assert pairs == {'0.png': 4, '1.png': 7, '2.png': -2}


def test_convert_imageset_list_parsing(tmp_path):
    path = tmp_path / 'l.txt'
    path.write_text('a b.jpg 12\nnolabel.jpg\nc.jpg 3x\n\n')
    assert convert_imageset.read_list(str(path)) == [
        ('a b.jpg', 12), ('nolabel.jpg', 0), ('c.jpg', 3), ('', 0)]


def test_catch_convert_imageset_existing_db_and_size_check(images):
    assert convert_imageset.main(['imgs/', 'list.txt', 'db']) == 0
    assert convert_imageset.main(['imgs/', 'list.txt', 'db']) == 1  # db::NEW
    cv2.imwrite('imgs/1.png', np.zeros((2, 2, 3), np.uint8))
    assert convert_imageset.main(['--check_size', 'imgs/', 'list.txt', 'db2']) == 1
    assert convert_imageset.main(['imgs/', 'list.txt']) == 1  # usage
    assert convert_imageset.main(['--backend=hdf5', 'imgs/', 'list.txt', 'db3']) == 1


def test_compute_image_mean_float32_arithmetic(images, caplog):
    assert convert_imageset.main(['imgs/', 'list.txt', 'db']) == 0
    with caplog.at_level('INFO', logger='caffe_torch'):
        assert compute_image_mean.main(['db', 'mean.binaryproto']) == 0
    blob = formats.read_binaryproto('mean.binaryproto', caffe_pb2.BlobProto)
    assert (blob.num, blob.channels, blob.height, blob.width) == (1, 3, 5, 7)  # legacy dims
    stack = np.stack([images[n].transpose(2, 0, 1) for n in ('0.png', '1.png', '2.png')])
    total = np.zeros(3 * 5 * 7, np.float32)
    for image in stack:  # Caffe's running float sum, one image at a time
        total = (total + image.ravel().astype(np.float32)).astype(np.float32)
    expected = (total / np.float32(3)).reshape(1, 3, 5, 7)
    np.testing.assert_array_equal(io.blobproto_to_array(blob), expected)
    np.testing.assert_allclose(expected[0], stack.mean(axis=0), rtol=1e-6)
    messages = [r.getMessage() for r in caplog.records]
    assert 'Number of channels: 3' in messages and 'Processed 3 files.' in messages
    for c in range(3):
        value = float(np.float32(expected[0, c].astype(np.float64).sum()) / np.float32(35))
        line = next(m for m in messages if m.startswith(f'mean_value channel [{c}]: '))
        assert abs(float(line.split(': ')[1]) - value) <= 1e-4 * abs(value)


def test_compute_image_mean_encoded_leveldb_and_float_data(images, tmp_path):
    assert convert_imageset.main(['--encoded', '--backend=leveldb', 'imgs/', 'list.txt',
                                  'enc']) == 0
    blob, count = compute_image_mean.compute_mean('enc', 'leveldb')
    mean = np.stack([images[n] for n in images]).astype(np.float64).mean(0)
    assert count == 3
    np.testing.assert_allclose(io.blobproto_to_array(blob)[0], mean.transpose(2, 0, 1),
                               rtol=1e-6)
    env = lmdb.open('floats', map_size=1 << 24)
    with env.begin(write=True) as txn:
        for i, value in enumerate([0.25, 0.5, 2.0]):
            txn.put(b'%d' % i, io.array_to_datum(np.full((2, 1, 3), value, np.float32))
                    .SerializeToString())
    env.close()
    blob, count = compute_image_mean.compute_mean('floats', 'lmdb')
    np.testing.assert_array_equal(io.blobproto_to_array(blob),
                                  np.full((1, 2, 1, 3), np.float32(2.75) / np.float32(3)))


def test_catch_compute_image_mean_mixed_sizes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = lmdb.open('mixed', map_size=1 << 24)
    with env.begin(write=True) as txn:
        txn.put(b'a', io.array_to_datum(np.zeros((1, 2, 2), np.uint8)).SerializeToString())
        txn.put(b'b', io.array_to_datum(np.zeros((1, 3, 2), np.uint8)).SerializeToString())
    env.close()
    assert compute_image_mean.main(['mixed']) == 1
    assert compute_image_mean.main(['missing_db']) == 1
    assert compute_image_mean.main([]) == 1


V1_NET = """name: 'old'
input: 'data' input_dim: 1 input_dim: 3 input_dim: 8 input_dim: 8
layers { name: 'conv' type: CONVOLUTION bottom: 'data' top: 'conv' blobs_lr: 1 blobs_lr: 2
  convolution_param { num_output: 4 kernel_size: 3 } }
layers { name: 'relu' type: RELU bottom: 'conv' top: 'conv' }
"""


def test_upgrade_net_proto_text_and_binary(tmp_path, caplog):
    (tmp_path / 'old.prototxt').write_text(V1_NET)
    assert upgrade_proto.net_text_main([str(tmp_path / 'old.prototxt'),
                                        str(tmp_path / 'new.prototxt')]) == 0
    new = formats.read_prototxt(tmp_path / 'new.prototxt', caffe_pb2.NetParameter)
    assert not new.layers and [l.type for l in new.layer] == ['Input', 'Convolution', 'ReLU']
    assert [p.lr_mult for p in new.layer[1].param] == [1, 2]
    caplog.clear()
    assert upgrade_proto.net_text_main([str(tmp_path / 'new.prototxt'),
                                        str(tmp_path / 'same.prototxt')]) == 0
    assert any('File already in latest proto format' in r.getMessage() for r in caplog.records)
    old = formats.read_prototxt(tmp_path / 'old.prototxt', caffe_pb2.NetParameter)
    formats.write_binaryproto(old, tmp_path / 'old.caffemodel')
    assert upgrade_proto.net_binary_main([str(tmp_path / 'old.caffemodel'),
                                          str(tmp_path / 'new.caffemodel')]) == 0
    binary = formats.read_binaryproto(tmp_path / 'new.caffemodel', caffe_pb2.NetParameter)
    assert binary == new


def test_upgrade_solver_proto_text(tmp_path):
    (tmp_path / 's.prototxt').write_text("net: 'n' base_lr: 0.1 solver_type: NESTEROV\n")
    assert upgrade_proto.solver_text_main([str(tmp_path / 's.prototxt'),
                                           str(tmp_path / 'o.prototxt')]) == 0
    solver = formats.read_prototxt(tmp_path / 'o.prototxt', caffe_pb2.SolverParameter)
    assert solver.type == 'Nesterov' and not solver.HasField('solver_type')


def test_catch_upgrade_tools_exit_codes(tmp_path):
    assert upgrade_proto.net_text_main(['only_one']) == 1
    (tmp_path / 'bad.prototxt').write_text('layer { nme: "x" }')
    assert upgrade_proto.net_text_main([str(tmp_path / 'bad.prototxt'),
                                        str(tmp_path / 'o')]) == 2
    (tmp_path / 'both.prototxt').write_text("type: 'SGD' solver_type: ADAM")
    assert upgrade_proto.solver_text_main([str(tmp_path / 'both.prototxt'),
                                           str(tmp_path / 'o')]) == 1
    assert not (tmp_path / 'o').exists()
