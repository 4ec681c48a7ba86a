"""Common layers against float64 NumPy transcriptions of Caffe's formulas, finite
differences, Caffe's shape rules and errors, and its memory-sharing and diff conventions."""
import numpy as np
import pytest

from caffe_torch.blob import Blob
from caffe_torch.errors import LayerSetupError
from caffe_torch.layer_factory import create_layer
from layer_check import check_gradient, layer_param, make_layer, run_layer


def _rand(seed, *shape):
    return np.random.RandomState(seed).uniform(-1, 1, shape).astype(np.float32)


def _f64(*arrays):
    return [np.asarray(a, dtype=np.float64) for a in arrays]


def _in_place(text, array):
    """Set a layer up with its top being its bottom blob."""
    blob = Blob(array.shape)
    blob.data[...] = array
    create_layer(layer_param(text)).set_up([blob], [blob])


IP = 'type: "InnerProduct" inner_product_param { num_output: 3 %s }'


def _ip_reference(x, w, b, axis, transpose):
    flat = x.reshape(int(np.prod(x.shape[:axis])), -1).astype(np.float64)
    weight = w.astype(np.float64) if transpose else w.astype(np.float64).T
    return (flat @ weight + b).reshape(*x.shape[:axis], -1)


@pytest.mark.parametrize('extra, axis, transpose', [
    ('', 1, False), ('axis: 2', 2, False), ('transpose: true', 1, True),
    ('axis: -1', 3, False)])
def test_inner_product_forward_matches_numpy(extra, axis, transpose):
    """top = x W^T + b on the bottom flattened from `axis` (W stored (K, N) if transposed)."""
    x = _rand(1, 2, 3, 2, 5)
    k = int(np.prod(x.shape[axis:]))
    w = _rand(2, *((k, 3) if transpose else (3, k)))
    b = _rand(3, 3)
    out = run_layer(IP % extra, [x], [w, b])['tops'][0]
    assert out.shape == x.shape[:axis] + (3,)
    np.testing.assert_allclose(out, _ip_reference(x, w, b, axis, transpose), rtol=1e-5,
                               atol=1e-6)


