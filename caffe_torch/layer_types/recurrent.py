"""Caffe's recurrent layers LSTM and RNN (recurrent_layer.cpp, lstm_layer.cpp, rnn_layer.cpp).

Caffe unrolls an internal net over the T timesteps; here the same recurrence runs as a loop
over T with the same parameter blobs, formulas and diffs.

bottoms: x (T x N x ...: T timesteps of N interleaved streams; axes from 2 on are
flattened to D inputs), cont (T x N: 0 starts a new sequence at that timestep, 1 continues),
optional x_static (N x ...: one input per stream shared by all timesteps, flattened from
axis 1 to Ds), then with expose_hidden the initial states (1 x N x H each: h_0 for RNN;
h_0, c_0 for LSTM). tops: the output (T x N x H), then with expose_hidden the final states
(h_T; h_T, c_T).
recurrent_param: num_output H (> 0, required), weight_filler, bias_filler (default: constant
0), expose_hidden; debug_info only logs in Caffe and is ignored.

The previous state enters timestep t multiplied by cont_t (h_{t-1}, and for the LSTM the
forget gate, so c_{t-1}, see lstm_unit.py). Without expose_hidden each forward starts from
the previous forward's final state (zeros at first), so a stream continues across batches
where cont[0] is 1. With expose_hidden the initial state is read from the bottoms and
nothing carries over.

Backward, as Caffe's unrolled net: to x, x_static and the parameters (accumulated), always
(Caffe runs its internal backward whatever propagate_down says for x and x_static); never to
cont (force_backward skips it, asking for it is an error). No gradient flows in from beyond
the batch: the final state's diff is zero, and with expose_hidden the diffs of the final
state tops are ignored and the initial state bottoms get no diff (Caffe shares only their
data with its internal net), their diff left as it was. The products go through mm_rows
(caffe_torch.batch_invariant), so a stream's result does not depend on the other streams.
"""
import torch

from caffe_torch.blob import Blob
from caffe_torch.layer import Layer
from caffe_torch.layer_factory import register
from caffe_torch.batch_invariant import mm_rows
from caffe_torch.layer_types.lstm_unit import unit_backward, unit_forward


