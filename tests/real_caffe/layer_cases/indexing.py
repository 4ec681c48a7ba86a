"""BatchReindex, Embed, Filter, Parameter and Tile.

Index bottoms (BatchReindex's indices, Embed's input, Filter's selector) take no gradient
and Caffe does not exempt them from force_backward (it aborts in Backward), so those cases
run without force_backward: the bottoms that get a diff come from Parameter layers (their
values given as params), the index bottoms from the Input layer (no_bottom_diff), and the
layer's tops carry a loss_weight or feed an ASUM Reduction with one. One case per type
keeps force_backward on, where Caffe aborts and the engine must refuse. Indices are whole
numbers in range (BatchReindex also takes fractions, which Caffe truncates); Filter's
selector has at least one nonzero (Caffe's backward divides by the kept count).
"""
import numpy as np

from real_caffe.cases import Case, Enum, layer, net
from real_caffe.layer_cases.reduction import branches, one_bottom, parameter


def _shape(rng, low=1, high=5, axes=(1, 5)):
    return tuple(int(rng.integers(low, high)) for _ in range(int(rng.integers(*axes))))


def _loss(rng, i, name):
    """A loss_weight for `name` (i % 2 == 0), or an ASUM Reduction over it with one."""
    if i % 2 == 0:
        return {'loss_weight': float(rng.choice([1.0, 0.5, -2.0]))}, []
    return {}, [layer(f'{name}_loss', 'Reduction', [name], loss_weight=1.0,
                      reduction_param={'operation': Enum('ASUM')})]


def _indexed(rng, i, type_name, values, index, fields, tops, param=None):
    """The no-force_backward net: Parameter layers for `values`, Input for `index`."""
    if i == 19:  # force_backward asks for the index bottom's diff: Caffe aborts
        inputs = {**{k: np.shape(v) for k, v in values.items()}, 'index': index.shape}
        body = layer('out', type_name, list(values) + ['index'], tops, **fields)
        return Case(net(inputs, body), {**values, 'index': index})
    extra, after = {}, []
    for top in tops:
        more, tail = _loss(rng, i, top)
        after += tail
        for key, value in more.items():
            extra.setdefault(key, []).append(value)
    if param:
        extra['param'] = param
    body = [parameter(k, np.shape(v)) for k, v in values.items()]
    body.append(layer('out', type_name, list(values) + ['index'], tops, **fields, **extra))
    return Case(net({'index': index.shape}, *body, *after, force_backward=False),
                {'index': index}, params={f'{k}/0': v for k, v in values.items()},
                no_bottom_diff=('index',), phase='TEST' if i % 5 == 3 else 'TRAIN')


def batch_reindex(rng, i):
    shape = _shape(rng)
    x = rng.standard_normal(shape).astype(np.float32)
    k = int(rng.integers(1, 9))
    if i % 4 == 1:  # a permutation
        k = shape[0]
        index = rng.permutation(shape[0])
    else:  # repeats, omissions
        index = rng.integers(0, shape[0], k)
    index = index.astype(np.float32)
    if i == 18:  # fractions: Caffe checks 0 <= v < N on the float, then truncates
        index = (index + rng.uniform(0, 0.99, index.shape)).astype(np.float32)
    return _indexed(rng, i, 'BatchReindex', {'x': x}, index, {}, ['out'])


def embed(rng, i):
    num_output, input_dim = int(rng.integers(1, 6)), int(rng.integers(1, 9))
    index = rng.integers(0, input_dim, _shape(rng, 1, 4, (1, 4))).astype(np.float32)
    param = {'num_output': num_output, 'input_dim': input_dim}
    if i % 3 == 1:
        param['bias_term'] = False
    elif i % 3 == 2:
        param['bias_term'] = True
    if i % 7 == 4:  # fillers parse (the recorded params replace what they fill)
        param['weight_filler'] = {'type': 'gaussian', 'std': 0.1}
        param['bias_filler'] = {'type': 'constant', 'value': 0.5}
    fields = {'embed_param': param}
    if i == 19:
        body = layer('out', 'Embed', ['index'], **fields)
        return Case(net({'index': index.shape}, body), {'index': index})
    if i % 5 == 4:  # two Embeds sharing W (and b) by name: their diffs add up
        specs = [{'name': 'w'}, {'name': 'b'}][:1 + (param.get('bias_term', True))]
        other = rng.integers(0, input_dim, index.shape).astype(np.float32)
        body = [layer('a', 'Embed', ['index'], param=specs, loss_weight=1.0, **fields),
                layer('b', 'Embed', ['other'], param=specs, loss_weight=-0.5, **fields)]
        return Case(net({'index': index.shape, 'other': other.shape}, *body,
                        force_backward=False), {'index': index, 'other': other},
                    no_bottom_diff=('index', 'other'))
    extra, after = _loss(rng, i, 'out')
    body = [layer('out', 'Embed', ['index'], **fields, **extra)] + after
    return Case(net({'index': index.shape}, *body, force_backward=False), {'index': index},
                no_bottom_diff=('index',), phase='TEST' if i % 5 == 3 else 'TRAIN')


def filter_(rng, i):
    n = int(rng.integers(1, 7))
    keep = rng.random(n) < rng.uniform(0.3, 0.9)
    keep[int(rng.integers(0, n))] = True
    values = rng.choice([1.0, 1.0, 2.0, -1.0, 0.5], n)
    selector = np.where(keep, values, 0.0).astype(np.float32)
    selector = selector.reshape((n,) + (1,) * int(rng.integers(0, 3)))
    data = {name: rng.standard_normal((n,) + _shape(rng, 1, 4, (0, 3))).astype(np.float32)
            for name in ['a', 'b', 'c'][:1 + i % 3]}
    tops = [f'{name}_out' for name in data]
    fields = {}
    if i % 6 == 5 and len(data) > 1:  # propagate_down false on a data bottom holds here
        fields['propagate_down'] = [True, False] + [True] * (len(data) - 2) + [False]
    return _indexed(rng, i, 'Filter', data, selector, fields, tops)


def parameter_(rng, i):
    shape = _shape(rng, 1, 5, (1, 6)) if i != 19 else ()
    value = rng.standard_normal(shape).astype(np.float32)
    if i % 4 == 2:  # its diff from a loss below it, without force_backward
        return branches('Tile', {'p': value}, [('t', ['p'], {})],
                        tile_param={'axis': 0, 'tiles': 2})
    extra = {'loss_weight': float(rng.choice([0.5, 2.0]))} if i % 4 == 1 else {}
    body = layer('p', 'Parameter', top=['p'], parameter_param={'shape': {'dim': list(shape)}},
                 **extra)
    return Case(net({}, body), params={'p/0': value}, phase='TEST' if i % 5 == 3 else 'TRAIN')


def tile(rng, i):
    shape = _shape(rng, 1, 4, (1, 5))
    param = {'tiles': int(rng.integers(1, 5))}
    if i % 4 != 0 or len(shape) < 2:
        param['axis'] = int(rng.integers(-len(shape), len(shape)))
    if i == 19:  # Caffe: CHECK_GT(tiles_, 0) "Number of tiles must be positive."
        param['tiles'] = 0
    x = rng.standard_normal(shape).astype(np.float32)
    return one_bottom(rng, i, 'Tile', x, tile_param=param)


GENERATORS = {'BatchReindex': batch_reindex, 'Embed': embed, 'Filter': filter_,
              'Parameter': parameter_, 'Tile': tile}