def test_inner_product_backward_matches_numpy():
    """dW = dy^T x, db = sum of dy over rows, dx = dy W, all from zero diffs."""
    x, w, b, dy = _rand(1, 4, 2, 3), _rand(2, 3, 6), _rand(3, 3), _rand(4, 4, 3)
    r = run_layer(IP % '', [x], [w, b], top_diffs=[dy])
    x64, w64, dy64 = _f64(x.reshape(4, 6), w, dy)
    np.testing.assert_allclose(r['param_diffs'][0], dy64.T @ x64, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(r['param_diffs'][1], dy64.sum(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(r['bottom_diffs'][0], (dy64 @ w64).reshape(x.shape),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('extra', ['', 'transpose: true', 'axis: 2', 'bias_term: false'])
def test_inner_product_gradient(extra):
    """Bottom, weight and bias gradients agree with finite differences."""
    check_gradient(IP % extra, [_rand(5, 2, 3, 2)], params=None)


def test_inner_product_fillers_fill_params():
    """weight_filler and bias_filler fill the params at set-up."""
    text = IP % ('weight_filler { type: "constant" value: 0.5 } '
                 'bias_filler { type: "constant" value: -2 }')
    layer, _, _ = make_layer(text, [_rand(1, 2, 4)])
    assert np.all(layer.blobs[0].data == 0.5) and np.all(layer.blobs[1].data == -2)


def test_inner_product_param_diffs_accumulate_bottom_diff_overwritten():
    """Two backward calls double the weight/bias diffs but leave the bottom diff as one."""
    layer, bottom, top = make_layer(IP % '', [_rand(1, 2, 5)], [_rand(2, 3, 5), _rand(3, 3)])
    layer.run_forward(bottom, top)
    top[0].diff[...] = _rand(4, 2, 3)
    for blob in layer.blobs:
        blob.diff[...] = 0
    layer.run_backward(top, [True], bottom)
    once = [b.diff.copy() for b in layer.blobs], bottom[0].diff.copy()
    layer.run_backward(top, [True], bottom)
    for blob, first in zip(layer.blobs, once[0]):
        np.testing.assert_allclose(blob.diff, 2 * first, rtol=1e-6)
    np.testing.assert_array_equal(bottom[0].diff, once[1])


def test_inner_product_param_propagate_down_false_leaves_param_diff():
    """A param whose param_propagate_down is false keeps its diff."""
    layer, bottom, top = make_layer(IP % '', [_rand(1, 2, 5)])
    layer.param_propagate_down = [False, True]
    layer.run_forward(bottom, top)
    top[0].diff[...] = 1
    layer.blobs[0].diff[...] = 7
    layer.run_backward(top, [True], bottom)
    assert np.all(layer.blobs[0].diff == 7) and np.all(layer.blobs[1].diff == 2)


def test_catch_inner_product_input_size_change():
    """A bottom whose flattened K differs from the weight's names both sizes."""
    layer, bottom, top = make_layer(IP % '', [_rand(1, 2, 5)])
    bottom[0].reshape(2, 6)
    with pytest.raises(LayerSetupError, match=r'K = 6 .*K = 5'):
        layer.run_forward(bottom, top)


def test_catch_inner_product_without_num_output():
    """num_output left unset is an error at set-up."""
    with pytest.raises(LayerSetupError, match='num_output must be positive'):
        make_layer('type: "InnerProduct"', [_rand(1, 2, 5)])


def test_catch_inner_product_axis_out_of_range():
    """An axis beyond the bottom's axes is named in the error."""
    with pytest.raises(LayerSetupError, match='axis = 4 is out of range'):
        make_layer(IP % 'axis: 4', [_rand(1, 2, 5)])


@pytest.mark.parametrize('param, axis', [('', 1), ('concat_param { axis: 2 }', 2),
                                         ('concat_param { axis: -1 }', 3),
                                         ('concat_param { concat_dim: 0 }', 0)])
def test_concat_forward_backward(param, axis):
    """Top joins the bottoms along the axis; each bottom diff is its slice of the top diff."""
    shapes = [[2, 3, 4, 5] for _ in range(3)]
    for i, shape in enumerate(shapes):
        shape[axis] = i + 1
    bottoms = [_rand(i, *s) for i, s in enumerate(shapes)]
    expected = np.concatenate(_f64(*bottoms), axis=axis)
    dy = _rand(9, *expected.shape)
    r = run_layer('type: "Concat" ' + param, bottoms, top_diffs=[dy])
    np.testing.assert_array_equal(r['tops'][0], expected)
    parts = np.split(dy, np.cumsum([s[axis] for s in shapes])[:-1], axis=axis)
    for got, want in zip(r['bottom_diffs'], parts):
        np.testing.assert_array_equal(got, want)


def test_concat_gradient():
    """Concat gradients agree with finite differences."""
    check_gradient('type: "Concat"', [_rand(1, 2, 1, 3), _rand(2, 2, 2, 3)])


def test_concat_single_bottom_shares_memory():
    """With one bottom the top shares its data and diff."""
    _, bottom, top = make_layer('type: "Concat"', [_rand(1, 2, 3)])
    top[0].data[0, 0] = 42
    top[0].diff[0, 0] = 7
    assert bottom[0].data[0, 0] == 42 and bottom[0].diff[0, 0] == 7


def test_catch_concat_shape_mismatch():
    """Bottoms differing off the concat axis name the bottom and both shapes."""
    with pytest.raises(LayerSetupError, match=r'bottom\[1\] has shape \(2, 3, 5\) but '
                                              r'bottom\[0\] has \(2, 3, 4\)'):
        make_layer('type: "Concat"', [_rand(1, 2, 3, 4), _rand(2, 2, 3, 5)])


def test_catch_concat_axes_count_mismatch():
    """Bottoms with different numbers of axes are rejected."""
    with pytest.raises(LayerSetupError, match='every axis except the concat axis 1'):
        make_layer('type: "Concat"', [_rand(1, 2, 3, 4), _rand(2, 2, 3)])


def test_catch_concat_axis_and_concat_dim():
    """Giving both axis and concat_dim is an error."""
    with pytest.raises(LayerSetupError, match='either axis or concat_dim'):
        make_layer('type: "Concat" concat_param { axis: 1 concat_dim: 1 }',
                   [_rand(1, 2, 3), _rand(2, 2, 3)])


def test_catch_concat_dim_out_of_range():
    """A concat_dim beyond the bottom's axes is an error."""
    with pytest.raises(LayerSetupError, match='concat_dim = 3 is out of range'):
        make_layer('type: "Concat" concat_param { concat_dim: 3 }',
                   [_rand(1, 2, 3), _rand(2, 2, 3)])


@pytest.mark.parametrize('param, axis, sizes', [
    ('slice_param { slice_point: 1 slice_point: 4 }', 1, [1, 3, 2]),
    ('', 1, [2, 2, 2]),
    ('slice_param { slice_dim: 2 slice_point: 2 slice_point: 3 }', 2, [2, 1, 1]),
    ('slice_param { axis: -1 slice_point: 1 slice_point: 3 }', 3, [1, 2, 2])])
def test_slice_forward_backward(param, axis, sizes):
    """Tops are consecutive parts along the axis; backward concatenates the top diffs."""
    x = _rand(1, 2, 6, 4, 5)
    want = np.split(x.astype(np.float64), np.cumsum(sizes)[:-1], axis=axis)
    dys = [_rand(10 + i, *w.shape) for i, w in enumerate(want)]
    r = run_layer('type: "Slice" ' + param, [x], top_diffs=dys, ntop=3)
    for got, expected in zip(r['tops'], want):
        np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(r['bottom_diffs'][0], np.concatenate(dys, axis=axis))


def test_slice_gradient():
    """Slice gradients agree with finite differences."""
    check_gradient('type: "Slice" slice_param { slice_point: 1 }', [_rand(1, 2, 3, 2)],
                   ntop=2)


def test_slice_zero_size_last_part_allowed():
    """A last slice_point at the axis end gives an empty last top, as in Caffe."""
    _, _, top = make_layer('type: "Slice" slice_param { slice_point: 3 }', [_rand(1, 2, 3)],
                           ntop=2)
    assert [t.shape for t in top] == [(2, 3), (2, 0)]


def test_catch_slice_not_divisible():
    """An equal split that does not divide the axis names both numbers."""
    with pytest.raises(LayerSetupError, match=r'4 tops do not evenly divide .* size 6'):
        make_layer('type: "Slice"', [_rand(1, 2, 6)], ntop=4)


def test_catch_slice_point_count():
    """slice_point must give one point fewer than there are tops."""
    with pytest.raises(LayerSetupError, match=r'1 slice_point\(s\) for 3 tops; give 2'):
        make_layer('type: "Slice" slice_param { slice_point: 2 }', [_rand(1, 2, 6)], ntop=3)


def test_catch_slice_points_not_increasing():
    """Non-increasing or out-of-range slice points are errors."""
    for points in ['slice_point: 3 slice_point: 3', 'slice_point: 2 slice_point: 7']:
        with pytest.raises(LayerSetupError, match='must increase strictly'):
            make_layer('type: "Slice" slice_param { %s }' % points, [_rand(1, 2, 6)], ntop=3)


def test_catch_slice_axis_and_slice_dim():
    """Giving both axis and slice_dim is an error."""
    with pytest.raises(LayerSetupError, match='either axis or slice_dim'):
        make_layer('type: "Slice" slice_param { axis: 1 slice_dim: 1 }', [_rand(1, 2, 6)],
                   ntop=2)


def test_split_tops_share_bottom_data():
    """Every top shows the bottom's data, and writing the bottom shows in the tops."""
    layer, bottom, top = make_layer('type: "Split"', [_rand(1, 2, 3)], ntop=3)
    layer.run_forward(bottom, top)
    bottom[0].data[1, 2] = 5
    for blob in top:
        assert blob.shares_data_with(bottom[0]) and blob.data[1, 2] == 5


def test_split_backward_sums_top_diffs():
    """The bottom diff is the sum of all top diffs (one top: a copy)."""
    dys = [_rand(i, 2, 3) for i in range(3)]
    r = run_layer('type: "Split"', [_rand(9, 2, 3)], top_diffs=dys, ntop=3)
    np.testing.assert_allclose(r['bottom_diffs'][0], np.sum(_f64(*dys), axis=0), rtol=1e-6)
    r = run_layer('type: "Split"', [_rand(9, 2, 3)], top_diffs=dys[:1], ntop=1)
    np.testing.assert_array_equal(r['bottom_diffs'][0], dys[0])


def test_split_gradient():
    """Split's summed diff agrees with finite differences."""
    check_gradient('type: "Split"', [_rand(1, 2, 3)], ntop=3)


def test_catch_split_in_place():
    """A Split whose top is its bottom is rejected."""
    with pytest.raises(LayerSetupError, match='does not allow in-place'):
        _in_place('type: "Split"', _rand(1, 2, 3))


@pytest.mark.parametrize('param, shape', [
    ('', (2, 60)), ('flatten_param { axis: 2 }', (2, 3, 20)),
    ('flatten_param { axis: 1 end_axis: 2 }', (2, 12, 5)),
    ('flatten_param { axis: 0 end_axis: -2 }', (24, 5))])
def test_flatten_shapes_and_values(param, shape):
    """Axes [axis, end_axis] merge into one; the values keep their order."""
    x = _rand(1, 2, 3, 4, 5)
    r = run_layer('type: "Flatten" ' + param, [x], top_diffs=[_rand(2, *shape)])
    np.testing.assert_array_equal(r['tops'][0], x.reshape(shape))
    np.testing.assert_array_equal(r['bottom_diffs'][0], _rand(2, *shape).reshape(x.shape))


@pytest.mark.parametrize('type_, param', [('Flatten', ''),
                                          ('Reshape', 'reshape_param { shape { dim: -1 } }')])
def test_flatten_reshape_share_memory(type_, param):
    """Writing the top's data or diff changes the bottom's."""
    layer, bottom, top = make_layer(f'type: "{type_}" {param}', [_rand(1, 2, 3, 4)])
    layer.run_forward(bottom, top)
    top[0].data.reshape(-1)[5] = 99
    top[0].diff.reshape(-1)[7] = -3
    assert bottom[0].data.reshape(-1)[5] == 99 and bottom[0].diff.reshape(-1)[7] == -3


@pytest.mark.parametrize('param, shape', [
    ('shape { dim: 0 dim: -1 dim: 5 }', (2, 12, 5)),
    ('shape { dim: 6 dim: 2 dim: 10 }', (6, 2, 10)),
    ('shape { dim: 0 dim: 2 dim: -1 }', (2, 2, 30)),
    ('axis: 1 num_axes: 2 shape { dim: -1 }', (2, 12, 5)),
    ('axis: -1 shape { dim: 1 dim: 1 }', (2, 3, 4, 5, 1, 1)),
    ('axis: 0 num_axes: 0 shape { dim: 1 }', (1, 2, 3, 4, 5)),
    ('axis: 1 num_axes: 2 shape { dim: 0 dim: -1 dim: 2 }', (2, 3, 2, 2, 5))])
def test_reshape_shapes(param, shape):
    """0 copies the bottom dim, -1 is inferred, axis/num_axes choose the replaced axes."""
    x = _rand(1, 2, 3, 4, 5)
    r = run_layer('type: "Reshape" reshape_param { %s }' % param, [x])
    np.testing.assert_array_equal(r['tops'][0], x.reshape(shape))


def test_catch_reshape_count_mismatch():
    """A shape with another element count names both counts."""
    with pytest.raises(LayerSetupError, match='has 12 elements but bottom shape .* has 24'):
        make_layer('type: "Reshape" reshape_param { shape { dim: 3 dim: 4 } }',
                   [_rand(1, 2, 3, 4)])


def test_catch_reshape_not_divisible():
    """An inferred dim that does not divide names the counts."""
    with pytest.raises(LayerSetupError, match=r'bottom count 24 is not divisible .*\(5\)'):
        make_layer('type: "Reshape" reshape_param { shape { dim: 5 dim: -1 } }',
                   [_rand(1, 2, 3, 4)])


def test_catch_reshape_two_inferred_dims():
    """At most one -1 may be given."""
    with pytest.raises(LayerSetupError, match='at most one -1'):
        make_layer('type: "Reshape" reshape_param { shape { dim: -1 dim: -1 } }',
                   [_rand(1, 2, 3)])


def test_catch_reshape_copy_without_axis():
    """A 0 dim with no bottom axis to copy is an error."""
    with pytest.raises(LayerSetupError, match='has no axis 2 to copy'):
        make_layer('type: "Reshape" reshape_param { shape { dim: 0 dim: 0 dim: 0 } }',
                   [_rand(1, 2, 3)])


def test_catch_reshape_axis_out_of_range():
    """An axis beyond the bottom's axes is an error."""
    with pytest.raises(LayerSetupError, match='axis = 4 is out of range'):
        make_layer('type: "Reshape" reshape_param { axis: 4 shape { dim: 1 } }',
                   [_rand(1, 2, 3)])


@pytest.mark.parametrize('type_', ['Flatten', 'Reshape'])
def test_catch_flatten_reshape_in_place(type_):
    """Flatten and Reshape reject in-place use."""
    with pytest.raises(LayerSetupError, match='does not allow in-place'):
        _in_place(f'type: "{type_}" reshape_param {{ shape {{ dim: -1 }} }}', _rand(1, 2, 3))


def test_silence_zeroes_propagated_diffs():
    """Backward zero-fills the diffs of bottoms with propagate_down, and no others."""
    layer, bottom, top = make_layer('type: "Silence"', [_rand(1, 2), _rand(2, 3)], ntop=0)
    layer.run_forward(bottom, top)
    for blob in bottom:
        blob.diff[...] = 5
    layer.run_backward(top, [True, False], bottom)
    assert np.all(bottom[0].diff == 0) and np.all(bottom[1].diff == 5)


def _argmax_reference(rows, k):
    """Per row: the k (value, index) pairs largest first, ties by larger index first."""
    return [sorted(((v, j) for j, v in enumerate(row)), reverse=True)[:k] for row in rows]


@pytest.mark.parametrize('out_max_val', [False, True])
def test_argmax_per_instance(out_max_val):
    """No axis: top (N, 1|2, top_k), indices into the instance (then values), ties larger first."""
    x = _rand(1, 3, 2, 2, 2)
    x.reshape(3, -1)[0, [1, 4, 6]] = 2  # a three-way tie ranks indices 6, 4, 1
    text = 'type: "ArgMax" argmax_param { top_k: 3 out_max_val: %s }' % str(out_max_val).lower()
    out = run_layer(text, [x])['tops'][0]
    assert out.shape == (3, 2 if out_max_val else 1, 3, 1)
    for n, best in enumerate(_argmax_reference(x.reshape(3, -1), 3)):
        np.testing.assert_array_equal(out[n, 0, :, 0], [j for _, j in best])
        if out_max_val:
            np.testing.assert_array_equal(out[n, 1, :, 0], [v for v, _ in best])


@pytest.mark.parametrize('out_max_val', [False, True])
def test_argmax_along_axis(out_max_val):
    """With axis: top keeps the bottom shape with that axis cut to top_k."""
    x = _rand(2, 2, 5, 3)
    text = 'type: "ArgMax" argmax_param { axis: 1 top_k: 2 out_max_val: %s }' % (
        str(out_max_val).lower())
    out = run_layer(text, [x])['tops'][0]
    assert out.shape == (2, 2, 3)
    for n in range(2):
        for w in range(3):
            best = _argmax_reference([x[n, :, w]], 2)[0]
            want = [v if out_max_val else j for v, j in best]
            np.testing.assert_array_equal(out[n, :, w], want)


def test_catch_argmax_top_k_too_large():
    """top_k above the ranked entries is an error naming both."""
    with pytest.raises(LayerSetupError, match='top_k = 7 exceeds the 6 entries'):
        make_layer('type: "ArgMax" argmax_param { top_k: 7 }', [_rand(1, 2, 3, 2)])


def test_catch_argmax_backward():
    """Asking ArgMax for a gradient is an error (Caffe aborts with NOT_IMPLEMENTED); without
    propagate_down it does nothing."""
    from caffe_torch.errors import BackwardNotImplementedError
    layer, bottom, top = make_layer('type: "ArgMax"', [_rand(1, 2, 3)])
    layer.run_forward(bottom, top)
    layer.run_backward(top, [False], bottom)
    with pytest.raises(BackwardNotImplementedError, match='ArgMax.*propagate_down: false'):
        layer.run_backward(top, [True], bottom)
