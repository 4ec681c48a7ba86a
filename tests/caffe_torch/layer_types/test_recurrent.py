"""LSTM, RNN and LSTMUnit against float64 NumPy transcriptions of Caffe's recurrences, finite
differences, the state carried between forwards, expose_hidden, and Caffe's CHECKs."""
import numpy as np
import pytest

from caffe_torch.errors import LayerSetupError
from layer_check import check_gradient, make_layer, run_layer

LSTM = 'type: "LSTM" recurrent_param { num_output: %d %s }'
RNN = 'type: "RNN" recurrent_param { num_output: %d %s }'
UNIT = 'type: "LSTMUnit"'
CONT = np.array([[0, 0], [1, 0], [1, 1]], np.float32)  # T = 3 timesteps, N = 2 streams


def _rand(seed, *shape):
    return np.random.RandomState(seed).uniform(-1, 1, shape).astype(np.float32)


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _lstm_params(H, D, Ds=0, seed=10):
    shapes = [(4 * H, D), (4 * H,)] + ([(4 * H, Ds)] if Ds else []) + [(4 * H, H)]
    return [_rand(seed + i, *s) for i, s in enumerate(shapes)]


def _rnn_params(H, D, Ds=0, seed=20):
    shapes = [(H, D), (H,)] + ([(H, Ds)] if Ds else []) + [(H, H), (H, H), (H,)]
    return [_rand(seed + i, *s) for i, s in enumerate(shapes)]


def _unit_ref(c_prev, gates, cont):
    """Caffe's LSTMUnit forward in float64: f is scaled by cont."""
    i, f, o, g = np.split(np.asarray(gates, np.float64), 4, axis=-1)
    f = cont[:, None] * _sigmoid(f)
    c = f * c_prev + _sigmoid(i) * np.tanh(g)
    return c, _sigmoid(o) * np.tanh(c)


def lstm_ref(x, cont, params, x_static=None, h0=None, c0=None):
    """(h_1..h_T, h_T, c_T): Caffe's unrolled LSTM in float64."""
    p = [np.asarray(a, np.float64) for a in params]
    T, N = cont.shape
    H = p[-1].shape[1]
    xs = x.reshape(T, N, -1).astype(np.float64)
    h = np.zeros((N, H)) if h0 is None else h0.reshape(N, H).astype(np.float64)
    c = np.zeros((N, H)) if c0 is None else c0.reshape(N, H).astype(np.float64)
    out = []
    for t in range(T):
        gates = (cont[t][:, None] * h) @ p[-1].T + xs[t] @ p[0].T + p[1]
        if x_static is not None:
            gates = gates + x_static.reshape(N, -1) @ p[2].T
        c, h = _unit_ref(c, gates, cont[t].astype(np.float64))
        out.append(h)
    return np.stack(out), h, c


def rnn_ref(x, cont, params, x_static=None, h0=None):
    """(o_1..o_T, h_T): Caffe's unrolled RNN in float64."""
    p = [np.asarray(a, np.float64) for a in params]
    w_hh, w_ho, b_o = p[-3:]
    T, N = cont.shape
    xs = x.reshape(T, N, -1).astype(np.float64)
    h = np.zeros((N, w_hh.shape[0])) if h0 is None else h0.reshape(N, -1).astype(np.float64)
    out = []
    for t in range(T):
        pre = (cont[t][:, None] * h) @ w_hh.T + xs[t] @ p[0].T + p[1]
        if x_static is not None:
            pre = pre + x_static.reshape(N, -1) @ p[2].T
        h = np.tanh(pre)
        out.append(np.tanh(h @ w_ho.T + b_o))
    return np.stack(out), h


def _close(ours, ref):
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-6)


# -- forward against NumPy ---------------------------------------------------------------
@pytest.mark.parametrize('x_shape, static', [((3, 2, 5), False), ((3, 2, 2, 3), False),
                                             ((3, 2, 4), True)])
