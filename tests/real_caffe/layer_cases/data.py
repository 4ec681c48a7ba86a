"""DummyData, Input and MemoryData: the layers that make net inputs without a file.

DummyData: shapes once or per top, the legacy num/channels/height/width (once or per top),
0, 1 or one filler per top; only fillers that draw nothing: constant (filled once, at
set-up), bilinear and uniform with min == max (Caffe's boost draw lies in [a, nextafter(a))
and is redrawn until below it, so it is exactly a); those two refill on every forward, so
forwards=2. Caffe aborts on a filler count that fits no rule, on shapes given twice, and on
an empty top (the constant filler's CHECK(count)).
Input: one shape for all tops or one per top, 0-d to 5-d, tops read by Power layers or left
as net outputs (their diff is the one set). Caffe aborts on a wrong shape count.
MemoryData: arrays of n = k * batch_size rows (pycaffe's 1-d labels made 4-d), forwards=3
so batches wrap round; transform_param is ignored by Reset (Caffe only warns); a consumer
layer reads the label after its first forward reshapes it to N x 1 x 1 x 1. Caffe aborts
on a forward without set_input_arrays.
"""
import numpy as np

from real_caffe.cases import Case, layer, net


def _shape(rng, axes, low=1, high=4):
    return [int(d) for d in rng.integers(low, high + 1, axes)]


def _filler(rng, kind, shape=None):
    if kind == 'constant':
        return {'type': 'constant', 'value': float(np.float32(rng.uniform(-3, 3)))}
    if kind == 'uniform':
        value = float(np.float32(rng.uniform(-2, 2)))
        return {'type': 'uniform', 'min': value, 'max': value}
    return {'type': 'bilinear'}


def dummy_data(rng, i):
    num_top = int(rng.integers(1, 4))
    tops = [f't{k}' for k in range(num_top)]
    kinds = ['constant', 'uniform', 'bilinear']
    if i == 17:  # a zero dimension: the constant filler's CHECK(count) aborts
        param = {'shape': [{'dim': [2, 0, 3]}]}
        return Case(net({}, layer('d', 'DummyData', top=tops, dummy_data_param=param)),
                    backward=False)
    if i == 18:  # two fillers for three tops
        param = {'shape': [{'dim': [2, 3]}], 'data_filler': [_filler(rng, 'constant')] * 2}
        return Case(net({}, layer('d', 'DummyData', top=['a', 'b', 'c'],
                                  dummy_data_param=param)), backward=False)
    if i == 19:  # shape and legacy fields together
        param = {'shape': [{'dim': [2, 3]}], 'num': 2, 'channels': 1, 'height': 2, 'width': 2}
        return Case(net({}, layer('d', 'DummyData', top=tops, dummy_data_param=param)),
                    backward=False)
    legacy = i % 4 == 3
    if legacy:
        fields = {}
        for name in ('num', 'channels', 'height', 'width'):
            per_top = num_top > 1 and rng.random() < 0.5
            fields[name] = [int(v) for v in rng.integers(1, 4, num_top if per_top else 1)]
        shapes = [[fields[n][k if len(fields[n]) > 1 else 0]
                   for n in ('num', 'channels', 'height', 'width')] for k in range(num_top)]
    else:
        once = i % 3 == 0
        shapes = [_shape(rng, int(rng.integers(0, 5)))] * num_top if once else \
            [_shape(rng, int(rng.integers(0, 5))) for _ in range(num_top)]
        fields = {'shape': [{'dim': s} for s in (shapes[:1] if once else shapes)]}
    square4 = [len(s) == 4 and s[2] == s[3] for s in shapes]
    how = i % 5  # 0 fillers, one for all, or one per top
    if how == 0:
        fillers = []
    elif how in (1, 2):
        kind = kinds[how - 1] if how == 1 or not all(square4) else 'bilinear'
        fillers = [_filler(rng, kind)]
    else:
        fillers = [_filler(rng, kinds[int(rng.integers(0, 3 if square4[k] else 2))])
                   for k in range(num_top)]
    param = dict(fields, data_filler=fillers)
    body = [layer('d', 'DummyData', top=tops, dummy_data_param=param)]
    if i % 2:  # a consumer of the first top
        body.append(layer('p', 'Power', ['t0'], power_param={'scale': 2.0, 'shift': 0.5}))
    return Case(net({}, *body), forwards=2)


def input_layer(rng, i):
    num_top = int(rng.integers(1, 4))
    tops = [f'x{k}' for k in range(num_top)]
    if i == 19:  # two shapes for three tops
        shapes = [_shape(rng, 2), _shape(rng, 3)]
        body = layer('x', 'Input', top=['a', 'b', 'c'],
                     input_param={'shape': [{'dim': s} for s in shapes]})
        return Case(net({}, body), backward=False)
    once = i % 2 == 0
    shapes = [_shape(rng, int(rng.integers(0, 6)))] * num_top if once else \
        [_shape(rng, int(rng.integers(0, 6))) for _ in range(num_top)]
    given = shapes[:1] if once else shapes
    body = [layer('x', 'Input', top=tops, input_param={'shape': [{'dim': s} for s in given]})]
    for k, top in enumerate(tops):
        if rng.random() < 0.6:
            body.append(layer(f'p{k}', 'Power', [top],
                              power_param={'scale': float(rng.choice([0.5, -2.0])),
                                           'shift': 1.0}))
    bottoms = {top: rng.standard_normal(shape).astype(np.float32)
               for top, shape in zip(tops, shapes)}
    return Case(net({}, *body), bottoms)


def memory_data(rng, i):
    batch = int(rng.integers(1, 5))
    c, h, w = _shape(rng, 3)
    param = {'batch_size': batch, 'channels': c, 'height': h, 'width': w}
    extra = {'transform_param': {'scale': 0.5, 'mean_value': 3.0}} if i % 5 == 4 else {}
    body = [layer('m', 'MemoryData', top=['data', 'label'], memory_data_param=param, **extra)]
    if i % 3 == 1:
        body.append(layer('pd', 'Power', ['data'], power_param={'scale': 3.0}))
        body.append(layer('pl', 'Power', ['label'], power_param={'shift': 1.0}))
    n = batch * int(rng.integers(1, 5))
    data = rng.standard_normal((n, c, h, w)).astype(np.float32)
    label = rng.integers(0, 10, n).astype(np.float32)
    if i % 2:
        label = label[:, None, None, None]
    if i == 19:  # no set_input_arrays: the first forward aborts
        return Case(net({}, *body), backward=False)
    return Case(net({}, *body), forwards=3, input_arrays=(data, label))


GENERATORS = {'DummyData': dummy_data, 'Input': input_layer, 'MemoryData': memory_data}
