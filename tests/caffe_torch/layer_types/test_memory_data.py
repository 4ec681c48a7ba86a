"""MemoryData and Net.set_input_arrays: pycaffe's checks and messages, batches in order."""
import numpy as np
import pytest

import caffe_torch as caffe
from caffe_torch.errors import InputArrayError, LayerSetupError
from layer_check import make_layer

MEMORY = ('layer { name: "mem" type: "MemoryData" top: "data" top: "label" '
          'memory_data_param { batch_size: 2 channels: 3 height: 2 width: 2 } }')
RNG = np.random.RandomState(4)


def net(tmp_path, text=MEMORY):
    path = tmp_path / 'net.prototxt'
    path.write_text(text)
    return caffe.Net(str(path), caffe.TEST)


def arrays(n=6):
    return RNG.uniform(size=(n, 3, 2, 2)).astype(np.float32), np.arange(n, dtype=np.float32)


def test_batches_in_order_wrapping_round(tmp_path):
    """6 rows, batch 2: rows 0-1, 2-3, 4-5, 0-1; labels N x 1 x 1 x 1 after forward."""
    n = net(tmp_path)
    assert n.blobs['label'].shape == (2,)
    data, labels = arrays()
    n.set_input_arrays(data, labels)
    for start in (0, 2, 4, 0):
        n.forward()
        np.testing.assert_array_equal(n.blobs['data'].data, data[start:start + 2])
        np.testing.assert_array_equal(n.blobs['label'].data.ravel(), labels[start:start + 2])
        assert n.blobs['label'].shape == (2, 1, 1, 1)


def test_layer_keeps_the_arrays_not_copies(tmp_path):
    """As pycaffe's Reset keeps the pointer: later edits to the arrays show in forward."""
    n = net(tmp_path)
    data, labels = arrays(2)
    labels4 = np.ascontiguousarray(labels.reshape(2, 1, 1, 1))
    n.set_input_arrays(data, labels4)
    data[1] = 7.0
    labels4[0] = 9.0
    n.forward()
    assert np.all(n.blobs['data'].data[1] == 7.0) and n.blobs['label'].data[0, 0, 0, 0] == 9


def test_set_input_arrays_resets_position(tmp_path):
    n = net(tmp_path)
    data, labels = arrays()
    n.set_input_arrays(data, labels)
    n.forward()
    n.set_input_arrays(data, labels)
    n.forward()
    np.testing.assert_array_equal(n.blobs['label'].data.ravel(), [0, 1])


@pytest.mark.parametrize('data, message', [
    (np.zeros((4, 3, 2, 4), np.float32)[..., ::2], 'data array must be C contiguous'),
    (np.zeros((4, 12), np.float32), r'data array must be 4-d, got shape \(4, 12\)'),
    (np.zeros((4, 3, 2, 2)), 'data array must be float32, got float64'),
    (np.zeros((4, 1, 2, 2), np.float32), 'data array has wrong number of channels: 1, the '
                                         'layer expects 3'),
    (np.zeros((4, 3, 5, 2), np.float32), 'data array has wrong height: 5'),
    (np.zeros((4, 3, 2, 5), np.float32), 'data array has wrong width: 5'),
    (np.zeros((3, 3, 2, 2), np.float32), 'data and labels must have the same first dimension'
                                         ': 3 vs 4'),
])
def test_catch_bad_data_array(tmp_path, data, message):
    with pytest.raises(InputArrayError, match=message):
        net(tmp_path).set_input_arrays(data, np.zeros(4, np.float32))


def test_catch_bad_labels_and_batch_multiple(tmp_path):
    n = net(tmp_path)
    with pytest.raises(RuntimeError, match='labels array must be float32, got int64'):
        n.set_input_arrays(np.zeros((4, 3, 2, 2), np.float32), np.zeros(4, np.int64))
    with pytest.raises(InputArrayError, match='labels array has wrong height: 2'):
        n.set_input_arrays(np.zeros((4, 3, 2, 2), np.float32),
                           np.zeros((4, 1, 2, 1), np.float32))
    with pytest.raises(InputArrayError, match=r'multiple of batch size: 3 rows, batch_size 2'):
        n.set_input_arrays(np.zeros((3, 3, 2, 2), np.float32), np.zeros(3, np.float32))


def test_catch_net_without_memory_data(tmp_path):
    n = net(tmp_path, 'layer { name: "in" type: "Input" top: "x" input_param { shape { '
                      'dim: 1 } } }')
    with pytest.raises(InputArrayError, match='only be called if the first layer is a '
                                              'MemoryDataLayer; this net has none'):
        n.set_input_arrays(*arrays())


def test_catch_memory_data_not_first(tmp_path):
    text = ('layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 } } }\n'
            + MEMORY)
    with pytest.raises(InputArrayError, match='MemoryData layer "mem" is layer 1, move it to '
                                              'the front'):
        net(tmp_path, text).set_input_arrays(*arrays())


def test_catch_forward_before_set_input_arrays(tmp_path):
    with pytest.raises(InputArrayError, match='call net.set_input_arrays'):
        net(tmp_path).forward()


def test_catch_unset_dimensions():
    with pytest.raises(LayerSetupError, match='must be specified and positive in '
                                              'memory_data_param; height is 0'):
        make_layer('type: "MemoryData" memory_data_param { batch_size: 2 channels: 1 '
                   'width: 3 }', [], ntop=2)