def test_lstm_forward_matches_numpy(x_shape, static):
    """h_t of the unrolled LSTM, x flattened from axis 2 and x_static from axis 1."""
    x, xs = _rand(1, *x_shape), _rand(2, 2, 3, 2)
    D = int(np.prod(x_shape[2:]))
    params = _lstm_params(3, D, 6 if static else 0)
    bottoms = [x, CONT] + ([xs] if static else [])
    out = run_layer(LSTM % (3, ''), bottoms, params)['tops'][0]
    assert out.shape == (3, 2, 3)
    _close(out, lstm_ref(x, CONT, params, xs if static else None)[0])


@pytest.mark.parametrize('static', [False, True])
def test_rnn_forward_matches_numpy(static):
    """o_t = tanh(W_ho h_t + b_o), h_t = tanh(W_hh cont_t h_{t-1} + W_xh x_t + b_h ...)."""
    x, xs = _rand(1, 3, 2, 5), _rand(2, 2, 4)
    params = _rnn_params(4, 5, 4 if static else 0)
    out = run_layer(RNN % (4, ''), [x, CONT] + ([xs] if static else []), params)['tops'][0]
    _close(out, rnn_ref(x, CONT, params, xs if static else None)[0])


def test_param_blobs_shapes_order_and_fillers():
    """LSTM: W_xc, b_c, W_xc_static, W_hc; RNN: W_xh, b_h, W_xh_static, W_hh, W_ho, b_o;
    weights from weight_filler, biases from bias_filler, zeros by default."""
    fill = ('weight_filler { type: "constant" value: 0.5 } '
            'bias_filler { type: "constant" value: -2 }')
    bottoms = [_rand(1, 3, 2, 5), CONT, _rand(2, 2, 6)]
    lstm, _, _ = make_layer(LSTM % (3, fill), bottoms)
    assert [b.shape for b in lstm.blobs] == [(12, 5), (12,), (12, 6), (12, 3)]
    assert [float(b.data.flat[0]) for b in lstm.blobs] == [0.5, -2, 0.5, 0.5]
    rnn, _, _ = make_layer(RNN % (3, fill), bottoms)
    assert [b.shape for b in rnn.blobs] == [(3, 5), (3,), (3, 6), (3, 3), (3, 3), (3,)]
    assert [float(b.data.flat[0]) for b in rnn.blobs] == [0.5, -2, 0.5, 0.5, 0.5, -2]
    plain, _, _ = make_layer(RNN % (3, ''), bottoms[:2])
    assert len(plain.blobs) == 5 and all(np.all(b.data == 0) for b in plain.blobs)


# -- state across forwards, reset, expose_hidden ----------------------------------------
def test_lstm_state_carries_over_to_next_forward():
    """The second forward starts from the first's h_T, c_T where cont[0] is 1; stream 1,
    with cont[0] = 0, restarts and repeats the first forward's output."""
    x, params = _rand(1, 3, 2, 5), _lstm_params(3, 5)
    cont = np.array([[0, 0], [1, 1], [1, 0]], np.float32)
    layer, bottom, top = make_layer(LSTM % (3, ''), [x, cont], params)
    layer.run_forward(bottom, top)
    first, h, c = lstm_ref(x, cont, params)
    _close(top[0].data, first)
    bottom[1].data[0] = [1, 0]
    layer.run_forward(bottom, top)
    second = lstm_ref(x, bottom[1].data, params, h0=h, c0=c)[0]
    _close(top[0].data, second)
    _close(top[0].data[:, 1], first[:, 1])
    assert not np.allclose(top[0].data[:, 0], first[:, 0])
    layer.reset()
    layer.run_forward(bottom, top)
    _close(top[0].data, lstm_ref(x, bottom[1].data, params)[0])


def test_rnn_state_carries_over_to_next_forward():
    x, params = _rand(3, 3, 2, 4), _rnn_params(2, 4)
    cont = np.ones((3, 2), np.float32)
    layer, bottom, top = make_layer(RNN % (2, ''), [x, cont], params)
    layer.run_forward(bottom, top)
    first, h = rnn_ref(x, cont, params)
    _close(top[0].data, first)
    layer.run_forward(bottom, top)
    _close(top[0].data, rnn_ref(x, cont, params, h0=h)[0])


