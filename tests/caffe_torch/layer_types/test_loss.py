"""Softmax, SoftmaxWithLoss, EuclideanLoss and Accuracy against float64 NumPy transcriptions
of Caffe's loops (softmax_layer.cpp, softmax_loss_layer.cpp, euclidean_loss_layer.cpp,
accuracy_layer.cpp)."""
import numpy as np
import pytest

from caffe_torch.blob import Blob
from caffe_torch.errors import LayerSetupError
from caffe_torch.layer_factory import create_layer
from layer_check import check_gradient, layer_param, make_layer, run_layer

FLT_MIN = np.finfo(np.float32).tiny


def _scores(shape, seed=0):
    return np.random.RandomState(seed).randn(*shape).astype(np.float32)


def _labels(shape, classes, seed=1, ignore=None, ignore_fraction=0.0):
    rng = np.random.RandomState(seed)
    labels = rng.randint(0, classes, size=shape).astype(np.float32)
    if ignore is not None:
        labels[rng.uniform(size=shape) < ignore_fraction] = ignore
    return labels


def _dims(shape, axis):
    axis = axis % len(shape)
    return int(np.prod(shape[:axis])), shape[axis], int(np.prod(shape[axis + 1:]))


# -- NumPy transcriptions --------------------------------------------------------------------
def np_softmax(x, axis):
    outer, channels, inner = _dims(x.shape, axis)
    x3 = x.astype(np.float64).reshape(outer, channels, inner)
    y = np.empty_like(x3)
    for i in range(outer):
        for j in range(inner):
            e = np.exp(x3[i, :, j] - x3[i, :, j].max())
            y[i, :, j] = e / e.sum()
    return y.reshape(x.shape)


def np_softmax_backward(y, dy, axis):
    outer, channels, inner = _dims(y.shape, axis)
    y3 = y.astype(np.float64).reshape(outer, channels, inner)
    d3 = dy.astype(np.float64).reshape(outer, channels, inner)
    dx = np.empty_like(y3)
    for i in range(outer):
        for j in range(inner):
            dot = np.dot(d3[i, :, j], y3[i, :, j])
            dx[i, :, j] = (d3[i, :, j] - dot) * y3[i, :, j]
    return dx.reshape(y.shape)


def np_softmax_loss(x, label, axis=1, ignore=None, mode='VALID', weight=1.0):
    """(loss, d loss / d x) as Caffe's Forward_cpu / Backward_cpu loops compute them."""
    outer, channels, inner = _dims(x.shape, axis)
    prob = np_softmax(x, axis).reshape(outer, channels, inner)
    lab = label.reshape(outer, inner)
    loss, count, grad = 0.0, 0, prob.copy()
    for i in range(outer):
        for j in range(inner):
            value = int(lab[i, j])
            if ignore is not None and value == ignore:
                grad[i, :, j] = 0
                continue
            loss -= np.log(max(prob[i, value, j], FLT_MIN))
            grad[i, value, j] -= 1
            count += 1
    normalizer = {'FULL': outer * inner, 'VALID': count, 'BATCH_SIZE': outer,
                  'NONE': 1}[mode]
    normalizer = max(1.0, normalizer)
    return loss / normalizer, (grad * weight / normalizer).reshape(x.shape)


def np_accuracy(x, label, axis=1, top_k=1, ignore=None):
    """(accuracy, per-class accuracy) with Caffe's ">= counts as better" loop."""
    outer, channels, inner = _dims(x.shape, axis)
    x3 = x.reshape(outer, channels, inner)
    lab = label.reshape(outer, inner)
    hits, count = 0, 0
    seen, right = np.zeros(channels), np.zeros(channels)
    for i in range(outer):
        for j in range(inner):
            value = int(lab[i, j])
            if ignore is not None and value == ignore:
                continue
            seen[value] += 1
            better = -1
            for k in range(channels):
                better += x3[i, k, j] >= x3[i, value, j]
            if better < top_k:
                hits += 1
                right[value] += 1
            count += 1
    per_class = np.where(seen > 0, right / np.maximum(seen, 1), 0)
    return (hits / count if count else 0.0), per_class


