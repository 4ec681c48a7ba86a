"""ArgMax Concat Flatten InnerProduct Reshape Silence Slice Split: every field of their params
(axis negative or not, the legacy concat_dim/slice_dim, slice_point, Reshape's 0 and -1 dims
with axis and num_axes, ArgMax's top_k/out_max_val/axis, InnerProduct's transpose and
bias_term), one or many bottoms and tops, shared weights, loss weights, propagate_down
false behind zero Biases with force_backward off (elementwise.fed), TEST phase, chains."""
import numpy as np

from real_caffe.cases import Case, layer, net, text
from real_caffe.layer_cases.elementwise import fed
from real_caffe.layer_cases.neuron import f32, shape


def _x(rng, dims):
    return f32(rng.standard_normal(dims))


def _axis(rng, n, written_negative=0.3):
    """A random axis of n and how to write it (negative sometimes)."""
    axis = int(rng.integers(0, n))
    return axis, axis - n if rng.random() < written_negative else axis


def argmax(rng, i):
    """Values distinct everywhere (no ties to break); Caffe has no backward for ArgMax (case
    19 asks for one: Caffe aborts, the engine must refuse)."""
    dims = shape(rng, 1, 5)
    x = f32((rng.permutation(int(np.prod(dims))) - 50) * 0.037).reshape(dims)
    if i == 19:
        return Case(net({'x': dims}, layer('out', 'ArgMax', ['x'])), {'x': x})
    param = {}
    if i % 3:  # along an axis
        axis, param['axis'] = _axis(rng, len(dims))
        size = dims[axis]
    else:
        size = int(np.prod(dims[1:]))
    if i % 4 != 3:
        param['top_k'] = int(rng.integers(1, min(size, 5) + 1))
    if i % 2 or i % 5 == 0:
        param['out_max_val'] = bool(i % 2)
    body = [layer('out', 'ArgMax', ['x'], argmax_param=param)]
    params = {}
    if i % 6 == 5:  # behind a Scale by a positive power of two: order kept
        body.insert(0, layer('s', 'Scale', ['x'], scale_param={'axis': 0, 'num_axes': 0}))
        body[1] = layer('out', 'ArgMax', ['s'], argmax_param=param)
        params = {'s/0': np.float32(2.0)}
    return Case(net({'x': dims}, *body, force_backward=False), {'x': x}, params=params,
                backward=False, phase='TEST' if i % 4 == 1 else 'TRAIN')