def test_lstm_expose_hidden_reads_and_writes_states_without_carrying():
    """Bottoms h_0, c_0 are the initial state, tops h_T, c_T the final one; a repeat
    forward gives the same result; the final tops' diffs are ignored in backward and the
    state bottoms' diffs are left untouched, as in Caffe."""
    x, params = _rand(1, 3, 2, 5), _lstm_params(3, 5)
    cont = np.ones((3, 2), np.float32)
    h0, c0 = _rand(2, 1, 2, 3), _rand(3, 1, 2, 3)
    layer, bottom, top = make_layer(LSTM % (3, 'expose_hidden: true'), [x, cont, h0, c0],
                                    params, ntop=3)
    out, h, c = lstm_ref(x, cont, params, h0=h0, c0=c0)
    for _ in range(2):
        layer.run_forward(bottom, top)
        _close(top[0].data, out)
        _close(top[1].data, h[None])
        _close(top[2].data, c[None])
    diffs = []
    for final_diff in (0.0, 5.0):
        top[0].diff[...] = _rand(4, 3, 2, 3)
        top[1].diff[...] = top[2].diff[...] = final_diff
        bottom[2].diff[...] = bottom[3].diff[...] = 7.0
        for blob in layer.blobs:
            blob.diff[...] = 0
        layer.run_backward(top, [True, False, True, True], bottom)
        diffs.append([bottom[0].diff.copy()] + [b.diff.copy() for b in layer.blobs])
        assert np.all(bottom[2].diff == 7.0) and np.all(bottom[3].diff == 7.0)
    for a, b in zip(*diffs):
        np.testing.assert_array_equal(a, b)


def test_rnn_expose_hidden_continues_a_sequence():
    """Feeding h_T back as h_0 continues the sequence like one forward over 2T steps."""
    params = _rnn_params(2, 3)
    x, cont = _rand(5, 6, 2, 3), np.ones((6, 2), np.float32)
    cont[0] = 0
    whole = rnn_ref(x, cont, params)[0]
    text = RNN % (2, 'expose_hidden: true')
    h0 = np.zeros((1, 2, 2), np.float32)
    first = run_layer(text, [x[:3], cont[:3], h0], params, ntop=2)['tops']
    second = run_layer(text, [x[3:], cont[3:], first[1]], params, ntop=2)['tops']
    _close(np.concatenate([first[0], second[0]]), whole)


# -- gradients ---------------------------------------------------------------------------
@pytest.mark.parametrize('static', [False, True])
def test_lstm_gradient(static):
    """x, x_static and every parameter against finite differences (cont[0] = 0, so the
    state carried between the checker's forwards does not enter)."""
    params = _lstm_params(2, 3, 2 if static else 0)
    bottoms = [_rand(1, 3, 2, 3), CONT] + ([_rand(2, 2, 2)] if static else [])
    check_gradient(LSTM % (2, ''), bottoms, params, check_bottoms=[0, 2])


@pytest.mark.parametrize('static', [False, True])
def test_rnn_gradient(static):
    params = _rnn_params(2, 3, 2 if static else 0)
    bottoms = [_rand(1, 3, 2, 3), CONT] + ([_rand(2, 2, 2)] if static else [])
    check_gradient(RNN % (2, ''), bottoms, params, check_bottoms=[0, 2])