class RecurrentLayer(Layer):
    """Shared shape rules, input transforms and state handling of LSTM and RNN.

    Subclasses set `state_names` and `gate_factor` (rows of the input weights per output:
    4 for the LSTM's i, f, o, g gates) and implement `recurrent_params`, `recur` and
    `recur_backward`.
    """
    state_names = ()
    gate_factor = 1

    def __init__(self, layer_param=None, phase=None):
        super().__init__(layer_param, phase)
        self.expose_hidden = self.layer_param.recurrent_param.expose_hidden
        self.num_exposed = len(self.state_names) if self.expose_hidden else 0
        self.min_bottoms = 2 + self.num_exposed
        self.max_bottoms = 3 + self.num_exposed
        self.exact_tops = 1 + self.num_exposed
        self.states = []  # the carried final states, without expose_hidden
        self.cache = None

    def allow_force_backward(self, bottom_index):
        return bottom_index != 1  # no gradient to the sequence continuation indicators

    # -- set-up and shapes -----------------------------------------------------------------
    def setup(self, bottom, top):
        p = self.layer_param.recurrent_param
        x = bottom[0]
        if x.num_axes < 2:
            self.fail(f'bottom[0] must have at least 2 axes -- (#timesteps, #streams, ...); '
                      f'got shape {x.shape}')
        self.T, self.N = x.shape[0], x.shape[1]
        self._check_cont(bottom)
        self.static_input = len(bottom) > 2 + self.num_exposed
        if self.static_input and (bottom[2].num_axes < 1 or bottom[2].shape[0] != self.N):
            self.fail(f'bottom[2] x_static must be N x ... with N = {self.N} streams as '
                      f'bottom[0] {x.shape}, got shape {bottom[2].shape}')
        if p.num_output <= 0:
            self.fail(f'recurrent_param.num_output must be positive (the hidden size), '
                      f'got {p.num_output}')
        self.H = p.num_output
        if x.num_axes < 3:
            self.fail(f'bottom[0] x of shape {x.shape} needs a third axis (T x N x D): '
                      f'Caffe\'s input transform is an InnerProduct with axis 2')
        if self.static_input and bottom[2].num_axes < 2:
            self.fail(f'bottom[2] x_static of shape {bottom[2].shape} needs a second axis '
                      f'(N x Ds): Caffe\'s static transform is an InnerProduct with axis 1')
        self.D = x.count_range(2)
        self.Ds = bottom[2].count_range(1) if self.static_input else 0
        if not self.blobs:
            for shape, filler in self.recurrent_params(p):
                self.param_blob(shape, filler)
        self.param_propagate_down = [True] * len(self.blobs)
        if not self.expose_hidden:
            self.states = [Blob((1, self.N, self.H), device=x.device)
                           for _ in self.state_names]

    def recurrent_params(self, p):
        """[(shape, filler)] of the parameter blobs, in Caffe's order."""
        g = self.gate_factor * self.H
        params = [((g, self.D), p.weight_filler), ((g,), p.bias_filler)]
        if self.static_input:
            params.append(((g, self.Ds), p.weight_filler))
        return params

    def _check_cont(self, bottom):
        cont = bottom[1]
        if cont.num_axes != 2 or cont.shape != (self.T, self.N):
            self.fail(f'bottom[1] cont must have exactly 2 axes -- (#timesteps, #streams) = '
                      f'({self.T}, {self.N}) as bottom[0] {bottom[0].shape}; got shape '
                      f'{cont.shape}')

    def reshape(self, bottom, top):
        x = bottom[0]
        if x.num_axes < 2:
            self.fail(f'bottom[0] must have at least 2 axes -- (#timesteps, #streams, ...); '
                      f'got shape {x.shape}')
        if x.shape[0] != self.T:
            self.fail(f'input number of timesteps changed: bottom[0] {x.shape} has '
                      f'{x.shape[0]}, the layer was set up for T = {self.T}')
        self.N = x.shape[1]
        self._check_cont(bottom)
        if x.num_axes < 3 or x.count_range(2) != self.D:
            self.fail(f'bottom[0] {x.shape} must flatten from axis 2 to D = {self.D} inputs, '
                      f'the size the weights were made for')
        if self.static_input:
            xs = bottom[2]
            if xs.num_axes < 2 or xs.shape[0] != self.N or xs.count_range(1) != self.Ds:
                self.fail(f'bottom[2] x_static must be N x ... with N = {self.N} and '
                          f'{self.Ds} inputs from axis 1, got shape {xs.shape}')
        state_shape = (1, self.N, self.H)
        offset = 2 + self.static_input
        for j, name in enumerate(self.state_names[:self.num_exposed]):
            if bottom[offset + j].shape != state_shape:
                self.fail(f'bottom[{offset + j}] ({name}) shape must match hidden state '
                          f'input shape: {state_shape}, got {bottom[offset + j].shape}')
        top[0].reshape(self.T, self.N, self.H)
        for blob in list(top[1:]) + self.states:
            blob.reshape(*state_shape)

    def reset(self):
        """Caffe's Reset(): zero the carried state (the next forward starts from zeros)."""
        for blob in self.states:
            blob.data_tensor.zero_()

    # -- forward and backward --------------------------------------------------------------
    def forward(self, bottom, top):
        T, N, H = self.T, self.N, self.H
        W, b = self.blobs[0].data_tensor, self.blobs[1].data_tensor
        x_part = mm_rows(bottom[0].data_tensor.reshape(T * N, self.D), W.t()).add_(b)
        static = None
        if self.static_input:
            xs = bottom[2].data_tensor.reshape(N, self.Ds)
            static = mm_rows(xs, self.blobs[2].data_tensor.t())
        if self.expose_hidden:
            offset = 2 + self.static_input
            initial = [blob.data_tensor.reshape(N, H).clone()
                       for blob in bottom[offset:offset + self.num_exposed]]
        else:
            initial = [blob.data_tensor.reshape(N, H).clone() for blob in self.states]
        cont = bottom[1].data_tensor.clone()
        out, finals, self.cache = self.recur(x_part.view(T, N, -1), static, cont, initial)
        top[0].data_tensor.copy_(out)
        for blob, value in zip(top[1:] if self.expose_hidden else self.states, finals):
            blob.data_tensor.copy_(value.view(blob.shape))

    def backward(self, top, propagate_down, bottom):
        if propagate_down[1]:
            self.fail('cannot backpropagate to the sequence continuation indicators '
                      '(bottom[1], cont); give it no diff (propagate_down: false)')
        if self.cache is None:
            self.fail('backward before any forward')
        T, N = self.T, self.N
        gate_diff = self.recur_backward(top[0].diff_tensor, self.cache)
        dg = gate_diff.reshape(T * N, -1)
        x = bottom[0].data_tensor.reshape(T * N, self.D)
        self.blobs[0].diff_tensor.addmm_(dg.t(), x)
        self.blobs[1].diff_tensor.add_(dg.sum(dim=0))
        mm_rows(dg, self.blobs[0].data_tensor, out=bottom[0].diff_tensor.view(T * N, self.D))
        if self.static_input:
            static_diff = gate_diff.sum(dim=0)
            xs = bottom[2].data_tensor.reshape(N, self.Ds)
            self.blobs[2].diff_tensor.addmm_(static_diff.t(), xs)
            mm_rows(static_diff, self.blobs[2].data_tensor,
                    out=bottom[2].diff_tensor.view(N, self.Ds))

    @property
    def _recurrent_index(self):
        """Index of the first parameter after the input transforms."""
        return 2 + self.static_input

    def recur(self, x_part, static, cont, initial):
        """(output (T, N, H), final states, cache) from x_part = W x_t + b (T, N, G),
        static = W_static x_static (N, G) or None, cont (T, N), initial states (N, H)."""
        raise NotImplementedError

    def recur_backward(self, top_diff, cache):
        """Accumulate the recurrent parameters' diffs; return dE/d(x_part) (T, N, G)."""
        raise NotImplementedError


