"""LSTM, RNN and LSTMUnit.

LSTM/RNN: T x N x D inputs (D one axis or two), T 1 to 4, N 1 to 3, num_output 1 to 5;
cont 0 (a sequence starts) or 1 (it goes on), the first row too, so that forward 2 carries
forward 1's final state into the streams whose cont[0] is 1 (forwards=2); sometimes
fractional or larger cont values, which Caffe multiplies in as they are; x_static (N x Ds,
N x a x b); expose_hidden with h_0 (and c_0) as bottoms and h_T (c_T) as tops; TRAIN and
TEST; propagate_down false for x (Caffe backpropagates into it all the same: its unrolled
net runs backward whole); a loss_weight on the output. Params are drawn by the recorder.
Caffe aborts on num_output 0 and on a cont whose T differs from x's. Tolerances are 5x the
default: Caffe's gemms sum in another order than torch's, and a state that comes out small
from larger terms (c_t = f c_{t-1} + i g) keeps their rounding (seed 7, LSTM_04: c_T off by
3.7e-6 relative, with the gate activations computed as Caffe does, in double, too).
LSTMUnit: c_prev 1 x N x D, x 1 x N x 4D, cont 1 x N (0, 1 or other values: Caffe's forget
gate is cont * sigmoid, and its diff keeps that product's form); propagate_down for one of
c_prev and x only (Caffe computes both diffs then); loss_weight on h; c consumed by a
Power layer. Caffe aborts on x not 4D wide.
"""
import numpy as np

from real_caffe.cases import Case, layer, net


def _cont(rng, shape, i):
    cont = (rng.random(shape) < 0.7).astype(np.float32)
    if i % 6 == 5:  # values other than 0 and 1
        cont = np.where(cont > 0, rng.choice([0.5, 1.0, 2.0, -0.5], shape), 0)
    return cont.astype(np.float32)


def _recurrent(type_name, rng, i):
    T, N, H = int(rng.integers(1, 5)), int(rng.integers(1, 4)), int(rng.integers(1, 6))
    x_shape = [T, N] + [int(d) for d in rng.integers(1, 5, 1 if i % 4 else 2)]
    inputs = {'x': x_shape, 'cont': [T, N]}
    if i % 3 == 1:
        inputs['x_static'] = [N] + [int(d) for d in rng.integers(1, 5, 1 if i % 2 else 2)]
    expose = i % 5 in (2, 4)
    states = ['h0', 'c0'] if type_name == 'LSTM' else ['h0']
    if expose:
        inputs.update({s: [1, N, H] for s in states})
    bottoms = {name: rng.standard_normal(shape).astype(np.float32)
               for name, shape in inputs.items()}
    bottoms['cont'] = _cont(rng, (T, N), i)
    tops = ['out'] + ([s.replace('0', 'T') for s in states] if expose else [])
    param = {'num_output': H, 'expose_hidden': expose}
    extra = {}
    if i == 7:
        extra['propagate_down'] = [False] * len(inputs)
    if i == 11:
        extra['loss_weight'] = [0.5] + [0.0] * (len(tops) - 1)
    if i == 18:
        param['num_output'] = 0
    if i == 19:
        inputs['cont'] = [T + 1, N]
        bottoms['cont'] = _cont(rng, (T + 1, N), i)
    body = layer('rec', type_name, list(inputs), top=tops, recurrent_param=param, **extra)
    return Case(net(inputs, body), bottoms, forwards=2, phase='TEST' if i % 2 else 'TRAIN',
                backward=i < 18, tolerance=(1e-5, 1e-4))


def lstm(rng, i):
    return _recurrent('LSTM', rng, i)


def rnn(rng, i):
    return _recurrent('RNN', rng, i)


def lstm_unit(rng, i):
    N, D = int(rng.integers(1, 5)), int(rng.integers(1, 6))
    inputs = {'c_prev': [1, N, D], 'x': [1, N, 4 * D], 'cont': [1, N]}
    if i == 19:
        inputs['x'] = [1, N, 4 * D + 1]
    scale = float(rng.choice([1.0, 3.0]))
    bottoms = {name: (rng.standard_normal(shape) * scale).astype(np.float32)
               for name, shape in inputs.items()}
    bottoms['cont'] = _cont(rng, (1, N), i)
    extra, body = {}, []
    if i % 7 == 3:
        extra['propagate_down'] = [True, False, False]
    elif i % 7 == 4:
        extra['propagate_down'] = [False, True, False]
    if i % 5 == 2:
        extra['loss_weight'] = [0.0, 2.0]
    body.append(layer('unit', 'LSTMUnit', list(inputs), top=['c', 'h'], **extra))
    if i % 4 == 1:
        body.append(layer('p', 'Power', ['c'], power_param={'scale': -1.5}))
    return Case(net(inputs, *body), bottoms, backward=i < 19)


GENERATORS = {'LSTM': lstm, 'RNN': rnn, 'LSTMUnit': lstm_unit}