def test_lstm_param_diffs_accumulate_bottom_diff_overwritten():
    params = _lstm_params(2, 3)
    layer, bottom, top = make_layer(LSTM % (2, ''), [_rand(1, 3, 2, 3), CONT], params)
    layer.run_forward(bottom, top)
    top[0].diff[...] = _rand(4, 3, 2, 2)
    layer.run_backward(top, [True, False], bottom)
    once = [b.diff.copy() for b in [bottom[0]] + list(layer.blobs)]
    layer.run_backward(top, [True, False], bottom)
    np.testing.assert_allclose(bottom[0].diff, once[0], rtol=1e-6)
    for blob, diff in zip(layer.blobs, once[1:]):
        np.testing.assert_allclose(blob.diff, 2 * diff, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize('text', [LSTM % (2, ''), RNN % (2, '')])
def test_no_backward_to_cont(text):
    layer, bottom, top = make_layer(text, [_rand(1, 3, 2, 3), CONT])
    assert not layer.allow_force_backward(1) and layer.allow_force_backward(0)
    assert layer.allow_force_backward(2)
    layer.run_forward(bottom, top)
    with pytest.raises(LayerSetupError, match='sequence continuation'):
        layer.run_backward(top, [True, True], bottom)


# -- LSTMUnit ----------------------------------------------------------------------------
def test_lstm_unit_forward_matches_numpy():
    c_prev, gates = _rand(1, 1, 3, 4), 2 * _rand(2, 1, 3, 16)
    cont = np.array([[1, 0, 1]], np.float32)
    c, h = run_layer(UNIT, [c_prev, gates, cont], ntop=2)['tops']
    c_ref, h_ref = _unit_ref(c_prev[0], gates[0], cont[0])
    _close(c[0], c_ref)
    _close(h[0], h_ref)


def test_lstm_unit_gradient():
    cont = np.array([[1, 0, 1]], np.float32)
    check_gradient(UNIT, [_rand(1, 1, 3, 4), 2 * _rand(2, 1, 3, 16), cont], ntop=2,
                   check_bottoms=[0, 1])


def test_lstm_unit_backward_uses_scaled_forget_gate():
    """For cont outside {0, 1} Caffe's df' is dc_total * c_prev * f (1 - f) with f the
    cont-scaled gate (not the derivative of cont * sigmoid), and dc_prev = dc_total * f."""
    c_prev, gates = _rand(1, 1, 2, 3), _rand(2, 1, 2, 12)
    cont = np.array([[0.5, 2.0]], np.float32)
    dc, dh = _rand(3, 1, 2, 3), _rand(4, 1, 2, 3)
    r = run_layer(UNIT, [c_prev, gates, cont], top_diffs=[dc, dh], ntop=2,
                  propagate_down=[True, True, False])
    g64 = gates[0].astype(np.float64)
    i, f, o, g = _sigmoid(g64[:, :3]), _sigmoid(g64[:, 3:6]), _sigmoid(g64[:, 6:9]), \
        np.tanh(g64[:, 9:])
    f = cont[0][:, None] * f
    c = f * c_prev[0] + i * g
    total = dc[0] + dh[0] * o * (1 - np.tanh(c) ** 2)
    _close(r['bottom_diffs'][0][0], total * f)
    _close(r['bottom_diffs'][1][0][:, 3:6], total * c_prev[0] * f * (1 - f))
    _close(r['bottom_diffs'][1][0][:, 6:9], dh[0] * np.tanh(c) * o * (1 - o))


def test_lstm_unit_refuses_backward_to_cont_and_checks_shapes():
    bottoms = [_rand(1, 1, 3, 4), _rand(2, 1, 3, 16), np.ones((1, 3), np.float32)]
    layer, bottom, top = make_layer(UNIT, bottoms, ntop=2)
    assert not layer.allow_force_backward(2) and layer.allow_force_backward(1)
    layer.run_forward(bottom, top)
    with pytest.raises(LayerSetupError, match='sequence continuation'):
        layer.run_backward(top, [True, True, True], bottom)
    with pytest.raises(LayerSetupError, match='4 \\* H = 16'):
        make_layer(UNIT, [bottoms[0], _rand(2, 1, 3, 12), bottoms[2]], ntop=2)
    with pytest.raises(LayerSetupError, match='bottom\\[2\\] cont'):
        make_layer(UNIT, [bottoms[0], bottoms[1], np.ones((1, 2), np.float32)], ntop=2)
    with pytest.raises(LayerSetupError, match='bottom\\[0\\] c_prev'):
        make_layer(UNIT, [_rand(1, 2, 3, 4), bottoms[1], bottoms[2]], ntop=2)


# -- Caffe's CHECKs ----------------------------------------------------------------------
X = _rand(1, 3, 2, 5)


@pytest.mark.parametrize('text, bottoms, ntop, message', [
    (LSTM % (0, ''), [X, CONT], 1, 'num_output must be positive'),
    ('type: "RNN"', [X, CONT], 1, 'num_output must be positive'),
    (LSTM % (2, ''), [X, CONT[None]], 1, 'exactly 2 axes'),
    (LSTM % (2, ''), [X, CONT[:2]], 1, 'exactly 2 axes'),
    (RNN % (2, ''), [X, CONT[:, :1]], 1, 'exactly 2 axes'),
    (LSTM % (2, ''), [X[:, :, 0], CONT], 1, 'InnerProduct with axis 2'),
    (LSTM % (2, ''), [X[:, 0, 0], CONT], 1, 'at least 2 axes'),
    (RNN % (2, ''), [X, CONT, _rand(2, 3, 4)], 1, 'x_static'),
    (RNN % (2, ''), [X, CONT, _rand(2, 2)], 1, 'InnerProduct with axis 1'),
    (LSTM % (2, ''), [X, CONT], 3, 'exactly 1 top'),
    (LSTM % (2, 'expose_hidden: true'), [X, CONT, np.zeros((1, 2, 2))], 3, 'at least 4'),
    (LSTM % (2, 'expose_hidden: true'), [X, CONT, np.zeros((1, 2, 3)),
                                         np.zeros((1, 2, 2))], 3, 'hidden state input'),
    (RNN % (2, ''), [X, CONT, _rand(2, 2, 4), _rand(3, 2, 4)], 1, 'at most 3'),
])
def test_checks(text, bottoms, ntop, message):
    with pytest.raises(LayerSetupError, match=message):
        make_layer(text, bottoms, ntop=ntop)


def test_reshape_checks_timesteps_and_input_size():
    """T is fixed at set-up ("input number of timesteps changed"), as is D; N may change."""
    layer, bottom, top = make_layer(RNN % (2, ''), [X, CONT])
    bottom[0].reshape(3, 4, 5)
    bottom[1].reshape(3, 4)
    layer.run_forward(bottom, top)
    assert top[0].shape == (3, 4, 2)
    bottom[0].reshape(2, 4, 5)
    bottom[1].reshape(2, 4)
    with pytest.raises(LayerSetupError, match='number of timesteps changed'):
        layer.run_forward(bottom, top)
    bottom[0].reshape(3, 4, 6)
    bottom[1].reshape(3, 4)
    with pytest.raises(LayerSetupError, match='D = 5'):
        layer.run_forward(bottom, top)


def test_net_backward_reaches_params_not_cont(tmp_path):
    """In a Net without force_backward, a loss above the LSTM fills its parameter diffs and,
    as Caffe's unrolled net does whatever propagate_down says, x's diff; cont, an input, is
    never asked for one (asking would be an error)."""
    import caffe_torch as caffe
    net_file = tmp_path / 'net.prototxt'
    net_file.write_text('''
        layer { name: "in" type: "Input" top: "x" top: "cont" top: "target"
                input_param { shape { dim: 3 dim: 2 dim: 4 } shape { dim: 3 dim: 2 }
                              shape { dim: 3 dim: 2 dim: 2 } } }
        layer { name: "lstm" type: "LSTM" bottom: "x" bottom: "cont" top: "h"
                recurrent_param { num_output: 2
                                  weight_filler { type: "uniform" min: -1 max: 1 } } }
        layer { name: "loss" type: "EuclideanLoss" bottom: "h" bottom: "target"
                top: "loss" }''')
    net = caffe.Net(str(net_file), caffe.TRAIN)
    net.blobs['x'].data[...] = _rand(1, 3, 2, 4)
    net.blobs['cont'].data[...] = CONT
    net.blobs['target'].data[...] = _rand(2, 3, 2, 2)
    net.forward()
    net.backward()
    assert all(np.any(b.diff != 0) for b in net.params['lstm'])
    assert np.any(net.blobs['x'].diff != 0)
