"""SigmoidCrossEntropyLoss, InfogainLoss and MultinomialLogisticLoss against float64 NumPy
transcriptions of Caffe's loops (sigmoid_cross_entropy_loss_layer.cpp,
infogain_loss_layer.cpp, multinomial_logistic_loss_layer.cpp), finite differences and the
CHECKs."""
import numpy as np
import pytest

import caffe_torch as caffe
from caffe_torch import formats, io
from caffe_torch.errors import LayerSetupError
from layer_check import check_gradient, make_layer, run_layer

LOG_THRESHOLD = 1e-20
NORMALIZERS = ('VALID', 'FULL', 'BATCH_SIZE', 'NONE')


def _normalizer(mode, outer, inner, valid):
    return max(1.0, {'FULL': outer * inner, 'VALID': valid, 'BATCH_SIZE': outer,
                     'NONE': 1}[mode])


def _randn(shape, seed=0):
    return np.random.RandomState(seed).randn(*shape).astype(np.float32)


# -- NumPy transcriptions --------------------------------------------------------------------
def np_sigmoid_ce(x, t, ignore=None, mode='BATCH_SIZE', weight=1.0):
    """(loss, dx): Caffe's element loop with its overflow-free loss expression."""
    xf, tf = x.astype(np.float64).ravel(), t.astype(np.float64).ravel()
    loss, valid, grad = 0.0, 0, np.zeros_like(xf)
    for i in range(xf.size):
        if ignore is not None and int(tf[i]) == ignore:
            continue
        pos = float(xf[i] >= 0)
        loss -= xf[i] * (tf[i] - pos) - np.log(1 + np.exp(xf[i] - 2 * xf[i] * pos))
        grad[i] = 1 / (1 + np.exp(-xf[i])) - tf[i]
        valid += 1
    norm = _normalizer(mode, x.shape[0], x.size // x.shape[0], valid)
    return loss / norm, (grad * weight / norm).reshape(x.shape)


def np_infogain(x, label, H, axis=1, ignore=None, mode='VALID', weight=1.0):
    """(loss, dx, prob) as InfogainLossLayer's Forward_cpu / Backward_cpu loops."""
    axis %= x.ndim
    outer, C = int(np.prod(x.shape[:axis])), x.shape[axis]
    inner = int(np.prod(x.shape[axis + 1:]))
    x3 = x.astype(np.float64).reshape(outer, C, inner)
    e = np.exp(x3 - x3.max(axis=1, keepdims=True))
    prob = e / e.sum(axis=1, keepdims=True)
    H = H.astype(np.float64).reshape(C, C)
    lab = label.reshape(outer, inner)
    loss, count, grad = 0.0, 0, np.zeros_like(prob)
    for i in range(outer):
        for j in range(inner):
            v = int(lab[i, j])
            if ignore is not None and v == ignore:
                continue
            for k in range(C):
                loss -= H[v, k] * np.log(max(prob[i, k, j], LOG_THRESHOLD))
                grad[i, k, j] = prob[i, k, j] * H[v].sum() - H[v, k]
            count += 1
    norm = _normalizer(mode, outer, inner, count)
    return loss / norm, (grad * weight / norm).reshape(x.shape), prob.reshape(x.shape)


def np_multinomial(p, label, weight=1.0):
    num = p.shape[0]
    rows = p.astype(np.float64).reshape(num, -1)
    loss, grad = 0.0, np.zeros_like(rows)
    for i in range(num):
        v = int(label.ravel()[i])
        prob = max(rows[i, v], LOG_THRESHOLD)
        loss -= np.log(prob)
        grad[i, v] = -weight / num / prob
    return loss / num, grad.reshape(p.shape)


def _net(tmp_path, text):
    path = tmp_path / 'net.prototxt'
    path.write_text(text)
    return caffe.Net(str(path), caffe.TRAIN)


# -- SigmoidCrossEntropyLoss -----------------------------------------------------------------
def _sigmoid_case(shape=(2, 3, 4), seed=0, ignore_fraction=0.3):
    rng = np.random.RandomState(seed)
    x = (3 * rng.randn(*shape)).astype(np.float32)
    t = rng.uniform(size=shape).astype(np.float32)
    t[rng.uniform(size=shape) < ignore_fraction] = -1
    return x, t


@pytest.mark.parametrize('mode', NORMALIZERS)
def test_sigmoid_ce_normalization_modes_with_ignore(mode):
    x, t = _sigmoid_case()
    text = (f"type: 'SigmoidCrossEntropyLoss' loss_weight: 0.7 loss_param {{ "
            f"ignore_label: -1 normalization: {mode} }}")
    out = run_layer(text, [x, t], top_diffs=[np.float32(0.7)], propagate_down=[True, False])
    loss, grad = np_sigmoid_ce(x, t, ignore=-1, mode=mode, weight=0.7)
    np.testing.assert_allclose(out['tops'][0], loss, rtol=1e-5)
    np.testing.assert_allclose(out['bottom_diffs'][0], grad, rtol=1e-4, atol=1e-7)
    assert np.all(out['bottom_diffs'][0][t == -1] == 0)


@pytest.mark.parametrize('fields, mode', [('', 'BATCH_SIZE'), ('normalize: true', 'VALID'),
                                          ('normalize: false', 'BATCH_SIZE'),
                                          ('normalize: true normalization: FULL', 'FULL')])
def test_sigmoid_ce_default_is_batch_size_and_legacy_normalize(fields, mode):
    """With neither field set Caffe's sigmoid loss divides by N (not VALID as Softmax)."""
    x, t = _sigmoid_case(seed=3)
    text = f"type: 'SigmoidCrossEntropyLoss' loss_param {{ ignore_label: -1 {fields} }}"
    out = run_layer(text, [x, t])
    np.testing.assert_allclose(out['tops'][0], np_sigmoid_ce(x, t, -1, mode)[0], rtol=1e-5)


def test_sigmoid_ce_without_ignore_counts_every_target():
    """No ignore_label: -1 is an ordinary target value, VALID divides by the count."""
    x, t = _sigmoid_case(seed=4)
    out = run_layer("type: 'SigmoidCrossEntropyLoss' loss_param { normalization: VALID }",
                    [x, t], top_diffs=[np.float32(1)], propagate_down=[True, False])
    loss, grad = np_sigmoid_ce(x, t, None, 'VALID')
    np.testing.assert_allclose(out['tops'][0], loss, rtol=1e-5)
    np.testing.assert_allclose(out['bottom_diffs'][0], grad, rtol=1e-4, atol=1e-7)


def test_sigmoid_ce_large_scores_are_finite():
    x = np.array([[-200, -30, 0, 30, 200]], np.float32)
    t = np.array([[0, 1, 0.5, 0, 1]], np.float32)
    out = run_layer("type: 'SigmoidCrossEntropyLoss'", [x, t])
    expected = 30 + np.log(1 + np.exp(-30.0)) + np.log(2) + 30 + np.log(1 + np.exp(-30.0))
    np.testing.assert_allclose(out['tops'][0], expected, rtol=1e-5)


def test_sigmoid_ce_float32_as_caffe_for_confident_scores():
    """Caffe sums log(1 + exp(z)) in float (no log1p), so a term below float's epsilon
    is lost (Caffe recorded 1.1920928e-07 for x = -15.594794, t = 0; log1p gives
    1.69e-07), and its sigmoid is 0.5 tanh(0.5 x) + 0.5 in double, rounded to float."""
    x = np.array([[-15.594794, 12.982386, -18.5, 20.1]], np.float32)
    t = np.array([[0, 1, 0, 1]], np.float32)
    loss = np.float32(0)
    for xi, ti in zip(x.ravel(), t.ravel()):
        pos = np.float32(xi >= 0)
        z = xi - np.float32(2) * xi * pos
        loss = np.float32(loss - (xi * (ti - pos) - np.log(np.float32(1) + np.exp(z))))
    prob = (0.5 * np.tanh(0.5 * x.astype(np.float64)) + 0.5).astype(np.float32)
    out = run_layer("type: 'SigmoidCrossEntropyLoss'", [x, t], top_diffs=[np.float32(1)],
                    propagate_down=[True, False])
    assert out['tops'][0] == pytest.approx(float(loss), rel=1e-6)
    np.testing.assert_allclose(out['bottom_diffs'][0], prob - t, rtol=1e-6, atol=0)
    one = run_layer("type: 'SigmoidCrossEntropyLoss'", [x[:, :1], t[:, :1]])
    assert one['tops'][0] == np.float32(1.1920928e-07)


def test_sigmoid_ce_all_ignored_gives_zero():
    x = _randn((2, 3))
    t = np.full((2, 3), 5, np.float32)
    text = "type: 'SigmoidCrossEntropyLoss' loss_param { ignore_label: 5 normalization: VALID }"
    out = run_layer(text, [x, t], top_diffs=[np.float32(1)], propagate_down=[True, False])
    assert out['tops'][0] == 0 and not out['bottom_diffs'][0].any()


def test_sigmoid_ce_ignore_compares_truncated_targets():
    """static_cast<int>(0.9) == 0: a soft target 0.9 is ignored under ignore_label 0."""
    x = _randn((1, 3))
    t = np.array([[0.9, -0.5, 1.0]], np.float32)
    text = "type: 'SigmoidCrossEntropyLoss' loss_param { ignore_label: 0 normalization: NONE }"
    out = run_layer(text, [x, t])
    np.testing.assert_allclose(out['tops'][0], np_sigmoid_ce(x, t, 0, 'NONE')[0], rtol=1e-5)


def test_sigmoid_ce_gradient():
    x, t = _sigmoid_case(shape=(2, 5), seed=7)
    check_gradient("type: 'SigmoidCrossEntropyLoss' loss_param { ignore_label: -1 }",
                   [x, t], check_bottoms=[0])


def test_catch_sigmoid_ce_count_mismatch():
    with pytest.raises(LayerSetupError, match='same count'):
        make_layer("type: 'SigmoidCrossEntropyLoss'", [_randn((2, 3)), _randn((2, 4))])


def test_catch_sigmoid_ce_backward_to_targets():
    x, t = _sigmoid_case()
    with pytest.raises(LayerSetupError, match='cannot backpropagate to label'):
        run_layer("type: 'SigmoidCrossEntropyLoss'", [x, t], top_diffs=[np.float32(1)])


# -- InfogainLoss ----------------------------------------------------------------------------
def _infogain_case(shape=(2, 4, 3), axis=1, seed=0, ignore=None):
    rng = np.random.RandomState(seed)
    x = rng.randn(*shape).astype(np.float32)
    C = shape[axis]
    label_shape = shape[:axis] + shape[axis + 1:]
    label = rng.randint(0, C, size=label_shape).astype(np.float32)
    if ignore is not None:
        label.ravel()[::3] = ignore
    H = rng.uniform(0, 2, size=(1, 1, C, C)).astype(np.float32)
    return x, label, H


@pytest.mark.parametrize('mode', NORMALIZERS)
def test_infogain_h_bottom_with_ignore(mode):
    x, label, H = _infogain_case(ignore=7)
    text = (f"type: 'InfogainLoss' loss_param {{ ignore_label: 7 normalization: {mode} }} "
            f"loss_weight: 1.5 loss_weight: 0")
    out = run_layer(text, [x, label, H], ntop=2, top_diffs=[np.float32(1.5), None],
                    propagate_down=[True, False, False])
    loss, grad, prob = np_infogain(x, label, H, ignore=7, mode=mode, weight=1.5)
    np.testing.assert_allclose(out['tops'][0], loss, rtol=1e-5)
    np.testing.assert_allclose(out['tops'][1], prob, rtol=1e-5)
    np.testing.assert_allclose(out['bottom_diffs'][0], grad, rtol=1e-4, atol=1e-7)


def test_infogain_source_and_axis(tmp_path):
    x, label, H = _infogain_case(shape=(3, 2, 4), axis=2, seed=2)
    path = tmp_path / 'H.binaryproto'
    formats.write_binaryproto(io.array_to_blobproto(H), str(path))
    text = (f"type: 'InfogainLoss' loss_param {{ normalization: BATCH_SIZE }} "
            f"infogain_loss_param {{ source: '{path}' axis: -1 }}")
    out = run_layer(text, [x, label], top_diffs=[np.float32(1)], propagate_down=[True, False])
    loss, grad, _ = np_infogain(x, label, H, axis=2, mode='BATCH_SIZE')
    np.testing.assert_allclose(out['tops'][0], loss, rtol=1e-5)
    np.testing.assert_allclose(out['bottom_diffs'][0], grad, rtol=1e-4, atol=1e-7)


def test_infogain_identity_is_softmax_loss():
    """H = I makes InfogainLoss Caffe's SoftmaxWithLoss (up to the log floor)."""
    x, label, _ = _infogain_case(shape=(2, 5, 2, 2), seed=5)
    eye = np.eye(5, dtype=np.float32)
    ours = run_layer("type: 'InfogainLoss'", [x, label, eye], top_diffs=[np.float32(1)],
                     propagate_down=[True, False, False])
    softmax = run_layer("type: 'SoftmaxWithLoss'", [x, label], top_diffs=[np.float32(1)],
                        propagate_down=[True, False])
    np.testing.assert_allclose(ours['tops'][0], softmax['tops'][0], rtol=1e-6)
    np.testing.assert_allclose(ours['bottom_diffs'][0], softmax['bottom_diffs'][0],
                               rtol=1e-5, atol=1e-7)


def test_infogain_gradient():
    x, label, H = _infogain_case(shape=(2, 3, 2), seed=9)
    check_gradient("type: 'InfogainLoss'", [x, label, H], check_bottoms=[0])


def test_infogain_h_is_forced_and_refused(tmp_path):
    """Caffe's InfogainLoss lets force_backward reach H (only bottom 1 is exempt), then
    aborts in Backward; without force_backward the scores from a Parameter train."""
    body = '''
        layer { name: 'in' type: 'Input' top: 'label' top: 'H'
                input_param { shape { dim: 2 } shape { dim: 3 dim: 3 } } }
        layer { name: 'score' type: 'Parameter' top: 'score'
                parameter_param { shape { dim: 2 dim: 3 } } }
        layer { name: 'loss' type: 'InfogainLoss' bottom: 'score' bottom: 'label'
                bottom: 'H' top: 'loss' }'''
    layer, *_ = make_layer("type: 'InfogainLoss'", _infogain_case((2, 3))[:3])
    assert layer.allow_force_backward(0) and layer.allow_force_backward(2)
    assert not layer.allow_force_backward(1)
    net = _net(tmp_path, body)
    net.blobs['label'].data[...] = [0, 2]
    net.blobs['H'].data[...] = np.eye(3)
    net.forward()
    net.backward()
    prob = np.full(3, 1 / 3)
    expected = np.stack([prob - [1, 0, 0], prob - [0, 0, 1]]) / 2
    np.testing.assert_allclose(net.params['score'][0].diff, expected, rtol=1e-5)
    forced = _net(tmp_path, 'force_backward: true' + body)
    forced.blobs['label'].data[...] = [0, 2]
    forced.forward()
    with pytest.raises(LayerSetupError, match='cannot backpropagate to infogain inputs'):
        forced.backward()


def test_catch_infogain_missing_source():
    x, label, _ = _infogain_case()
    with pytest.raises(LayerSetupError, match='Infogain matrix source must be specified'):
        make_layer("type: 'InfogainLoss'", [x, label])


def test_catch_infogain_unreadable_source(tmp_path):
    x, label, _ = _infogain_case()
    with pytest.raises(LayerSetupError, match='no such file'):
        make_layer(f"type: 'InfogainLoss' infogain_loss_param {{ source: "
                   f"'{tmp_path / 'missing.binaryproto'}' }}", [x, label])


def test_catch_infogain_deprecated_normalize():
    with pytest.raises(LayerSetupError, match='normalize is deprecated'):
        make_layer("type: 'InfogainLoss' loss_param { normalize: true }",
                   list(_infogain_case()))


def test_catch_infogain_h_size():
    x, label, _ = _infogain_case()
    with pytest.raises(LayerSetupError, match='H must be 4x4'):
        make_layer("type: 'InfogainLoss'", [x, label, np.eye(3, dtype=np.float32)])


def test_catch_infogain_label_count():
    x, _, H = _infogain_case()
    with pytest.raises(LayerSetupError, match='number of labels must match'):
        make_layer("type: 'InfogainLoss'", [x, np.zeros((2, 2), np.float32), H])


def test_catch_infogain_label_out_of_range():
    x, label, H = _infogain_case()
    label[0, 0] = 4
    with pytest.raises(LayerSetupError, match=r'label value 4 is outside \[0, 4\)'):
        run_layer("type: 'InfogainLoss'", [x, label, H])


def test_catch_infogain_backward_to_label():
    with pytest.raises(LayerSetupError, match='cannot backpropagate to label'):
        run_layer("type: 'InfogainLoss'", list(_infogain_case()), top_diffs=[np.float32(1)],
                  propagate_down=[True, True, False])


# -- MultinomialLogisticLoss -----------------------------------------------------------------
def _probabilities(shape=(3, 4), seed=0):
    rng = np.random.RandomState(seed)
    p = rng.uniform(0.1, 1, size=shape).astype(np.float32)
    label = rng.randint(0, int(np.prod(shape[1:])), size=(shape[0],)).astype(np.float32)
    return p, label


@pytest.mark.parametrize('label_shape', [(3,), (3, 1, 1, 1)])
def test_multinomial_forward_backward(label_shape):
    p, label = _probabilities(shape=(3, 2, 2))
    p[1].ravel()[int(label[1])] = 0  # clipped at kLOG_THRESHOLD
    out = run_layer("type: 'MultinomialLogisticLoss' loss_weight: 2",
                    [p, label.reshape(label_shape)], top_diffs=[np.float32(2)],
                    propagate_down=[True, False])
    loss, grad = np_multinomial(p, label, weight=2)
    np.testing.assert_allclose(out['tops'][0], loss, rtol=1e-5)
    np.testing.assert_allclose(out['bottom_diffs'][0], grad, rtol=1e-5)


def test_multinomial_gradient():
    check_gradient("type: 'MultinomialLogisticLoss'", list(_probabilities(seed=3)),
                   check_bottoms=[0], step=1e-3)


def test_catch_multinomial_label_shape():
    p, _ = _probabilities()
    with pytest.raises(LayerSetupError, match='one value per item'):
        make_layer("type: 'MultinomialLogisticLoss'", [p, np.zeros((3, 2), np.float32)])


def test_catch_multinomial_label_out_of_range():
    p, label = _probabilities()
    label[2] = -1
    with pytest.raises(LayerSetupError, match='label value -1 is outside'):
        run_layer("type: 'MultinomialLogisticLoss'", [p, label])


def test_catch_multinomial_backward_to_label():
    with pytest.raises(LayerSetupError, match='cannot backpropagate to label'):
        run_layer("type: 'MultinomialLogisticLoss'", list(_probabilities()),
                  top_diffs=[np.float32(1)])
