"""Eltwise (PROD with and without stable_prod_grad, SUM with coeffs, MAX over distinct values,
2 to 4 bottoms, one blob given twice), Scale and Bias (a learned operand or a second bottom,
axis negative or not, num_axes 0 to all or -1, Scale's bias_term and fillers, in place,
params shared by name, lr_mult 0). Throughout: loss weights, propagate_down false with
force_backward off, TEST phase, chains, 1 to 5 axes of odd sizes."""
import numpy as np

from real_caffe.cases import Case, Enum, layer, net
from real_caffe.layer_cases.neuron import f32, shape, signed


def fed(shapes):
    """Zero Bias layers `p_<name>` giving `<name>_p` for {name: shape}: identities with a
    param, so that without force_backward the layer after them needs backward and its
    propagate_down (or lr_mult) decides which of their param diffs gets a gradient. The
    bias covers the whole blob: its diff is the top diff itself, not a sum that can cancel
    """
    body = [layer(f'p_{n}', 'Bias', [n], [f'{n}_p'], bias_param={'axis': 0, 'num_axes': -1})
            for n in shapes]
    return (body, [f'{n}_p' for n in shapes],
            {f'p_{n}/0': np.zeros(d, np.float32) for n, d in shapes.items()})


def _distinct(rng, count, dims):
    """`count` arrays whose values differ by at least 1e-2 at every position."""
    steps = rng.uniform(0.01, 1.0, (count, *dims))
    values = rng.permuted(np.cumsum(steps, axis=0), axis=0)
    return values - values.mean(axis=0) + rng.standard_normal(dims)


def _eltwise_param(rng, i, op, count):
    param = {} if op == 'SUM' and i % 4 == 0 else {'operation': Enum(op)}
    if op == 'SUM' and i % 2:
        param['coeff'] = [float(c) for c in rng.choice([1.0, -0.5, 2.0, 0.0, 1.5], count)]
    if op == 'PROD' and i % 4 != 3:
        param['stable_prod_grad'] = bool(i % 2)
    return param


def eltwise(rng, i):
    op, mode = ['SUM', 'PROD', 'MAX'][i % 3], i % 7
    count = int(rng.integers(2, 5 if mode == 6 else 4))
    dims = shape(rng, 5 if mode == 6 else 1, 5, max_count=300)
    param = _eltwise_param(rng, i, op, count)
    if op == 'MAX':
        values = list(_distinct(rng, count, dims))
    else:  # clear of 0: PROD without stable_prod_grad divides by each bottom
        values = [signed(rng, dims, 0.2, 1.5) for _ in range(count)]
    names = [f'x{k}' for k in range(count)]
    if mode == 4:  # one blob twice (Caffe splits it); a MAX tie goes to the later bottom
        names[1] = names[0]
        values = values[:1] + values[2:]
    inputs = dict.fromkeys(names, dims)
    bottoms = {n: f32(v) for n, v in zip(dict.fromkeys(names), values)}
    fields, extra, params, force, phase = {'eltwise_param': param}, [], {}, True, 'TRAIN'
    bottom = names
    if mode == 1:
        fields['loss_weight'], phase = float(rng.choice([0.5, -1.0])), 'TEST'
    elif mode == 2:  # propagate_down decides which zero Bias gets a param diff
        fields['loss_weight'], force = 1.0, False
        fields['propagate_down'] = [bool(k % 2) for k in range(count)]
        extra_pre, bottom, params = fed(inputs)
        bottom = [f'{n}_p' for n in names]
        return Case(net(inputs, *extra_pre, layer('out', 'Eltwise', bottom, **fields),
                        force_backward=False), bottoms, params=params)
    elif mode == 3:
        extra = [layer('squash', 'TanH', ['out'], ['out'])]
    elif mode == 5:  # each bottom scaled by a power of two first: the chain's param diffs
        bottom = [f's{k}' for k in range(count)]
        extra_pre = [layer(f's{k}', 'Scale', [n], scale_param={'axis': 0, 'num_axes': -1})
                     for k, n in enumerate(names)]
        params = {f's{k}/0': np.full(dims, rng.choice([2.0, -0.5, 0.5]), np.float32)
                  for k in range(count)}
        if op == 'MAX':
            params = {k: np.abs(v) for k, v in params.items()}  # keeps the order
        return Case(net(inputs, *extra_pre, layer('out', 'Eltwise', bottom, **fields)),
                    bottoms, params=params)
    body = [layer('out', 'Eltwise', bottom, **fields)] + extra
    return Case(net(inputs, *body, force_backward=force), bottoms, params=params,
                phase=phase)


