"""HDF5Data and HDF5Output on .h5 files written here (h5py)."""
import h5py
import numpy as np
import pytest

import caffe_torch as caffe
from caffe_torch.errors import DataRecordError, DataSourceError, LayerSetupError
from layer_check import make_layer

RNG = np.random.RandomState(2)


def h5(path, **datasets):
    with h5py.File(path, 'w') as f:
        for name, value in datasets.items():
            f[name] = value
    return str(path)


def source(tmp_path, *files):
    path = tmp_path / 'list.txt'
    path.write_text('\n'.join(files) + '\n')
    return path


def hdf5_layer(list_file, batch=2, tops=('data', 'label'), extra=''):
    text = (f'type: "HDF5Data" {"".join(f"top: {t!r} " for t in tops)}'.replace("'", '"') +
            f'hdf5_data_param {{ source: "{list_file}" batch_size: {batch} {extra} }}')
    return make_layer(text, [], ntop=len(tops))


def two_files(tmp_path):
    a = RNG.uniform(size=(3, 2, 2)).astype(np.float32)
    b = RNG.uniform(size=(2, 2, 2)).astype(np.float32)
    files = [h5(tmp_path / 'a.h5', data=a, label=np.arange(3.0)),
             h5(tmp_path / 'b.h5', data=b, label=np.arange(10.0, 12.0))]
    return source(tmp_path, *files), np.concatenate([a, b]), np.array([0, 1, 2, 10, 11.])


def test_batches_cross_files_and_wrap_round(tmp_path):
    """Rows a0 a1 | a2 b0 | b1 a0 | a1 a2: a batch continues in the next file."""
    list_file, data, labels = two_files(tmp_path)
    layer, _, top = hdf5_layer(list_file)
    assert top[0].shape == (2, 2, 2) and top[1].shape == (2,)
    for rows in ([0, 1], [2, 3], [4, 0], [1, 2]):
        layer.run_forward([], top)
        np.testing.assert_array_equal(top[0].data, data[rows])
        np.testing.assert_array_equal(top[1].data, labels[rows])


def test_float64_and_int32_become_float32(tmp_path):
    values = RNG.uniform(-1, 1, (4, 3))
    ints = np.array([[1], [-7], [300], [2 ** 24 + 1]], np.int32)
    layer, _, top = hdf5_layer(source(tmp_path, h5(tmp_path / 'x.h5', data=values, w=ints)),
                               batch=4, tops=('data', 'w'))
    layer.run_forward([], top)
    np.testing.assert_array_equal(top[0].data, values.astype(np.float32))
    np.testing.assert_array_equal(top[1].data, ints.astype(np.float32))
    assert top[1].shape == (4, 1)


def test_shuffle_keeps_files_together_and_covers_each_row(tmp_path):
    """Each pass over the files yields every row once; a file's rows come together."""
    list_file, _, labels = two_files(tmp_path)
    caffe.set_random_seed(9)
    layer, _, top = hdf5_layer(list_file, batch=5, extra='shuffle: true')
    passes = []
    for _ in range(4):
        layer.run_forward([], top)
        got = top[1].data.copy()
        assert sorted(got) == sorted(labels)
        a_first = set(got[:3]) == {0, 1, 2} and set(got[3:]) == {10, 11}
        assert a_first or (set(got[:2]) == {10, 11} and set(got[2:]) == {0, 1, 2})
        passes.append(tuple(got))
    assert len(set(passes)) > 1
    caffe.set_random_seed(9)
    again, _, top2 = hdf5_layer(list_file, batch=5, extra='shuffle: true')
    again.run_forward([], top2)
    assert tuple(top2[1].data) == passes[0]


def test_paths_in_list_split_on_whitespace(tmp_path):
    files = [h5(tmp_path / f'{n}.h5', data=np.full((1, 1), n, np.float32)) for n in (1, 2)]
    list_file = tmp_path / 'list.txt'
    list_file.write_text(f'  {files[0]}\t{files[1]}  \n\n')
    layer, _, top = hdf5_layer(list_file, tops=('data',))
    layer.run_forward([], top)
    np.testing.assert_array_equal(top[0].data.ravel(), [1, 2])


def test_hdf5output_writes_4d_data_and_label(tmp_path):
    out = tmp_path / 'out.h5'
    data = RNG.uniform(size=(2, 3, 2, 2)).astype(np.float32)
    layer, bottom, _ = make_layer(f'type: "HDF5Output" hdf5_output_param {{ file_name: '
                                  f'"{out}" }}', [data, np.array([4.0, 5.0], np.float32)],
                                  ntop=0)
    assert out.exists()  # created at set-up
    layer.run_forward(bottom, [])
    layer.close()
    with h5py.File(out, 'r') as f:
        assert set(f) == {'data', 'label'}
        np.testing.assert_array_equal(f['data'][()], data)
        np.testing.assert_array_equal(f['label'][()], [[[[4.0]]], [[[5.0]]]])


