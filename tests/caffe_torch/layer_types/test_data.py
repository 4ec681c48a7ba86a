"""Input and DummyData: tops shaped once at set-up, filled as Caffe's LayerSetUp/Forward do."""
import numpy as np
import pytest

from caffe_torch import mode
from caffe_torch.errors import LayerSetupError
from layer_check import make_layer

INPUT_TWO = 'type: "Input" input_param { shape { dim: 2 dim: 3 } shape { dim: 4 } }'


# -- Input -------------------------------------------------------------------------------
def test_input_one_shape_per_top():
    """Each top takes its own input_param.shape."""
    _, _, top = make_layer(INPUT_TWO, [], ntop=2)
    assert [t.shape for t in top] == [(2, 3), (4,)]


def test_input_single_shape_for_all_tops():
    """A single shape is used for every top."""
    text = 'type: "Input" input_param { shape { dim: 1 dim: 3 dim: 5 dim: 7 } }'
    _, _, top = make_layer(text, [], ntop=3)
    assert all(t.shape == (1, 3, 5, 7) for t in top)


def test_input_without_shape_leaves_tops_alone():
    """With no shape given the tops keep the shape they had (the user sets it)."""
    layer, bottom, top = make_layer('type: "Input"', [], ntop=1)
    assert top[0].shape == ()
    top[0].reshape(2, 2)
    layer.run_forward(bottom, top)
    assert top[0].shape == (2, 2)


def test_input_forward_keeps_user_shape_and_data():
    """Forward neither reshapes nor touches what the user wrote into the top."""
    layer, bottom, top = make_layer(INPUT_TWO, [], ntop=2)
    top[0].reshape(5, 3, 2)
    top[0].data[...] = np.arange(30, dtype=np.float32).reshape(5, 3, 2)
    layer.run_forward(bottom, top)
    assert top[0].shape == (5, 3, 2)
    np.testing.assert_array_equal(top[0].data.ravel(), np.arange(30))


def test_catch_input_shape_count():
    """Two shapes for three tops is an error naming both counts."""
    with pytest.raises(LayerSetupError, match=r"'shape' once, once per top.*3 top.*2"):
        make_layer(INPUT_TWO, [], ntop=3)


def test_catch_input_with_bottom():
    """Input takes no bottoms."""
    with pytest.raises(LayerSetupError, match='exactly 0 bottom'):
        make_layer(INPUT_TWO, [np.zeros(2, np.float32)], ntop=2)


def test_catch_input_negative_dim():
    """A negative dimension is an error naming the top and shape."""
    with pytest.raises(LayerSetupError, match=r'top 0 shape \[2, -1\]'):
        make_layer('type: "Input" input_param { shape { dim: 2 dim: -1 } }', [])


# -- DummyData ---------------------------------------------------------------------------
def test_dummy_data_default_is_zero():
    """Without a data_filler every top is constant 0."""
    text = 'type: "DummyData" dummy_data_param { shape { dim: 2 dim: 3 } }'
    layer, bottom, top = make_layer(text, [], ntop=2)
    layer.run_forward(bottom, top)
    assert all(t.shape == (2, 3) and np.all(t.data == 0) for t in top)


def test_dummy_data_legacy_dims():
    """Legacy num/channels/height/width, each once or per top, give 4-D tops."""
    text = ('type: "DummyData" dummy_data_param { num: 2 channels: 3 channels: 1 '
            'height: 4 width: 5 width: 6 }')
    _, _, top = make_layer(text, [], ntop=2)
    assert [t.shape for t in top] == [(2, 3, 4, 5), (2, 1, 4, 6)]


def test_dummy_data_constant_filled_once():
    """A constant filler fills at set-up only: forward keeps what the user wrote."""
    text = ('type: "DummyData" dummy_data_param { shape { dim: 3 } '
            'data_filler { type: "constant" value: 2.5 } }')
    layer, bottom, top = make_layer(text, [], ntop=1)
    np.testing.assert_array_equal(top[0].data, 2.5)
    top[0].data[...] = 7
    layer.run_forward(bottom, top)
    np.testing.assert_array_equal(top[0].data, 7)


