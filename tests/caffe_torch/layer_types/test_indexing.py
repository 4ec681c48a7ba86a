"""Embed, Filter, BatchReindex, Tile and Parameter against float64 NumPy transcriptions of
Caffe's loops (embed_layer.cpp, filter_layer.cpp, batch_reindex_layer.cpp, tile_layer.cpp,
parameter_layer.hpp), finite differences, the CHECKs and Caffe's force_backward rules for
index bottoms."""
import numpy as np
import pytest

import caffe_torch as caffe
from caffe_torch.blob import Blob
from caffe_torch.errors import LayerSetupError
from layer_check import check_gradient, make_layer, run_layer


def _randn(shape, seed=0):
    return np.random.RandomState(seed).randn(*shape).astype(np.float32)


def _net(tmp_path, text):
    path = tmp_path / 'net.prototxt'
    path.write_text(text)
    return caffe.Net(str(path), caffe.TRAIN)


# -- NumPy transcriptions --------------------------------------------------------------------
def np_embed(index, weight, bias=None):
    flat = index.ravel()
    top = np.zeros((flat.size, weight.shape[1]))
    for n, value in enumerate(flat):
        top[n] = weight[int(value)] + (0 if bias is None else bias)
    return top.reshape(index.shape + (weight.shape[1],))


def np_embed_backward(index, top_diff, input_dim):
    flat, dy = index.ravel(), top_diff.reshape(index.size, -1).astype(np.float64)
    dw = np.zeros((input_dim, dy.shape[1]))
    for n, value in enumerate(flat):
        dw[int(value)] += dy[n]
    return dw, dy.sum(axis=0)


def np_tile(x, axis, tiles):
    outer = int(np.prod(x.shape[:axis]))
    rows = x.reshape(outer, -1)
    top = np.concatenate([rows] * tiles, axis=1)
    shape = list(x.shape)
    shape[axis] *= tiles
    return top.reshape(shape)


# -- Embed -----------------------------------------------------------------------------------
EMBED = "type: 'Embed' embed_param { num_output: 3 input_dim: 5 %s }"


@pytest.mark.parametrize('bias', [True, False])
def test_embed_forward_backward_accumulates_repeats(bias):
    index = np.array([[0, 4, 2], [4, 4, 1]], np.float32)
    weight, b = _randn((5, 3), 1), _randn((3,), 2)
    params = [weight, b] if bias else [weight]
    top_diff = _randn((2, 3, 3), 3)
    out = run_layer(EMBED % ('' if bias else 'bias_term: false'), [index], params=params,
                    top_diffs=[top_diff], propagate_down=[False])
    np.testing.assert_allclose(out['tops'][0], np_embed(index, weight, b if bias else None),
                               rtol=1e-6)
    dw, db = np_embed_backward(index, top_diff, 5)
    np.testing.assert_allclose(out['param_diffs'][0], dw, rtol=1e-6)
    if bias:
        np.testing.assert_allclose(out['param_diffs'][1], db, rtol=1e-6)
    assert len(out['param_diffs']) == (2 if bias else 1)


def test_embed_param_shapes_and_fillers():
    layer, _, top = make_layer(EMBED % "weight_filler { type: 'constant' value: 3 } "
                               "bias_filler { type: 'constant' value: -1 }",
                               [np.zeros((4,), np.float32)])
    assert [b.shape for b in layer.blobs] == [(5, 3), (3,)]
    assert np.all(layer.blobs[0].data == 3) and np.all(layer.blobs[1].data == -1)
    assert top[0].shape == (4, 3)


def test_embed_param_diffs_add_up():
    """Parameter diffs accumulate over backward calls, as every Caffe layer's."""
    layer, bottom, top = make_layer(EMBED % '', [np.array([1, 1], np.float32)])
    layer.run_forward(bottom, top)
    top[0].diff[...] = 1
    for _ in range(2):
        layer.run_backward(top, [False], bottom)
    np.testing.assert_array_equal(layer.blobs[0].diff[1], [4, 4, 4])
    np.testing.assert_array_equal(layer.blobs[1].diff, [4, 4, 4])


def test_embed_gradient():
    index = np.array([3, 0, 3, 1], np.float32)
    check_gradient(EMBED % "weight_filler { type: 'gaussian' }", [index], check_bottoms=[])


@pytest.mark.parametrize('field, value', [('num_output', 0), ('input_dim', 0)])
def test_catch_embed_sizes(field, value):
    sizes = {'num_output': 3, 'input_dim': 5, field: value}
    text = (f"type: 'Embed' embed_param {{ num_output: {sizes['num_output']} "
            f"input_dim: {sizes['input_dim']} }}")
    with pytest.raises(LayerSetupError, match=f'{field} must be positive'):
        make_layer(text, [np.zeros(2, np.float32)])


@pytest.mark.parametrize('value', [5, -1, 1.5])
def test_catch_embed_bad_index(value):
    with pytest.raises(LayerSetupError, match=f'input value {value:g} at position 1'):
        run_layer(EMBED % '', [np.array([0, value], np.float32)])