# -- errors ---------------------------------------------------------------------------------
def test_catch_missing_list(tmp_path):
    with pytest.raises(DataSourceError, match=r'cannot open hdf5_data_param.source ".*nope'
                                              r'.txt": No such file'):
        hdf5_layer(tmp_path / 'nope.txt')


def test_catch_missing_listed_file(tmp_path):
    with pytest.raises(DataSourceError, match=r'failed opening HDF5 file "gone.h5" \(listed '
                                              r'in .*not at the list file'):
        hdf5_layer(source(tmp_path, 'gone.h5'))


def test_catch_missing_dataset_lists_those_found(tmp_path):
    list_file = source(tmp_path, h5(tmp_path / 'x.h5', data=np.zeros((2, 1)),
                                    labels=np.zeros(2)))
    with pytest.raises(DataRecordError, match=r'failed to find HDF5 dataset "label" in .*x.h5'
                                              r'" \(datasets there: data, labels\)'):
        hdf5_layer(list_file)


def test_catch_row_count_mismatch(tmp_path):
    list_file = source(tmp_path, h5(tmp_path / 'x.h5', data=np.zeros((3, 1)),
                                    label=np.zeros(2)))
    with pytest.raises(DataRecordError, match='"label" has 2 rows but "data" has 3'):
        hdf5_layer(list_file)


def test_catch_files_of_different_row_shapes(tmp_path):
    list_file = source(tmp_path, h5(tmp_path / 'a.h5', data=np.zeros((1, 2))),
                       h5(tmp_path / 'b.h5', data=np.zeros((1, 3))))
    layer, _, top = hdf5_layer(list_file, tops=('data',))
    with pytest.raises(DataRecordError, match=r'per-row shapes \[\(3,\)\], those of the first'
                                              r' file \[\(2,\)\]'):
        layer.run_forward([], top)


def test_catch_string_dataset(tmp_path):
    list_file = source(tmp_path, h5(tmp_path / 'x.h5', data=np.array([b'a', b'b'])))
    with pytest.raises(DataRecordError, match='Caffe reads float and integer datasets only'):
        hdf5_layer(list_file, tops=('data',))


def test_catch_transform_param_and_empty_list(tmp_path):
    list_file = source(tmp_path, h5(tmp_path / 'x.h5', data=np.zeros((1, 1))))
    with pytest.raises(LayerSetupError, match='HDF5Data does not transform data'):
        make_layer(f'type: "HDF5Data" hdf5_data_param {{ source: "{list_file}" batch_size: 1'
                   f' }} transform_param {{ scale: 2 }}', [])
    (tmp_path / 'empty.txt').write_text('\n')
    with pytest.raises(LayerSetupError, match='at least 1 HDF5 filename listed'):
        hdf5_layer(tmp_path / 'empty.txt')


def test_catch_second_hdf5output_forward(tmp_path):
    layer, bottom, _ = make_layer(f'type: "HDF5Output" hdf5_output_param {{ file_name: '
                                  f'"{tmp_path}/o.h5" }}', [np.zeros((2, 1)), np.zeros(2)],
                                  ntop=0)
    layer.run_forward(bottom, [])
    with pytest.raises(DataSourceError, match='writes one forward per file'):
        layer.run_forward(bottom, [])


def test_catch_hdf5output_batch_mismatch_and_bad_folder(tmp_path):
    layer, bottom, _ = make_layer(f'type: "HDF5Output" hdf5_output_param {{ file_name: '
                                  f'"{tmp_path}/o.h5" }}', [np.zeros((2, 1)), np.zeros(3)],
                                  ntop=0)
    with pytest.raises(LayerSetupError, match='same batch size: 2 vs 3'):
        layer.run_forward(bottom, [])
    with pytest.raises(DataSourceError, match=r'failed to open HDF5 file ".*no/such/o.h5" for'
                                              r' writing'):
        make_layer(f'type: "HDF5Output" hdf5_output_param {{ file_name: '
                   f'"{tmp_path}/no/such/o.h5" }}', [np.zeros((2, 1)), np.zeros(2)], ntop=0)


def test_shuffled_batches_cover_each_row_once_per_pass(tmp_path):
    """One shuffled file of 6 rows in batches of 2: the batches that stay inside the file
    (taken as one slice) and the one that reaches its end (row by row, reshuffling at the
    wrap) together give every row once per pass, a new order each pass, as Caffe's."""
    labels = np.arange(6.0)
    list_file = source(tmp_path, h5(tmp_path / 'a.h5', data=RNG.uniform(size=(6, 3)),
                                    label=labels))
    caffe.set_random_seed(4)
    layer, _, top = hdf5_layer(list_file, batch=2, extra='shuffle: true')
    passes = []
    for _ in range(5):
        rows = []
        for _ in range(3):
            layer.run_forward([], top)
            rows.extend(top[1].data.tolist())
        assert sorted(rows) == labels.tolist()
        passes.append(tuple(rows))
    assert len(set(passes)) > 1