def test_dummy_data_random_filler_refills_every_forward():
    """A non-constant filler is not drawn at set-up and is redrawn by every forward."""
    mode.set_random_seed(1701)
    text = ('type: "DummyData" dummy_data_param { shape { dim: 50 } shape { dim: 4 } '
            'data_filler { type: "uniform" min: 1 max: 2 } '
            'data_filler { type: "constant" value: -1 } }')
    layer, bottom, top = make_layer(text, [], ntop=2)
    assert np.all(top[0].data == 0) and np.all(top[1].data == -1)
    layer.run_forward(bottom, top)
    first = top[0].data.copy()
    layer.run_forward(bottom, top)
    assert np.all((first >= 1) & (first <= 2)) and not np.array_equal(first, top[0].data)
    np.testing.assert_array_equal(top[1].data, -1)


def test_dummy_data_one_filler_for_all_tops():
    """A single data_filler serves every top."""
    text = ('type: "DummyData" dummy_data_param { shape { dim: 2 } '
            'data_filler { type: "constant" value: 3 } }')
    _, _, top = make_layer(text, [], ntop=3)
    assert all(np.all(t.data == 3) for t in top)


def test_catch_dummy_data_filler_count():
    """Two fillers for three tops is an error."""
    text = ('type: "DummyData" dummy_data_param { shape { dim: 2 } '
            'data_filler { type: "constant" } data_filler { type: "constant" } }')
    with pytest.raises(LayerSetupError, match='data fillers must be 0, 1 or equal'):
        make_layer(text, [], ntop=3)


def test_catch_dummy_data_shape_and_legacy():
    """Giving both shape and legacy dims is an error."""
    text = 'type: "DummyData" dummy_data_param { shape { dim: 2 } num: 2 }'
    with pytest.raises(LayerSetupError, match='both shape and legacy'):
        make_layer(text, [])


def test_catch_dummy_data_shape_count():
    """Two shapes for three tops (or none) is an error."""
    text = 'type: "DummyData" dummy_data_param { shape { dim: 2 } shape { dim: 3 } }'
    with pytest.raises(LayerSetupError, match=r"'shape' once, or once per top"):
        make_layer(text, [], ntop=3)
    with pytest.raises(LayerSetupError, match=r"specified 0"):
        make_layer('type: "DummyData"', [])


def test_catch_dummy_data_legacy_missing_field():
    """Legacy dims need every one of num, channels, height and width."""
    text = 'type: "DummyData" dummy_data_param { num: 2 channels: 3 height: 4 }'
    with pytest.raises(LayerSetupError, match=r"'width' once.*specified 0"):
        make_layer(text, [])


def test_catch_dummy_data_unknown_filler():
    """An unknown filler type is reported at set-up with the known ones."""
    text = ('type: "DummyData" dummy_data_param { shape { dim: 2 } '
            'data_filler { type: "gausian" } }')
    with pytest.raises(LayerSetupError, match='unknown data_filler type "gausian".*gaussian'):
        make_layer(text, [])


def test_catch_dummy_data_empty_top():
    """Caffe's fillers abort on a blob with a 0 dimension (Blob::mutable_cpu_data's
    CHECK(data_)): a constant filler at set-up, any other at the first forward."""
    text = 'type: "DummyData" dummy_data_param { shape { dim: 2 dim: 0 dim: 3 } }'
    with pytest.raises(LayerSetupError, match='top 0 of shape .* is empty'):
        make_layer(text, [])
    text = ('type: "DummyData" dummy_data_param { shape { dim: 2 } shape { dim: 0 } '
            'data_filler { type: "uniform" } }')
    layer, bottom, top = make_layer(text, [], ntop=2)
    with pytest.raises(LayerSetupError, match='top 1 of shape .* is empty'):
        layer.run_forward(bottom, top)