@register('LSTM')
class LSTMLayer(RecurrentLayer):
    """Long short-term memory (Hochreiter & Schmidhuber 1997), as Caffe's LSTM layer.

    params: W_xc (4H x D), b_c (4H), [W_xc_static (4H x Ds)], W_hc (4H x H); rows in gate
    blocks i, f, o, g. At each timestep t:
        gate_input_t = W_hc (cont_t h_{t-1}) + W_xc x_t + b_c [+ W_xc_static x_static]
        c_t, h_t = LSTMUnit(c_{t-1}, gate_input_t, cont_t)     (see lstm_unit.py)
    top: h_1..h_T. States: h, c (bottoms h_0, c_0 and tops h_T, c_T with expose_hidden).
    """
    state_names = ('h_0', 'c_0')
    gate_factor = 4

    def recurrent_params(self, p):
        return super().recurrent_params(p) + [((4 * self.H, self.H), p.weight_filler)]

    def recur(self, x_part, static, cont, initial):
        w_hc = self.blobs[self._recurrent_index].data_tensor
        h, c = initial
        hs, cells, conted, gates = [], [c], [], []
        for t in range(self.T):
            h_conted = h * cont[t].unsqueeze(1)
            gate = mm_rows(h_conted, w_hc.t()) + x_part[t]
            if static is not None:
                gate = gate + static
            c, h = unit_forward(c, gate, cont[t])
            hs.append(h)
            cells.append(c)
            conted.append(h_conted)
            gates.append(gate)
        cache = {'cont': cont, 'cells': torch.stack(cells), 'conted': torch.stack(conted),
                 'gates': torch.stack(gates)}
        return torch.stack(hs), (h, c), cache

    def recur_backward(self, top_diff, cache):
        blob = self.blobs[self._recurrent_index]
        w_hc = blob.data_tensor
        cont, cells, gates = cache['cont'], cache['cells'], cache['gates']
        gate_diff = torch.empty_like(gates)
        h_diff = torch.zeros_like(top_diff[0])
        c_diff = torch.zeros_like(h_diff)  # the final cell state gets no diff
        for t in reversed(range(self.T)):
            c_diff, gate_diff[t] = unit_backward(cells[t], gates[t], cont[t], cells[t + 1],
                                                 c_diff, top_diff[t] + h_diff)
            if t:
                h_diff = mm_rows(gate_diff[t], w_hc) * cont[t].unsqueeze(1)
        g = 4 * self.H
        blob.diff_tensor.addmm_(gate_diff.reshape(-1, g).t(),
                                cache['conted'].reshape(-1, self.H))
        return gate_diff


