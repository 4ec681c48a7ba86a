"""LSTMUnit (lstm_unit_layer.cpp): one timestep of the LSTM non-linearity, and the cell math
the LSTM layer (recurrent.py) runs at every timestep.

Gate inputs come in the order i, f, o, g (four blocks of H along the last axis):
    i = sigmoid(i'), f = cont * sigmoid(f') (exactly 0 where cont == 0), o = sigmoid(o'),
    g = tanh(g'),  c = f * c_prev + i * g,  h = o * tanh(c).
Backward is Caffe's, with f the cont-scaled gate:
    dc_total = dc + dh * o * (1 - tanh(c)^2),  dc_prev = dc_total * f,
    di' = dc_total * g * i (1 - i),  df' = dc_total * c_prev * f (1 - f),
    do' = dh * tanh(c) * o (1 - o),  dg' = dc_total * i (1 - g^2).
For cont in {0, 1} that is the true gradient; for other cont values df' uses f (1 - f) of
the scaled f, not cont * s (1 - s), as Caffe does. BVLC's LSTMUnit has no parameters (no
clipping_threshold: that field is not in BVLC's caffe.proto).
"""
import torch

from caffe_torch.layer import Layer
from caffe_torch.layer_factory import register


def _gates(gate_input, cont):
    """(i, f, o, g) activations from (N, 4H) gate inputs and (N,) cont."""
    i, f, o, g = gate_input.chunk(4, dim=-1)
    cont = cont.unsqueeze(-1)
    f = torch.where(cont == 0, torch.zeros_like(f), cont * torch.sigmoid(f))
    return torch.sigmoid(i), f, torch.sigmoid(o), torch.tanh(g)


def unit_forward(c_prev, gate_input, cont):
    """(c, h), each (N, H), from c_prev (N, H), gate_input (N, 4H), cont (N,)."""
    i, f, o, g = _gates(gate_input, cont)
    c = f * c_prev + i * g
    return c, o * torch.tanh(c)


def unit_backward(c_prev, gate_input, cont, c, c_diff, h_diff):
    """(dc_prev (N, H), dgate_input (N, 4H)) from the forward's values and the top diffs.

    `c` is the forward's output cell state; Caffe recomputes the gates from the inputs.
    """
    i, f, o, g = _gates(gate_input, cont)
    tanh_c = torch.tanh(c)
    c_term = c_diff + h_diff * o * (1 - tanh_c * tanh_c)
    gate_diff = torch.cat([c_term * g * i * (1 - i),
                           c_term * c_prev * f * (1 - f),
                           h_diff * tanh_c * o * (1 - o),
                           c_term * i * (1 - g * g)], dim=-1)
    return c_term * f, gate_diff


@register('LSTMUnit')
class LSTMUnitLayer(Layer):
    """One LSTM cell step.

    bottoms: c_prev (1 x N x H), x = gate inputs (1 x N x 4H, blocks i, f, o, g),
    cont (1 x N). tops: c (1 x N x H), h (1 x N x H); formulas in the module docstring.
    backward: to c_prev and x (both diffs are written when either is asked for, as in
    Caffe); never to cont: force_backward skips it and asking for it is an error.
    """
    exact_bottoms = 3
    exact_tops = 2

    def allow_force_backward(self, bottom_index):
        return bottom_index != 2

    def reshape(self, bottom, top):
        names = ('c_prev', 'x (gate inputs)', 'cont')
        num = bottom[0].shape[1] if bottom[0].num_axes > 1 else None
        for index, blob in enumerate(bottom):
            axes = 2 if index == 2 else 3
            layout = '1 x N' if index == 2 else ('1 x N x H' if index == 0 else '1 x N x 4H')
            if blob.num_axes != axes or blob.shape[0] != 1 or blob.shape[1] != num:
                self.fail(f'bottom[{index}] {names[index]} must be {layout} ({axes} axes, '
                          f'one timestep, N = {num} streams as bottom[0]), got shape '
                          f'{blob.shape}')
        self.hidden = bottom[0].shape[2]
        if bottom[1].shape[2] != 4 * self.hidden:
            self.fail(f'bottom[1] (gate inputs) must have 4 * H = {4 * self.hidden} '
                      f'channels for the i, f, o, g gates of H = {self.hidden} cells '
                      f'(bottom[0] {bottom[0].shape}), got shape {bottom[1].shape}')
        top[0].reshape(*bottom[0].shape)
        top[1].reshape(*bottom[0].shape)

    def forward(self, bottom, top):
        c, h = unit_forward(bottom[0].data_tensor[0], bottom[1].data_tensor[0],
                            bottom[2].data_tensor[0])
        top[0].data_tensor[0].copy_(c)
        top[1].data_tensor[0].copy_(h)

    def backward(self, top, propagate_down, bottom):
        if propagate_down[2]:
            self.fail('cannot backpropagate to the sequence continuation indicators '
                      '(bottom[2], cont); give it no diff (propagate_down: false)')
        if not (propagate_down[0] or propagate_down[1]):
            return
        c_prev_diff, gate_diff = unit_backward(
            bottom[0].data_tensor[0], bottom[1].data_tensor[0], bottom[2].data_tensor[0],
            top[0].data_tensor[0], top[0].diff_tensor[0], top[1].diff_tensor[0])
        bottom[0].diff_tensor[0].copy_(c_prev_diff)
        bottom[1].diff_tensor[0].copy_(gate_diff)