def test_embed_refuses_force_backward(tmp_path):
    """Caffe lets force_backward ask for the index diff, then aborts in Backward; without
    force_backward the weights still get their diff."""
    body = '''
        layer { name: 'x' type: 'Input' top: 'x' input_param { shape { dim: 2 } } }
        layer { name: 'e' type: 'Embed' bottom: 'x' top: 'e' loss_weight: 1
                embed_param { num_output: 2 input_dim: 3 } }'''
    net = _net(tmp_path, body)
    net.blobs['x'].data[...] = [2, 2]
    net.forward()
    net.backward()
    np.testing.assert_array_equal(net.params['e'][0].diff, [[0, 0], [0, 0], [2, 2]])
    forced = _net(tmp_path, 'force_backward: true' + body)
    forced.forward()
    with pytest.raises(LayerSetupError, match="can't backpropagate to EmbedLayer input"):
        forced.backward()


# -- Filter ----------------------------------------------------------------------------------
def test_filter_forward_backward_two_tops():
    a, b = _randn((5, 2, 3), 1), _randn((5, 4), 2)
    selector = np.array([0, 2.5, 0, -1, 1], np.float32).reshape(5, 1)
    kept = [1, 3, 4]
    da, db = _randn((3, 2, 3), 3), _randn((3, 4), 4)
    out = run_layer("type: 'Filter'", [a, b, selector], ntop=2, top_diffs=[da, db],
                    propagate_down=[True, True, False])
    np.testing.assert_array_equal(out['tops'][0], a[kept])
    np.testing.assert_array_equal(out['tops'][1], b[kept])
    for diff, top_diff, shape in ((out['bottom_diffs'][0], da, a.shape),
                                  (out['bottom_diffs'][1], db, b.shape)):
        expected = np.zeros(shape)
        expected[kept] = top_diff
        np.testing.assert_array_equal(diff, expected)


def test_filter_tops_reshape_at_forward_only():
    """At set-up the tops get N items (no selector values read yet), at forward the count."""
    layer, bottom, top = make_layer("type: 'Filter'", [_randn((4, 2)),
                                                       np.array([0, 1, 0, 0], np.float32)])
    assert top[0].shape == (4, 2)
    layer.run_forward(bottom, top)
    assert top[0].shape == (1, 2)
    bottom[1].data[...] = 0
    layer.run_forward(bottom, top)
    assert top[0].shape == (0, 2)
    layer.run_backward(top, [True, False], bottom)
    assert not bottom[0].diff.any()


def test_filter_gradient():
    check_gradient("type: 'Filter'", [_randn((4, 3)), np.array([1, 0, 1, 1], np.float32)],
                   check_bottoms=[0])


def test_catch_filter_top_count():
    with pytest.raises(LayerSetupError, match='one top per filtered bottom'):
        make_layer("type: 'Filter'", [_randn((3, 2)), _randn((3, 2)), np.ones(3, np.float32)])


def test_catch_filter_selector_shape():
    with pytest.raises(LayerSetupError, match='must be singletons'):
        make_layer("type: 'Filter'", [_randn((3, 2)), np.ones((3, 2), np.float32)])


def test_catch_filter_first_dimension():
    with pytest.raises(LayerSetupError, match='same 0th dimension'):
        make_layer("type: 'Filter'", [_randn((4, 2)), np.ones(3, np.float32)])


def test_catch_filter_backward_to_selector():
    with pytest.raises(LayerSetupError, match='cannot backpropagate to filter index'):
        run_layer("type: 'Filter'", [_randn((3, 2)), np.ones(3, np.float32)],
                  top_diffs=[_randn((3, 2))], propagate_down=[True, True])


# -- BatchReindex ----------------------------------------------------------------------------
def test_batchreindex_forward_backward_repeats():
    x = _randn((3, 2, 2))
    index = np.array([2, 0, 2, 2.7], np.float32)  # 2.7 reads as 2
    top_diff = _randn((4, 2, 2), 1)
    out = run_layer("type: 'BatchReindex'", [x, index], top_diffs=[top_diff],
                    propagate_down=[True, False])
    np.testing.assert_array_equal(out['tops'][0], x[[2, 0, 2, 2]])
    expected = np.zeros(x.shape)
    for k, n in enumerate([2, 0, 2, 2]):
        expected[n] += top_diff[k]
    np.testing.assert_allclose(out['bottom_diffs'][0], expected, rtol=1e-6)


def test_batchreindex_gradient():
    check_gradient("type: 'BatchReindex'", [_randn((3, 2)), np.array([1, 1, 0], np.float32)],
                   check_bottoms=[0])


@pytest.mark.parametrize('value, what', [(-0.5, 'negative'), (3, 'not below the batch')])
def test_catch_batchreindex_bad_index(value, what):
    with pytest.raises(LayerSetupError, match=what):
        run_layer("type: 'BatchReindex'", [_randn((3, 2)), np.array([0, value], np.float32)])