def _many(rng, i, type_, bottoms, tops, dims, fields, count_in):
    """The settings shared by the many-bottom or many-top layers, by i % 6."""
    mode = i % 6
    inputs = {n: d for n, d in zip(bottoms, dims)}
    values = {n: _x(rng, d) for n, d in inputs.items()}
    force, phase, pre, params, extra = True, 'TRAIN', [], {}, []
    bottom = list(bottoms)
    if mode == 1:
        fields['loss_weight'] = [float(rng.choice([0.5, 2.0])) for _ in tops]
        phase = 'TEST'
    elif mode == 2:  # propagate_down decides which zero Bias gets a param diff
        pre, bottom, params = fed(inputs)
        fields['propagate_down'] = [bool((k + i // 6 + (i > 10)) % 2)
                                    for k in range(count_in)]
        fields['loss_weight'] = [1.0] * len(tops)
        force = False
    elif mode == 3:  # only some tops weigh in the loss
        fields['loss_weight'] = [float(k % 2) for k in range(len(tops))]
    elif mode == 4:
        extra = [layer(f'squash{k}', 'TanH', [t], [t]) for k, t in enumerate(tops)]
    body = pre + [layer('out', type_, bottom, tops, **fields)] + extra
    return Case(net(inputs, *body, force_backward=force), values, params=params,
                phase=phase)


def _axis_param(rng, i, n, legacy):
    """(axis, param) of Concat/Slice: the default axis 1 (or 0 written where there is no
    axis 1), the legacy `*_dim` field, or `axis` (negative at times)."""
    axis, written = _axis(rng, n)
    if i % 5 == 0:
        return min(1, n - 1), {} if n > 1 else {'axis': 0}
    return axis, {legacy: axis} if i % 5 == 1 else {'axis': written}


def concat(rng, i):
    n = len(shape(rng, 1, 5))
    count = 1 if i % 7 == 6 else int(rng.integers(2, 5))
    base = shape(rng, n, n, max_count=120)
    axis, param = _axis_param(rng, i, n, 'concat_dim')
    dims = [base[:axis] + [int(rng.integers(1, 5))] + base[axis + 1:] for _ in range(count)]
    names = [f'x{k}' for k in range(count)]
    return _many(rng, i, 'Concat', names, ['out'], dims, {'concat_param': param}, count)


def slice_(rng, i):
    n = len(shape(rng, 1, 5))
    dims = shape(rng, n, n, max_count=200)
    axis, param = _axis_param(rng, i, n, 'slice_dim')
    size = dims[axis]
    if i % 3 == 0 or size == 1:  # equal parts
        divisors = [t for t in range(1, size + 1) if size % t == 0]
        count = int(rng.choice(divisors[:4]))
    else:
        count = int(rng.integers(2, min(size, 4) + 1))
        points = sorted(rng.choice(np.arange(1, size), count - 1, replace=False))
        param['slice_point'] = [int(p) for p in points]
    tops = [f'y{k}' for k in range(count)]
    return _many(rng, i, 'Slice', ['x'], tops, [dims], {'slice_param': param}, 1)


def split(rng, i):
    dims = shape(rng, 1, 5)
    count = int(rng.integers(1, 5))
    tops = [f'y{k}' for k in range(count)]
    return _many(rng, i, 'Split', ['x'], tops, [dims], {}, 1)


def flatten(rng, i):
    dims = shape(rng, 1, 5)
    n = len(dims)
    start, written = _axis(rng, n)
    end = int(rng.integers(start, n))
    if i % 6 == 5 and start > 0:  # end_axis just before axis: a new axis of 1
        end = start - 1
    param = {'axis': written, 'end_axis': end - n if rng.random() < 0.5 else end}
    if i % 4 == 0:
        param = {} if n >= 2 else {'axis': 0}
    fields = {'flatten_param': param}
    return _reshaping(rng, i, 'Flatten', dims, fields)


def _reshaping(rng, i, type_, dims, fields):
    """Flatten or Reshape: alone, with a loss weight in TEST, behind a zero Bias with
    propagate_down false, or feeding an in-place TanH, by i % 4."""
    mode = i % 4
    x = _x(rng, dims)
    if mode == 1:
        return Case(net({'x': dims}, layer('out', type_, ['x'], loss_weight=2.0, **fields)),
                    {'x': x}, phase='TEST')
    if mode == 2:
        pre, bottom, params = fed({'x': dims})
        body = pre + [layer('out', type_, bottom, loss_weight=1.0, **fields),
                      layer('other', type_, bottom, propagate_down=False, loss_weight=1.0,
                            **fields)]
        return Case(net({'x': dims}, *body, force_backward=False), {'x': x}, params=params)
    extra = [layer('squash', 'TanH', ['out'], ['out'])] if mode == 3 else []
    return Case(net({'x': dims}, layer('out', type_, ['x'], **fields), *extra), {'x': x})


def reshape(rng, i):
    """New dims for bottom axes [start, end): the whole shape with a prefix kept and the rest
    merged, a factoring of a span's count, or axes of 1 inserted (num_axes 0), by i % 5;
    dims equal to the bottom's at their place may be written 0 (copy), one may be -1."""
    dims = shape(rng, 1, 5)
    n = len(dims)
    if i % 5 == 4:
        start = end = int(rng.integers(0, n + 1))
        new = [1] * int(rng.integers(1, 3))
    elif i % 5 < 2:
        start, end, cut = 0, n, int(rng.integers(0, n))
        new = dims[:cut] + [int(np.prod(dims[cut:]))]
    else:
        start = int(rng.integers(0, n))
        end = int(rng.integers(start + 1, n + 1))
        new = _factor(rng, int(np.prod(dims[start:end])), int(rng.integers(1, 4)))
    written = [0 if start + k < n and d == dims[start + k] and rng.random() < 0.6 else d
               for k, d in enumerate(new)]
    if i % 3 != 2:
        written[int(rng.integers(len(new)))] = -1
    param = {'shape': {'dim': written}}
    if start or end != n or i % 2:
        param['axis'] = start - n - 1 if rng.random() < 0.3 else start
        param['num_axes'] = -1 if end == n and rng.random() < 0.5 else end - start
    return _reshaping(rng, i, 'Reshape', dims, {'reshape_param': param})


def _factor(rng, total, parts):
    """`parts` dims whose product is total."""
    out = []
    for _ in range(parts - 1):
        d = int(rng.choice([d for d in range(1, total + 1) if total % d == 0]))
        out.append(d)
        total //= d
    return out + [total]


def inner_product(rng, i):
    """Tolerance: each output is a float32 dot product of K terms and each weight diff a
    sum over M rows, in BLAS's order, not torch's. Where one cancels, it is small against
    its terms' rounding; with few outputs (M * N < 8) nothing averages that out."""
    few, case = _inner_product(rng, i)
    case.tolerance = (1e-4 if few else 2e-6, 1e-4)
    return case


def _inner_product(rng, i):
    mode = i % 7
    dims = shape(rng, 1, 5, max_count=200)
    axis, written = _axis(rng, len(dims))
    param = {'num_output': int(rng.integers(1, 7))}
    if i % 5 == 0:  # the default axis 1, or 0 written where there is no axis 1
        axis = min(1, len(dims) - 1)
        param.update({} if axis else {'axis': 0})
    else:
        param['axis'] = written
    if i % 4 == 3:
        param['bias_term'] = False
    if i % 3:
        param['transpose'] = bool(i % 3 == 1)
    if i % 6 == 5:
        param.update(weight_filler={'type': 'xavier'}, bias_filler={'type': 'constant'})
    bias = param.get('bias_term', True)
    few = mode == 4 or int(np.prod(dims[:axis])) * param['num_output'] < 8
    fields = {'inner_product_param': param}
    x = _x(rng, dims)
    if mode == 1:  # two layers share weight and bias by name
        names = [{'name': f'w{i}'}, {'name': f'b{i}'}][:1 + bias]
        body = [layer('a', 'InnerProduct', ['x'], param=names, **fields),
                layer('b', 'InnerProduct', ['z'], param=names, **fields)]
        return few, Case(net({'x': dims, 'z': dims}, *body),
                         {'x': x, 'z': _x(rng, dims)})
    if mode == 2:  # propagate_down false behind a zero Bias, lr_mult 0 on the bias
        pre, bottom, params = fed({'x': dims})
        lr = [{'lr_mult': 1}, {'lr_mult': 0}][:1 + bias]
        body = pre + [layer('out', 'InnerProduct', bottom, param=lr, loss_weight=1.0,
                            propagate_down=bool(i % 2), **fields)]
        return few, Case(net({'x': dims}, *body, force_backward=False), {'x': x},
                         params=params)
    if mode == 3:
        fields['loss_weight'] = float(rng.choice([0.5, 2.0]))
        return few, Case(net({'x': dims}, layer('out', 'InnerProduct', ['x'], **fields)),
                         {'x': x}, phase='TEST')
    if mode == 4:  # a second InnerProduct on the first's output, then TanH in place
        body = [layer('out', 'InnerProduct', ['x'], **fields),
                layer('out2', 'InnerProduct', ['out'], inner_product_param={
                    'num_output': int(rng.integers(1, 5)), 'axis': -1}),
                layer('squash', 'TanH', ['out2'], ['out2'])]
        # (few: the first product's rounding goes through the second, which may cancel)
        return few, Case(net({'x': dims}, *body), {'x': x})
    return few, Case(net({'x': dims}, layer('out', 'InnerProduct', ['x'], **fields)),
                     {'x': x}, phase='TEST' if mode == 6 else 'TRAIN')


def silence(rng, i):
    """Silence zeroes the diffs of its bottoms in backward (force_backward on): a Scale's
    output silenced and also used (its diff then only the other use's) and raw inputs."""
    count = int(rng.integers(1, 4))
    dims = [shape(rng, 1, 5) for _ in range(count)]
    inputs = {f'x{k}': d for k, d in enumerate(dims)}
    values = {n: _x(rng, d) for n, d in inputs.items()}
    mode = i % 4
    if mode == 0:
        return Case(net(inputs, _silence(list(inputs))), values)
    weighed = mode == 1  # Silence also takes a loss-weighted top, whose diff (the loss
    # weight, set at setup) it zeroes before TanH reads it: x0 then gets no gradient
    body = [layer('s', 'Scale', ['x0'], ['y'], scale_param={'axis': 0, 'num_axes': -1}),
            layer('use', 'TanH', ['y'], loss_weight=2.0 if mode in (1, 2) else None),
            _silence(['y'] + list(inputs)[1:] + ['use'] * weighed)]
    phase = 'TEST' if mode == 3 else 'TRAIN'
    return Case(net(inputs, *body, force_backward=mode != 2), values, phase=phase)


def _silence(bottoms):
    """A Silence layer: `layer` always writes a top."""
    return text({'layer': {'name': 'out', 'type': 'Silence', 'bottom': bottoms}})


GENERATORS = {'ArgMax': argmax, 'Concat': concat, 'Flatten': flatten,
              'InnerProduct': inner_product, 'Reshape': reshape, 'Silence': silence,
              'Slice': slice_, 'Split': split}
