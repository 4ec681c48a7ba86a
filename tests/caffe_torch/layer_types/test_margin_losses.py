"""HingeLoss and ContrastiveLoss against float64 NumPy transcriptions of Caffe's loops
(hinge_loss_layer.cpp, contrastive_loss_layer.cpp), finite differences and the CHECKs."""
import numpy as np
import pytest

from caffe_torch.errors import LayerSetupError
from layer_check import check_gradient, make_layer, run_layer


# -- NumPy transcriptions --------------------------------------------------------------------
def np_hinge(x, label, norm='L1', weight=1.0):
    """(loss, dx): Caffe's forward keeps max(0, 1 +- x) in the diff, backward re-signs it."""
    num = x.shape[0]
    t = x.astype(np.float64).reshape(num, -1).copy()
    for i in range(num):
        t[i, int(label.ravel()[i])] *= -1
    t = np.maximum(0, 1 + t)
    loss = (np.abs(t).sum() if norm == 'L1' else (t * t).sum()) / num
    d = t.copy()
    for i in range(num):
        d[i, int(label.ravel()[i])] *= -1
    grad = np.sign(d) * weight / num if norm == 'L1' else d * 2 * weight / num
    return loss, grad.reshape(x.shape)


def np_contrastive(a, b, y, margin=1.0, legacy=False, weight=1.0):
    """(loss, da, db) with Caffe's per-pair branches and its 1e-4 guard."""
    num = a.shape[0]
    a2, b2 = a.astype(np.float64).reshape(num, -1), b.astype(np.float64).reshape(num, -1)
    diff = a2 - b2
    loss, grads = 0.0, []
    dist_sq = (diff ** 2).sum(axis=1)
    for i in range(num):
        if int(y.ravel()[i]):
            loss += dist_sq[i]
        elif legacy:
            loss += max(margin - dist_sq[i], 0)
        else:
            loss += max(margin - np.sqrt(dist_sq[i]), 0) ** 2
    for sign in (1, -1):
        alpha = sign * weight / num
        g = np.zeros_like(diff)
        for j in range(num):
            if int(y.ravel()[j]):
                g[j] = alpha * diff[j]
                continue
            if legacy:
                mdist, beta = margin - dist_sq[j], -alpha
            else:
                dist = np.sqrt(dist_sq[j])
                mdist = margin - dist
                beta = -alpha * mdist / (dist + 1e-4)
            if mdist > 0:
                g[j] = beta * diff[j]
        grads.append(g.reshape(a.shape))
    return loss / num / 2, grads[0], grads[1]


# -- HingeLoss -------------------------------------------------------------------------------
def _hinge_case(shape=(3, 4), seed=0):
    """Scores kept 0.1 away from the kinks at +-1, so finite differences are smooth."""
    rng = np.random.RandomState(seed)
    x = rng.uniform(-2, 2, size=shape)
    x = np.where(np.abs(np.abs(x) - 1) < 0.1, x + 0.3, x).astype(np.float32)
    label = rng.randint(0, int(np.prod(shape[1:])), size=shape[0]).astype(np.float32)
    return x, label


@pytest.mark.parametrize('norm', ['L1', 'L2'])
@pytest.mark.parametrize('shape, label_shape', [((3, 4), (3,)), ((2, 3, 2, 2), (2, 1, 1, 1))])
def test_hinge_forward_backward(norm, shape, label_shape):
    x, label = _hinge_case(shape)
    out = run_layer(f"type: 'HingeLoss' loss_weight: 0.5 hinge_loss_param {{ norm: {norm} }}",
                    [x, label.reshape(label_shape)], top_diffs=[np.float32(0.5)],
                    propagate_down=[True, False])
    loss, grad = np_hinge(x, label, norm, weight=0.5)
    np.testing.assert_allclose(out['tops'][0], loss, rtol=1e-5)
    np.testing.assert_allclose(out['bottom_diffs'][0], grad, rtol=1e-5, atol=1e-7)


def test_hinge_hand_values():
    """Label 1 of [0.5, 2, -3]: max(0, 1.5) + max(0, 1 - 2) + max(0, 1 - 3) = 1.5."""
    x = np.array([[0.5, 2, -3]], np.float32)
    out = run_layer("type: 'HingeLoss'", [x, np.array([1], np.float32)],
                    top_diffs=[np.float32(1)], propagate_down=[True, False])
    assert out['tops'][0] == pytest.approx(1.5)
    np.testing.assert_array_equal(out['bottom_diffs'][0], [[1, 0, 0]])
    l2 = run_layer("type: 'HingeLoss' hinge_loss_param { norm: L2 }",
                   [x, np.array([2], np.float32)])
    assert l2['tops'][0] == pytest.approx(1.5 ** 2 + 3 ** 2 + 4 ** 2)


@pytest.mark.parametrize('down', [True, False])
def test_hinge_forward_leaves_the_margins_in_the_score_diff(down):
    """hinge_loss_layer.cpp computes t = max(0, 1 +- x) in bottom[0]'s diff in Forward_cpu;
    with propagate_down false Backward_cpu leaves it there (in a net, a Split above adds
    it to the other branches' gradient), else it re-signs and scales it."""
    x, label = _hinge_case((3, 4), seed=5)
    layer, bottom, top = make_layer("type: 'HingeLoss'", [x, label])
    layer.run_forward(bottom, top)
    t = np.maximum(0, 1 + np.where(np.arange(4) == label[:, None], -x, x))
    np.testing.assert_allclose(bottom[0].diff, t, rtol=1e-6)
    top[0].diff[...] = 1
    layer.run_backward(top, [down, False], bottom)
    expected = np_hinge(x, label)[1] if down else t
    np.testing.assert_allclose(bottom[0].diff, expected, rtol=1e-6)