@register('RNN')
class RNNLayer(RecurrentLayer):
    """Simple (Elman) recurrent net with tanh units, as Caffe's RNN layer.

    params: W_xh (H x D), b_h (H), [W_xh_static (H x Ds)], W_hh (H x H), W_ho (H x H),
    b_o (H). At each timestep t:
        h_t = tanh(W_hh (cont_t h_{t-1}) + W_xh x_t + b_h [+ W_xh_static x_static])
        o_t = tanh(W_ho h_t + b_o)
    top: o_1..o_T. State: h (bottom h_0 and top h_T with expose_hidden).
    """
    state_names = ('h_0',)

    def recurrent_params(self, p):
        h = self.H
        return super().recurrent_params(p) + [((h, h), p.weight_filler),
                                              ((h, h), p.weight_filler),
                                              ((h,), p.bias_filler)]

    def recur(self, x_part, static, cont, initial):
        k = self._recurrent_index
        w_hh, w_ho, b_o = (self.blobs[k + i].data_tensor for i in range(3))
        (h,) = initial
        hs, conted = [], []
        for t in range(self.T):
            h_conted = h * cont[t].unsqueeze(1)
            pre = mm_rows(h_conted, w_hh.t()) + x_part[t]
            if static is not None:
                pre = pre + static
            h = torch.tanh(pre)
            hs.append(h)
            conted.append(h_conted)
        hs = torch.stack(hs)
        out = torch.tanh(mm_rows(hs.view(-1, self.H), w_ho.t()).add_(b_o)).view_as(hs)
        cache = {'cont': cont, 'hidden': hs, 'conted': torch.stack(conted), 'out': out}
        return out, (h,), cache

    def recur_backward(self, top_diff, cache):
        k = self._recurrent_index
        w_hh, w_ho, b_o = (self.blobs[k + i] for i in range(3))
        cont, hs, out = cache['cont'], cache['hidden'], cache['out']
        H = self.H
        out_diff = (top_diff * (1 - out * out)).reshape(-1, H)
        w_ho.diff_tensor.addmm_(out_diff.t(), hs.reshape(-1, H))
        b_o.diff_tensor.add_(out_diff.sum(dim=0))
        from_out = mm_rows(out_diff, w_ho.data_tensor).view_as(hs)
        pre_diff = torch.empty_like(hs)
        h_diff = torch.zeros_like(hs[0])
        for t in reversed(range(self.T)):
            pre_diff[t] = (from_out[t] + h_diff) * (1 - hs[t] * hs[t])
            if t:
                h_diff = mm_rows(pre_diff[t], w_hh.data_tensor) * cont[t].unsqueeze(1)
        w_hh.diff_tensor.addmm_(pre_diff.reshape(-1, H).t(), cache['conted'].reshape(-1, H))
        return pre_diff