def test_catch_batchreindex_index_axes():
    with pytest.raises(LayerSetupError, match='must be 1-D'):
        make_layer("type: 'BatchReindex'", [_randn((3, 2)), np.zeros((2, 1), np.float32)])


def test_batchreindex_refuses_force_backward(tmp_path):
    net = _net(tmp_path, '''force_backward: true
        layer { name: 'i' type: 'Input' top: 'i' input_param { shape { dim: 2 } } }
        layer { name: 'x' type: 'Parameter' top: 'x'
                parameter_param { shape { dim: 3 dim: 2 } } }
        layer { name: 'r' type: 'BatchReindex' bottom: 'x' bottom: 'i' top: 'r'
                loss_weight: 1 }''')
    net.forward()
    with pytest.raises(LayerSetupError, match='Cannot backprop to index'):
        net.backward()


# -- Tile ------------------------------------------------------------------------------------
@pytest.mark.parametrize('axis', [0, 1, 2, -1])
def test_tile_forward_backward(axis):
    x = _randn((2, 3, 2))
    real_axis = axis % 3
    top_diff = _randn(np_tile(x, real_axis, 3).shape, 1)
    out = run_layer(f"type: 'Tile' tile_param {{ axis: {axis} tiles: 3 }}", [x],
                    top_diffs=[top_diff])
    np.testing.assert_array_equal(out['tops'][0], np_tile(x, real_axis, 3))
    outer = int(np.prod(x.shape[:real_axis]))
    expected = top_diff.reshape(outer, 3, -1).astype(np.float64).sum(axis=1)
    np.testing.assert_allclose(out['bottom_diffs'][0], expected.reshape(x.shape), rtol=1e-6)


def test_tile_whole_blocks():
    out = run_layer("type: 'Tile' tile_param { tiles: 2 }", [np.array([[1, 2]], np.float32)])
    np.testing.assert_array_equal(out['tops'][0], [[1, 2, 1, 2]])


def test_tile_gradient():
    check_gradient("type: 'Tile' tile_param { axis: 1 tiles: 2 }", [_randn((2, 2, 2))])


@pytest.mark.parametrize('param, match', [('axis: 1', 'tiles must be specified'),
                                          ('tiles: 0', 'must be positive'),
                                          ('axis: 3 tiles: 2', 'tile_param.axis = 3')])
def test_catch_tile_params(param, match):
    with pytest.raises(LayerSetupError, match=match):
        make_layer(f"type: 'Tile' tile_param {{ {param} }}", [_randn((2, 3))])


# -- Parameter -------------------------------------------------------------------------------
def test_parameter_top_shares_the_blob():
    layer, _, top = make_layer("type: 'Parameter' parameter_param { shape { dim: 2 dim: 3 } }",
                               [])
    assert len(layer.blobs) == 1 and layer.blobs[0].shape == (2, 3) == top[0].shape
    assert not layer.blobs[0].data.any()
    layer.blobs[0].data[...] = _randn((2, 3))
    layer.run_forward([], top)
    np.testing.assert_array_equal(top[0].data, layer.blobs[0].data)
    top[0].diff[...] = 7
    assert np.all(layer.blobs[0].diff == 7)


def test_parameter_feeds_a_net(tmp_path):
    """A consumer's backward writes the parameter's diff through the shared top."""
    net = _net(tmp_path, '''
        layer { name: 'w' type: 'Parameter' top: 'w' parameter_param { shape { dim: 4 } } }
        layer { name: 'p' type: 'Power' bottom: 'w' top: 'y' loss_weight: 1
                power_param { power: 2 } }''')
    net.params['w'][0].data[...] = [1, -2, 3, 0.5]
    net.forward()
    net.backward()
    np.testing.assert_allclose(net.params['w'][0].diff, [2, -4, 6, 1])
    assert net.params['w'][0].shares_data_with(net.blobs['w'])


def test_parameter_top_diff_is_the_param_diff(tmp_path):
    """After a forward the top's diff is the parameter's diff (Caffe's ShareDiff): setting
    it sets the parameter's, and clear_param_diffs clears both, as on pycaffe."""
    net = _net(tmp_path, '''force_backward: true
        layer { name: 'w' type: 'Parameter' top: 'out'
                parameter_param { shape { dim: 3 } } }''')
    net.forward()
    net.blobs['out'].diff[...] = [1, 2, 3]
    net.backward()
    np.testing.assert_array_equal(net.params['w'][0].diff, [1, 2, 3])
    net.clear_param_diffs()
    assert not net.blobs['out'].diff.any()


def test_catch_parameter_takes_no_bottoms():
    with pytest.raises(LayerSetupError, match='exactly 0 bottom'):
        make_layer("type: 'Parameter' parameter_param { shape { dim: 2 } }",
                   [np.zeros(2, np.float32)])


def test_catch_parameter_shape_mismatch():
    layer, _, top = make_layer("type: 'Parameter' parameter_param { shape { dim: 2 } }", [])
    layer.blobs[0] = Blob((3,))
    with pytest.raises(LayerSetupError, match='does not fit'):
        layer.run_forward([], top)