@pytest.mark.parametrize('norm', ['L1', 'L2'])
def test_hinge_gradient(norm):
    check_gradient(f"type: 'HingeLoss' hinge_loss_param {{ norm: {norm} }}",
                   list(_hinge_case(seed=4)), check_bottoms=[0], step=1e-3)


def test_catch_hinge_label_count():
    x, _ = _hinge_case()
    with pytest.raises(LayerSetupError, match='one value per item'):
        make_layer("type: 'HingeLoss'", [x, np.zeros((3, 2), np.float32)])


def test_catch_hinge_label_out_of_range():
    x, label = _hinge_case()
    label[1] = 4
    with pytest.raises(LayerSetupError, match=r'label value 4 is outside \[0, 4\)'):
        run_layer("type: 'HingeLoss'", [x, label])


def test_catch_hinge_backward_to_label():
    with pytest.raises(LayerSetupError, match='cannot backpropagate to label'):
        run_layer("type: 'HingeLoss'", list(_hinge_case()), top_diffs=[np.float32(1)])


# -- ContrastiveLoss -------------------------------------------------------------------------
def _pairs(num=6, channels=3, seed=0, four_d=True, margin=1.0):
    """Pairs with distances kept away from the margin (the loss's kink)."""
    rng = np.random.RandomState(seed)
    a = rng.uniform(-0.6, 0.6, size=(num, channels))
    b = rng.uniform(-0.6, 0.6, size=(num, channels))
    for i in range(num):
        while min(abs(np.linalg.norm(a[i] - b[i]) - margin),
                  abs(np.sum((a[i] - b[i]) ** 2) - margin)) < 0.05:
            b[i] = rng.uniform(-0.6, 0.6, size=channels)
    y = (np.arange(num) % 2).astype(np.float32)
    shape = (num, channels, 1, 1) if four_d else (num, channels)
    return (a.reshape(shape).astype(np.float32), b.reshape(shape).astype(np.float32),
            y.reshape((num, 1, 1, 1) if four_d else (num,)))


@pytest.mark.parametrize('margin', [1.0, 0.5])
@pytest.mark.parametrize('legacy', [False, True])
@pytest.mark.parametrize('four_d', [True, False])
def test_contrastive_forward_backward(margin, legacy, four_d):
    a, b, y = _pairs(four_d=four_d, margin=margin)
    text = (f"type: 'ContrastiveLoss' loss_weight: 3 contrastive_loss_param {{ "
            f"margin: {margin} legacy_version: {str(legacy).lower()} }}")
    out = run_layer(text, [a, b, y], top_diffs=[np.float32(3)],
                    propagate_down=[True, True, False])
    loss, da, db = np_contrastive(a, b, y, margin, legacy, weight=3)
    np.testing.assert_allclose(out['tops'][0], loss, rtol=1e-5)
    np.testing.assert_allclose(out['bottom_diffs'][0], da, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(out['bottom_diffs'][1], db, rtol=1e-4, atol=1e-7)


def test_contrastive_similarity_truncates():
    """static_cast<int>(0.7) == 0: y = 0.7 is a dissimilar pair, y = -1 a similar one."""
    a = np.array([[0.3, 0], [0.3, 0]], np.float32)
    b = np.zeros((2, 2), np.float32)
    out = run_layer("type: 'ContrastiveLoss'", [a, b, np.array([0.7, -1], np.float32)])
    assert out['tops'][0] == pytest.approx(((1 - 0.3) ** 2 + 0.09) / 4)


@pytest.mark.parametrize('legacy', [False, True])
def test_contrastive_gradient(legacy):
    a, b, y = _pairs(num=4, seed=2)
    check_gradient(f"type: 'ContrastiveLoss' contrastive_loss_param {{ legacy_version: "
                   f"{str(legacy).lower()} }}", [a, b, y], check_bottoms=[0, 1],
                   step=1e-3, threshold=2e-3)


def test_contrastive_force_backward_reaches_both_features_only():
    layer, *_ = make_layer("type: 'ContrastiveLoss'", list(_pairs()))
    assert [layer.allow_force_backward(i) for i in range(3)] == [True, True, False]


def test_catch_contrastive_channels():
    a, b, y = _pairs()
    with pytest.raises(LayerSetupError, match='same C'):
        make_layer("type: 'ContrastiveLoss'", [a, b[:, :2], y])


def test_catch_contrastive_spatial_features():
    a, b, y = _pairs()
    spatial = np.zeros((6, 3, 2, 1), np.float32)
    with pytest.raises(LayerSetupError, match=r'\(N, C\) or \(N, C, 1, 1\)'):
        make_layer("type: 'ContrastiveLoss'", [a, spatial, y])


def test_catch_contrastive_label_shape():
    a, b, _ = _pairs()
    with pytest.raises(LayerSetupError, match='one value per pair'):
        make_layer("type: 'ContrastiveLoss'", [a, b, np.zeros((6, 2), np.float32)])


def test_catch_contrastive_first_dimension():
    a, b, y = _pairs()
    with pytest.raises(LayerSetupError, match='same first dimension'):
        make_layer("type: 'ContrastiveLoss'", [a, b[:5], y])
