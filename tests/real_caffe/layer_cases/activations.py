"""Clip, ELU, PReLU and Swish, in the settings of neuron.py's `neuron_case` (alone, in place
after a Scale or on an input, propagate_down false beside a loss, loss weights, followed by
an in-place TanH, TEST phase), plus PReLU's own: channel_shared, slopes shared by name
between two layers, lr_mult 0, and the 2-to-4 axes Caffe's legacy channels() allows."""

from real_caffe.cases import Case, layer, net
from real_caffe.layer_cases.neuron import away, f32, neuron_case, shape


def clip(rng, i):
    """Inputs 1e-2 clear of both bounds; i % 7 == 6 has min > max (all min, zero diff)."""
    def draw(rng, dims, in_place):
        low = float(rng.choice([-1.0, -0.25, 0.0, -2.5, 0.5]))
        high = low + float(rng.choice([0.5, 1.0, 2.0, 3.5]))
        if i % 7 == 6:
            low, high = high, low
        x = away(rng.standard_normal(dims) * 2, [low, high])
        return {'clip_param': {'min': low, 'max': high}}, x
    return neuron_case(rng, i, 'Clip', draw)


def elu(rng, i):
    alpha = [None, 1.0, 0.5, 2.0, 0.0, -0.5, 1.3][i % 7]

    def draw(rng, dims, in_place):
        param = {} if alpha is None else {'elu_param': {'alpha': alpha}}
        return param, away(rng.standard_normal(dims) * 2)
    return neuron_case(rng, i, 'ELU', draw)


def swish(rng, i):
    beta = [None, 1.0, 0.5, 2.0, -1.0, 0.0, 3.0][i % 7]

    def draw(rng, dims, in_place):
        param = {} if beta is None else {'swish_param': {'beta': beta}}
        return param, rng.standard_normal(dims) * 2.5
    return neuron_case(rng, i, 'Swish', draw)


def _prelu_param(rng, i):
    param = {}
    if i % 2:
        param['channel_shared'] = True
    elif i % 4 == 2:
        param['channel_shared'] = False
    if i % 3 == 0:
        param['filler'] = {'type': 'constant', 'value': 0.3}
    return param


# The slope diff is a float32 sum of up to 400 products dy * x of either sign, which Caffe
# adds one at a time and torch pairwise: where they cancel, the sum is small against the
# rounding of its terms (seen: 2e-5 relative on 224 terms). Forward stays exact.
PRELU_TOLERANCE = (2e-6, 2e-4)


def prelu(rng, i):
    """Slopes are drawn in (-1, 1) by the Caffe side, so negative slopes are covered."""
    case = _prelu(rng, i)
    case.tolerance = PRELU_TOLERANCE
    return case


def _prelu(rng, i):
    if i == 19:  # 5 axes: Caffe's channels() CHECKs num_axes <= 4, the engine must refuse
        x = f32(away(rng.standard_normal((2, 3, 1, 2, 2))))
        return Case(net({'x': x.shape}, layer('out', 'PReLU', ['x'])), {'x': x})
    if i in (8, 16, 17):  # two layers share one slope blob by name; the second in place
        dims = shape(rng, 2, 4)
        x = f32(away(rng.standard_normal(dims) * 2))
        shared = {'prelu_param': _prelu_param(rng, i), 'param': {'name': f'slope{i}'}}
        body = [layer('a', 'PReLU', ['x'], ['y'], **shared),
                layer('b', 'PReLU', ['y'], ['y'], **shared)]
        return Case(net({'x': dims}, *body), {'x': x}, phase='TEST' if i == 17 else 'TRAIN')

    def draw(rng, dims, in_place):
        fields = {'prelu_param': _prelu_param(rng, i)}
        if i % 5 == 4:  # lr_mult 0: no slope diff unless force_backward asks for it
            fields['param'] = {'lr_mult': 0}
        return fields, away(rng.standard_normal(dims) * 2)
    return neuron_case(rng, i, 'PReLU', draw, axes=(2, 4))


GENERATORS = {'Clip': clip, 'ELU': elu, 'PReLU': prelu, 'Swish': swish}