def _span(rng, dims, learned):
    """(axis as written, num_axes, operand shape) for an operand over dims[axis:axis+k]."""
    n = len(dims)
    axis = int(rng.integers(0, n))
    k = int(rng.integers(0, n - axis + 1))
    num_axes = -1 if learned and k == n - axis and rng.random() < 0.5 else k
    written = axis - n if rng.random() < 0.3 else axis
    return written, num_axes, dims[axis:axis + k]


def _broadcast_case(rng, i, type_):
    """Scale or Bias in one of 10 settings, by i % 10."""
    mode, scale = i % 10, type_ == 'Scale'
    field = 'scale_param' if scale else 'bias_param'
    dims = shape(rng, 2 if mode in (0, 4) else 1, 5, max_count=300)
    x = signed(rng, dims, 0.01, 2.0)
    learned = mode not in (2, 8)
    axis, num_axes, operand = _span(rng, dims, learned)
    param = {} if mode == 0 else {'axis': axis, 'num_axes': num_axes}
    if not learned:
        param.pop('num_axes')
    if scale and mode in (1, 4, 8) and i % 3 != 2:
        param['bias_term'] = True
        if i % 2:
            param['bias_filler'] = {'type': 'constant', 'value': 0.1}
    if mode == 9:
        param['filler'] = {'type': 'gaussian', 'std': 0.5}
    fields = {field: param}
    if mode == 0:
        operand = dims[1:2]
    inputs, bottoms, bottom = {'x': dims}, {'x': f32(x)}, ['x']
    if not learned:
        inputs['b'] = operand
        bottoms['b'] = f32(signed(rng, operand, 0.1, 1.5))
        bottom = ['x', 'b']
    if mode == 3:  # out of place, then a second copy in place on its output
        body = [layer('a', type_, bottom, ['y'], **fields),
                layer('b', type_, ['y'] + bottom[1:], ['y'], **fields)]
        return Case(net(inputs, *body), bottoms)
    if mode == 4:
        return _shared(rng, i, type_, field, dims, x)
    force, phase, params, pre = True, 'TRAIN', {}, []
    if mode in (8, 9):  # x through a zero Bias (b may be 0-D, which Bias refuses)
        pre, fed_x, params = fed({'x': dims})
        bottom, force = fed_x + bottom[1:], False
    if mode == 5:  # Scale then leaves dy * x in the diff of its unpropagated bottom
        fields.update(loss_weight=2.0, propagate_down=False)
        force = False
    elif mode == 6:
        fields['loss_weight'], phase = float(rng.choice([0.5, 3.0])), 'TEST'
    elif mode == 8:
        fields.update(loss_weight=1.0, propagate_down=[i > 10, i < 10])
    elif mode == 9:  # lr_mult 0: the operand gets no diff without force_backward
        fields.update(loss_weight=1.0, param={'lr_mult': 0})
    if mode == 7:  # operand clear of 0 times x clear of 0: ReLU in place on it, no kink
        values = signed(rng, operand, 0.5, 1.5)
        body = [layer('out', type_, bottom, **fields), layer('relu', 'ReLU', ['out'], ['out'])]
        if not scale:
            values = np.zeros(operand)
        return Case(net(inputs, *body), bottoms, params={'out/0': f32(values)})
    return Case(net(inputs, *pre, layer('out', type_, bottom, **fields),
                    force_backward=force), bottoms, params=params, phase=phase)


def _shared(rng, i, type_, field, dims, x):
    """Two layers share their params by name. Scale's diff of an operand covering the whole
    bottom (and of outer 1, inner > 1) is written, not added: the first layer's backward
    (which runs last) then replaces the second's share, as in Caffe."""
    if i // 10 == 0:
        dims[0] = 1
        x = x[:1]
        param = {'axis': 1, 'num_axes': 1}
    else:
        param = {'axis': 0, 'num_axes': -1}
    bias = type_ == 'Scale' and i % 2 == 0
    if bias:
        param['bias_term'] = True
    names = [{'name': f'w{i}'}, {'name': f'b{i}'}][:1 + bias]
    z = signed(rng, dims, 0.01, 2.0)
    body = [layer('a', type_, ['x'], param=names, **{field: param}),
            layer('b', type_, ['z'], param=names, **{field: param})]
    return Case(net({'x': dims, 'z': dims}, *body), {'x': f32(x), 'z': f32(z)})


# A learned operand's diff is a float32 sum over the axes it is broadcast along (up to
# 300 terms of either sign), added in Caffe's gemv order, not torch's: where the terms
# cancel, the sum is small against their rounding. Forward stays at the default.
SUM_TOLERANCE = (2e-6, 1e-4)


def scale(rng, i):
    case = _broadcast_case(rng, i, 'Scale')
    case.tolerance = SUM_TOLERANCE
    return case


def bias(rng, i):
    case = _broadcast_case(rng, i, 'Bias')
    case.tolerance = SUM_TOLERANCE
    return case


GENERATORS = {'Bias': bias, 'Eltwise': eltwise, 'Scale': scale}