def _numeric_score_gradient(text, bottoms, weight=0.7, step=1e-2, threshold=1e-3):
    """Finite differences of weight * loss w.r.t. the score only (labels get no diff)."""
    layer, bottom, top = make_layer(text, bottoms)
    layer.run_forward(bottom, top)
    top[0].diff[...] = weight
    layer.run_backward(top, [True, False], bottom)
    analytic = bottom[0].diff.astype(np.float64).copy()
    flat = bottom[0].data.reshape(-1)
    for j in range(flat.size):
        saved = flat[j]
        flat[j] = saved + step
        plus = layer.run_forward(bottom, top)
        flat[j] = saved - step
        minus = layer.run_forward(bottom, top)
        flat[j] = saved
        numeric = (plus - minus) / (2 * step)
        a = analytic.reshape(-1)[j]
        assert abs(a - numeric) <= threshold * max(abs(a), abs(numeric), 1.0), (j, a, numeric)


# -- Softmax -----------------------------------------------------------------------------
@pytest.mark.parametrize('axis', [1, 2, -1, 0])
def test_softmax_forward_backward_match_numpy(axis):
    """Softmax forward and backward equal Caffe's per-(outer, inner) loops on any axis."""
    x = _scores((2, 3, 5, 7))
    dy = _scores((2, 3, 5, 7), seed=5)
    r = run_layer(f'type: "Softmax" softmax_param {{ axis: {axis} }}', [x], top_diffs=[dy])
    y = np_softmax(x, axis)
    np.testing.assert_allclose(r['tops'][0], y, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(r['bottom_diffs'][0], np_softmax_backward(y, dy, axis),
                               rtol=1e-4, atol=1e-6)


def test_softmax_backward_ignores_propagate_down():
    """Caffe's Softmax Backward_cpu never reads propagate_down: called with it false (the
    bottom needs backward for another consumer) it still writes the bottom diff."""
    x, dy = _scores((2, 3, 4)), _scores((2, 3, 4), seed=6)
    r = run_layer('type: "Softmax"', [x], top_diffs=[dy], propagate_down=[False])
    np.testing.assert_allclose(r['bottom_diffs'][0], np_softmax_backward(r['tops'][0], dy, 1),
                               rtol=1e-4, atol=1e-6)


def test_softmax_gradient():
    """Softmax's analytic gradient agrees with finite differences."""
    check_gradient('type: "Softmax"', [_scores((2, 4, 3, 2))])


def test_softmax_large_inputs_are_stable():
    """Subtracting the max keeps huge scores finite, as in Caffe."""
    x = np.array([[1000.0, 999.0, -1000.0]], np.float32)
    y = run_layer('type: "Softmax"', [x])['tops'][0]
    np.testing.assert_allclose(y, np_softmax(x, 1), rtol=1e-6)


def test_softmax_in_place():
    """Softmax run in place (top is bottom) gives the same data and diff."""
    x = _scores((2, 3, 4))
    dy = _scores((2, 3, 4), seed=9)
    layer = create_layer(layer_param('type: "Softmax"'))
    blob = Blob(x.shape)
    blob.data[...] = x
    layer.set_up([blob], [blob])
    layer.run_forward([blob], [blob])
    y = blob.data.astype(np.float64).copy()
    blob.diff[...] = dy
    layer.run_backward([blob], [True], [blob])
    np.testing.assert_allclose(y, np_softmax(x, 1), rtol=1e-5)
    np.testing.assert_allclose(blob.diff, np_softmax_backward(y, dy, 1), rtol=1e-4, atol=1e-6)


def test_catch_softmax_axis_out_of_range():
    """An axis beyond the bottom's axes is an error naming the axis."""
    with pytest.raises(LayerSetupError, match='softmax_param.axis = 3 is out of range'):
        run_layer('type: "Softmax" softmax_param { axis: 3 }', [_scores((2, 3, 4))])


# -- SoftmaxWithLoss ---------------------------------------------------------------------
LOSS = 'type: "SoftmaxWithLoss" loss_param {{ {} }}'


@pytest.mark.parametrize('mode', ['FULL', 'VALID', 'BATCH_SIZE', 'NONE'])
def test_softmax_loss_normalization_modes(mode):
    """Each normalization divides loss and gradient by Caffe's normalizer."""
    x = _scores((2, 5, 3, 4))
    label = _labels((2, 1, 3, 4), 5, ignore=255, ignore_fraction=0.3)
    text = LOSS.format(f'ignore_label: 255 normalization: {mode}')
    r = run_layer(text, [x, label], top_diffs=[None], propagate_down=[True, False])
    loss, grad = np_softmax_loss(x, label, ignore=255, mode=mode)
    np.testing.assert_allclose(r['tops'][0], loss, rtol=1e-5)
    np.testing.assert_allclose(r['bottom_diffs'][0], grad, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize('fields, mode', [
    ('normalize: true', 'VALID'), ('normalize: false', 'BATCH_SIZE'),
    ('normalize: false normalization: FULL', 'FULL'),
    ('normalize: true normalization: NONE', 'NONE'), ('', 'VALID')])
def test_softmax_loss_normalize_mapping(fields, mode):
    """Deprecated normalize maps to VALID/BATCH_SIZE only when normalization is unset."""
    x = _scores((3, 4, 2, 2), seed=2)
    label = _labels((3, 2, 2), 4, ignore=-1, ignore_fraction=0.4)
    r = run_layer(LOSS.format(f'ignore_label: -1 {fields}'), [x, label])
    np.testing.assert_allclose(r['tops'][0], np_softmax_loss(x, label, ignore=-1,
                                                             mode=mode)[0], rtol=1e-5)


def test_softmax_loss_ignore_label_zeroes_gradient():
    """Ignored positions add no loss and get a zero diff in every class."""
    x = _scores((2, 3, 4))
    label = np.array([[0, 255, 2, 1], [255, 255, 1, 0]], np.float32)
    r = run_layer(LOSS.format('ignore_label: 255'), [x, label], top_diffs=[None],
                  propagate_down=[True, False])
    diff = r['bottom_diffs'][0]
    assert np.all(diff[0, :, 1] == 0) and np.all(diff[1, :, :2] == 0)
    np.testing.assert_allclose(r['tops'][0], np_softmax_loss(x, label, ignore=255)[0],
                               rtol=1e-5)


def test_softmax_loss_all_ignored_gives_zero():
    """With every label ignored the normalizer floor of 1 gives loss 0, not NaN."""
    x = _scores((2, 3, 4))
    label = np.full((2, 4), 7, np.float32)
    r = run_layer(LOSS.format('ignore_label: 7'), [x, label], top_diffs=[None],
                  propagate_down=[True, False])
    assert r['tops'][0] == 0 and np.all(r['bottom_diffs'][0] == 0)


def test_softmax_loss_ignore_label_inside_class_range():
    """An ignore_label that is a valid class index (0) is still ignored."""
    x = _scores((4, 3))
    label = np.array([0, 1, 2, 0], np.float32)
    r = run_layer(LOSS.format('ignore_label: 0'), [x, label])
    np.testing.assert_allclose(r['tops'][0], np_softmax_loss(x, label, ignore=0)[0],
                               rtol=1e-5)


def test_softmax_loss_probability_floor():
    """A probability that underflows is floored at FLT_MIN: loss -log(FLT_MIN)."""
    x = np.array([[0.0, -200.0]], np.float32)
    r = run_layer('type: "SoftmaxWithLoss"', [x, np.array([1], np.float32)])
    np.testing.assert_allclose(r['tops'][0], -np.log(FLT_MIN), rtol=1e-6)


def test_softmax_loss_axis_and_label_shapes():
    """Labels of shape (N, H, W) or (N, 1, H, W) work; softmax_param.axis moves classes."""
    x = _scores((2, 3, 4, 5))
    label = _labels((2, 3, 5), 4)
    text = 'type: "SoftmaxWithLoss" softmax_param { axis: 2 }'
    r = run_layer(text, [x, label], top_diffs=[None], propagate_down=[True, False])
    loss, grad = np_softmax_loss(x, label, axis=2)
    np.testing.assert_allclose(r['tops'][0], loss, rtol=1e-5)
    np.testing.assert_allclose(r['bottom_diffs'][0], grad, rtol=1e-4, atol=1e-7)


def test_softmax_loss_labels_truncate():
    """Float labels are cast to int by truncation (2.7 reads as class 2)."""
    x = _scores((2, 4))
    a = run_layer('type: "SoftmaxWithLoss"', [x, np.array([2.7, 0.9], np.float32)])
    b = run_layer('type: "SoftmaxWithLoss"', [x, np.array([2.0, 0.0], np.float32)])
    assert a['tops'][0] == b['tops'][0]


def test_softmax_loss_weight_scales_gradient():
    """loss_weight is the top diff: it scales the gradient, and the net loss."""
    x = _scores((2, 3, 2, 2))
    label = _labels((2, 1, 2, 2), 3)
    text = 'type: "SoftmaxWithLoss" loss_weight: 0.25'
    r = run_layer(text, [x, label], top_diffs=[None], propagate_down=[True, False])
    loss, grad = np_softmax_loss(x, label, weight=0.25)
    np.testing.assert_allclose(r['loss'], 0.25 * loss, rtol=1e-5)
    np.testing.assert_allclose(r['bottom_diffs'][0], grad, rtol=1e-4, atol=1e-8)


def test_catch_softmax_loss_second_top_with_two_weights():
    """BVLC Caffe 9b89154 aborts on a probability top even with a loss weight per top:
    the inner Softmax copies the LayerParameter, two loss weights for its one top."""
    x = _scores((2, 3, 4))
    label = _labels((2, 4), 3)
    text = 'type: "SoftmaxWithLoss" loss_weight: 1 loss_weight: 0'
    with pytest.raises(LayerSetupError, match='loss_weight must be unspecified'):
        run_layer(text, [x, label], ntop=2)


def test_softmax_loss_gradient():
    """SoftmaxWithLoss's score gradient agrees with finite differences, ignore included."""
    x = _scores((2, 4, 2, 3), seed=3)
    label = _labels((2, 1, 2, 3), 4, ignore=255, ignore_fraction=0.3)
    _numeric_score_gradient(LOSS.format('ignore_label: 255'), [x, label])


def test_softmax_loss_label_not_force_backward():
    """force_backward may not ask for the label diff of a loss layer."""
    layer = create_layer(layer_param('type: "SoftmaxWithLoss"'))
    assert layer.allow_force_backward(0) and not layer.allow_force_backward(1)


def test_catch_softmax_loss_backward_to_label():
    """Asking for the label's diff is an error, as Caffe's LOG(FATAL)."""
    with pytest.raises(LayerSetupError, match='cannot backpropagate to label'):
        run_layer('type: "SoftmaxWithLoss"', [_scores((2, 3)), _labels((2,), 3)],
                  top_diffs=[None], propagate_down=[True, True])


def test_catch_softmax_loss_label_count():
    """A label count other than outer * inner is an error naming both shapes."""
    with pytest.raises(LayerSetupError, match=r'needs 2 x 4 = 8 labels.*\(2, 5\)'):
        run_layer('type: "SoftmaxWithLoss"', [_scores((2, 3, 4)), _labels((2, 5), 3)])


def test_catch_softmax_loss_first_dimension():
    """Score and label must agree in their first dimension (LossLayer::Reshape)."""
    with pytest.raises(LayerSetupError, match='same first dimension'):
        run_layer('type: "SoftmaxWithLoss"', [_scores((2, 3, 4)), _labels((4, 2), 3)])


@pytest.mark.parametrize('value', [3.0, -1.0])
def test_catch_softmax_loss_label_out_of_range(value):
    """A label outside [0, C) that is not ignored is an error naming the value."""
    label = np.array([0, value], np.float32)
    with pytest.raises(LayerSetupError, match=f'label value {int(value)} is outside'):
        run_layer(LOSS.format('ignore_label: 255'), [_scores((2, 3)), label])


def test_catch_softmax_loss_two_tops_one_weight():
    """A second top needs a loss_weight for each top (Caffe's SetLossWeights)."""
    with pytest.raises(LayerSetupError, match='loss_weight must be unspecified'):
        run_layer('type: "SoftmaxWithLoss"', [_scores((2, 3)), _labels((2,), 3)], ntop=2)


def test_catch_softmax_loss_bottom_count():
    """SoftmaxWithLoss takes exactly two bottoms."""
    with pytest.raises(LayerSetupError, match='exactly 2 bottom'):
        run_layer('type: "SoftmaxWithLoss"', [_scores((2, 3))])


# -- EuclideanLoss -----------------------------------------------------------------------
def test_euclidean_forward_backward_match_numpy():
    """Loss = sum((a-b)^2)/N/2; diffs are +-(a-b) * loss_weight / N, shapes kept."""
    a = _scores((3, 4))
    b = _scores((3, 2, 2), seed=4)
    r = run_layer('type: "EuclideanLoss" loss_weight: 1.5', [a, b], top_diffs=[None])
    d = a.astype(np.float64) - b.reshape(3, 4)
    np.testing.assert_allclose(r['tops'][0], np.sum(d * d) / 3 / 2, rtol=1e-6)
    np.testing.assert_allclose(r['bottom_diffs'][0], 1.5 * d / 3, rtol=1e-5)
    np.testing.assert_allclose(r['bottom_diffs'][1], (-1.5 * d / 3).reshape(3, 2, 2),
                               rtol=1e-5)


def test_euclidean_gradient():
    """EuclideanLoss's gradients w.r.t. both bottoms agree with finite differences."""
    check_gradient('type: "EuclideanLoss"', [_scores((2, 3)), _scores((2, 3), seed=8)],
                   check_bottoms=[0, 1])


def test_euclidean_both_bottoms_force_backward():
    """Caffe's EuclideanLoss lets force_backward reach both inputs."""
    layer = create_layer(layer_param('type: "EuclideanLoss"'))
    assert layer.allow_force_backward(0) and layer.allow_force_backward(1)


def test_catch_euclidean_dimension():
    """Inputs with different counts per item are an error naming both shapes."""
    with pytest.raises(LayerSetupError, match=r'same dimension.*\(2, 3\).*\(2, 4\)'):
        run_layer('type: "EuclideanLoss"', [_scores((2, 3)), _scores((2, 4))])


def test_catch_euclidean_first_dimension():
    """Inputs with different first dimensions are an error."""
    with pytest.raises(LayerSetupError, match='same first dimension'):
        run_layer('type: "EuclideanLoss"', [_scores((2, 6)), _scores((3, 4))])


# -- Accuracy ----------------------------------------------------------------------------
@pytest.mark.parametrize('top_k', [1, 2, 4])
def test_accuracy_spatial_with_ignore_and_per_class(top_k):
    """Accuracy and per-class accuracy over (N, C, H, W) skip ignored labels."""
    x = _scores((2, 5, 3, 4))
    label = _labels((2, 1, 3, 4), 5, ignore=255, ignore_fraction=0.3)
    text = f'type: "Accuracy" accuracy_param {{ top_k: {top_k} ignore_label: 255 }}'
    r = run_layer(text, [x, label], ntop=2)
    accuracy, per_class = np_accuracy(x, label, top_k=top_k, ignore=255)
    np.testing.assert_allclose(r['tops'][0], accuracy, rtol=1e-6)
    np.testing.assert_allclose(r['tops'][1], per_class, rtol=1e-6)
    assert r['tops'][1].shape == (5,)


def test_accuracy_axis():
    """accuracy_param.axis picks the class axis."""
    x = _scores((3, 2, 6))
    label = _labels((3, 2), 6)
    r = run_layer('type: "Accuracy" accuracy_param { axis: -1 top_k: 2 }', [x, label])
    np.testing.assert_allclose(r['tops'][0], np_accuracy(x, label, axis=2, top_k=2)[0])


@pytest.mark.parametrize('top_k, expected', [(1, 0.0), (2, 0.0), (3, 1.0)])
def test_accuracy_ties_count_against(top_k, expected):
    """Scores equal to the true class's count as better: a 3-way tie needs top_k 3."""
    x = np.array([[1.0, 2.0, 2.0, 2.0]], np.float32)
    r = run_layer(f'type: "Accuracy" accuracy_param {{ top_k: {top_k} }}',
                  [x, np.array([2], np.float32)])
    assert r['tops'][0] == expected


def test_accuracy_all_ignored_and_unseen_classes_are_zero():
    """No counted label gives accuracy 0; a class never seen gets per-class 0."""
    x = _scores((2, 3))
    r = run_layer('type: "Accuracy" accuracy_param { ignore_label: 1 }',
                  [x, np.array([1, 1], np.float32)], ntop=2)
    assert r['tops'][0] == 0 and np.all(r['tops'][1] == 0)


def test_catch_accuracy_top_k_too_large():
    """top_k above the number of classes is an error."""
    with pytest.raises(LayerSetupError, match='top_k must be less than or equal'):
        run_layer('type: "Accuracy" accuracy_param { top_k: 4 }',
                  [_scores((2, 3)), _labels((2,), 3)])


def test_catch_accuracy_label_count():
    """A label count other than outer * inner is an error."""
    with pytest.raises(LayerSetupError, match='number of labels must match'):
        run_layer('type: "Accuracy"', [_scores((2, 3, 4)), _labels((2, 2), 3)])


def test_catch_accuracy_label_out_of_range():
    """A label outside [0, C) is an error naming the value."""
    with pytest.raises(LayerSetupError, match='label value 5 is outside'):
        run_layer('type: "Accuracy"', [_scores((2, 3)), np.array([0, 5], np.float32)])


def test_catch_accuracy_backward():
    """Accuracy has no backward: asking for any bottom diff is an error."""
    with pytest.raises(LayerSetupError, match='Accuracy has no backward'):
        run_layer('type: "Accuracy"', [_scores((2, 3)), _labels((2,), 3)],
                  top_diffs=[np.ones((), np.float32)], propagate_down=[True, False])
