"""Neuron layers: AbsVal BNLL Dropout Exp Log Power ReLU Sigmoid TanH Threshold.

Every case puts the layer in one setting, by i % 8 (see `neuron_case`): alone; in place on
the output of a Scale (whose input diff and param diff then check the chain); in place on
an input blob; two copies off a zero Bias with loss weights, one with propagate_down false,
force_backward off; a loss weight in TEST; followed by an in-place TanH (so backwards that
read the top see what TanH left there, as in Caffe); TEST phase; in place with a loss
weight and propagate_down false. Shapes have 1 to 5 axes of 1 to 9. Inputs stay where the
op is defined and at least 1e-2 from its kinks. The helpers serve activations.py too.
"""
import numpy as np

from real_caffe.cases import Case, Enum, layer, net

MODES = 8
# The Scale or Bias in front covers the whole blob: its param diff is then dy * x or dy
# itself, not a float32 sum over the blob whose terms may cancel.
WHOLE = {'axis': 0, 'num_axes': -1}


def shape(rng, low=1, high=5, max_count=400):
    """Odd sizes: `low` to `high` axes of 1 to 9, shrunk to at most max_count values."""
    dims = [int(rng.integers(1, 10)) for _ in range(int(rng.integers(low, high + 1)))]
    while int(np.prod(dims)) > max_count:
        big = int(np.argmax(dims))
        dims[big] = (dims[big] + 1) // 2
    return dims


def away(x, kinks=(0.0,), gap=1e-2):
    """x (float64) with every value pushed at least `gap` away from each kink."""
    x = np.asarray(x, np.float64)
    for k in kinks:
        d = x - k
        x = np.where(np.abs(d) < gap, k + np.where(d >= 0, 1.0, -1.0) * (gap + np.abs(d)), x)
    return x


def signed(rng, dims, low=0.05, high=3.0):
    """Values of either sign with magnitude in [low, high]."""
    return rng.uniform(low, high, dims) * rng.choice([-1.0, 1.0], dims)


def f32(x):
    return np.asarray(x, np.float32)


def neuron_case(rng, i, type_, draw, in_place=True, axes=(1, 5), force=True):
    """The case of setting i % MODES for a one-bottom, one-top layer.

    draw(rng, dims, in_place) -> (fields, y): the layer's *_param fields (a dict of
    keyword arguments of `layer`) and float64 inputs valid for it (in place too when asked).
    """
    mode = i % MODES
    dims = shape(rng, *axes)
    inplace = in_place and mode in (1, 2, 7)
    fields, y = draw(rng, dims, inplace)
    phase = 'TEST' if mode in (4, 6) else 'TRAIN'
    if mode in (1, 7):  # Scale by a power of two (exact), then the layer in place on it
        factor = float(rng.choice([2.0, 0.5]))
        extra = {'loss_weight': 1.5, 'propagate_down': False} if mode == 7 else {}
        body = [layer('pre', 'Scale', ['x'], ['y'], scale_param=WHOLE),
                layer('out', type_, ['y'], ['y' if inplace else 'out'], **extra, **fields)]
        return Case(net({'x': dims}, *body, force_backward=force), {'x': f32(y / factor)},
                    params={'pre/0': np.full(dims, factor, np.float32)}, phase=phase)
    if mode == 2:
        top = 'x' if inplace else 'out'
        return Case(net({'x': dims}, layer('out', type_, ['x'], [top], **fields),
                        force_backward=force), {'x': f32(y)}, phase=phase)
    if mode == 3:  # gradients reach the zero Bias's param only through `b`
        body = [layer('pre', 'Bias', ['x'], ['y'], bias_param=WHOLE),
                layer('a', type_, ['y'], propagate_down=False, loss_weight=0.5, **fields),
                layer('b', type_, ['y'], loss_weight=float(rng.choice([1.0, -2.0])),
                      **fields)]
        return Case(net({'x': dims}, *body, force_backward=False), {'x': f32(y)},
                    params={'pre/0': np.zeros(dims, np.float32)}, phase=phase)
    if mode == 5:
        body = [layer('out', type_, ['x'], **fields),
                layer('squash', 'TanH', ['out'], ['out'])]
        return Case(net({'x': dims}, *body, force_backward=force), {'x': f32(y)}, phase=phase)
    extra = {'loss_weight': float(rng.choice([0.5, 3.0]))} if mode == 4 else {}
    return Case(net({'x': dims}, layer('out', type_, ['x'], **extra, **fields),
                    force_backward=force), {'x': f32(y)}, phase=phase)


def _engine(rng, param):
    """The param, with `engine: CAFFE` set at random (the engine field changes nothing)."""
    if rng.random() < 0.3:
        param['engine'] = Enum('CAFFE')
    return param


def relu(rng, i):
    slope = [None, 0.0, 0.01, 0.1, -0.3, 1.7, 0.5][i % 7]

    def draw(rng, dims, in_place):
        param = _engine(rng, {} if slope is None else {'negative_slope': slope})
        return {'relu_param': param}, away(rng.standard_normal(dims) * 2)
    return neuron_case(rng, i, 'ReLU', draw)


def sigmoid(rng, i):
    def draw(rng, dims, in_place):
        return {'sigmoid_param': _engine(rng, {})}, rng.standard_normal(dims) * 3
    return neuron_case(rng, i, 'Sigmoid', draw)


def tanh(rng, i):
    def draw(rng, dims, in_place):
        return {'tanh_param': _engine(rng, {})}, rng.standard_normal(dims) * 2
    return neuron_case(rng, i, 'TanH', draw)


def absval(rng, i):
    if i == 19:  # Caffe refuses AbsVal in place (CHECK_NE(top, bottom)): so must the engine
        x = f32(away(rng.standard_normal((2, 3))))
        return Case(net({'x': x.shape}, layer('out', 'AbsVal', ['x'], ['x'])), {'x': x})

    def draw(rng, dims, in_place):
        return {}, away(rng.standard_normal(dims) * 2)
    return neuron_case(rng, i, 'AbsVal', draw, in_place=False)


def bnll(rng, i):
    def draw(rng, dims, in_place):
        y = rng.standard_normal(dims) * 4
        if i % 3 == 2:  # past kBNLL_THRESHOLD = 50 on both sides
            y = y * 20
        return {}, y
    return neuron_case(rng, i, 'BNLL', draw)


def dropout(rng, i):
    """TRAIN only with dropout_ratio 0 (Caffe's random mask is its own); TEST copies."""
    def draw(rng, dims, in_place):
        if phase_is_test:
            ratio = [None, 0.1, 0.5, 0.9, 0.0, 0.33][i % 6]
            param = {} if ratio is None else {'dropout_param': {'dropout_ratio': ratio}}
        else:
            param = {'dropout_param': {'dropout_ratio': 0.0}}
        return param, rng.standard_normal(dims)
    phase_is_test = i % MODES in (4, 6)
    return neuron_case(rng, i, 'Dropout', draw)


def exp(rng, i):
    base = [None, 2.0, 0.5, 10.0, 2.718281828, 1.3][i % 6]
    scale = [None, 1.0, 0.5, -1.2, 0.0, 2.0, -0.3][i % 7]
    shift = [None, 0.0, 1.5, -0.7, 0.25][i % 5]

    def draw(rng, dims, in_place):
        param = {k: v for k, v in (('base', base), ('scale', scale), ('shift', shift))
                 if v is not None}
        return {'exp_param': param}, rng.uniform(-2, 2, dims)
    return neuron_case(rng, i, 'Exp', draw)


def log(rng, i):
    """shift + scale * x in [0.2, 5]; in place Caffe's backward reads the output for x, so
    there base > 1, scale > 0, shift >= 0 and inputs > 1 keep shift + scale * y positive."""
    choice = i // MODES * 3 + i % 3

    def draw(rng, dims, in_place):
        base = [None, 2.0, 10.0, 0.5, 3.3, None, 1.7, 0.8, 2.0][choice % 9]
        scale = [None, 2.0, -0.5, 0.3, 1.0, -1.5][choice % 6]
        shift = [None, 1.0, 2.5, 0.0, -0.4][choice % 5]
        u = rng.uniform(0.2, 5.0, dims)
        if in_place:
            base = None if base is not None and base < 1 else base
            scale, shift = abs(scale or 1.0), abs(shift or 0.0)
            u = rng.uniform(1.5, 6.0, dims)
        param = {k: v for k, v in (('base', base), ('scale', scale), ('shift', shift))
                 if v is not None}
        return {'log_param': param}, (u - (shift or 0.0)) / (scale or 1.0)
    return neuron_case(rng, i, 'Log', draw)


POWERS = [1.0, 2.0, 3.0, 0.5, -1.0, 1.5, 0.0, -2.0, 2.5, -0.5, None]


def power(rng, i):
    """The base shift + scale * x stays >= 0.3 from 0 (positive for fractional powers); in
    place (Caffe's backward reads the output for x) scale > 0, shift >= 0, base > 0."""
    def draw(rng, dims, in_place):
        p = POWERS[int(rng.integers(len(POWERS)))] if i >= 11 else POWERS[i]
        scale = [None, 2.0, -0.5, 1.0, 0.0, 1.3][int(rng.integers(6))]
        shift = [None, 0.0, 1.0, -0.5, 2.0][int(rng.integers(5))]
        integral = p is None or float(p).is_integer()
        if in_place:
            scale, shift = abs(scale or 1.0) or 1.0, abs(shift or 0.0)
        if scale == 0:
            shift = 1.5  # the constant shift ^ power: defined, and finite for power < 0
        u = rng.uniform(0.3, 3.0, dims)
        if integral and not in_place:
            u = u * rng.choice([-1.0, 1.0], dims)
        param = {k: v for k, v in (('power', p), ('scale', scale), ('shift', shift))
                 if v is not None}
        s = 1.0 if scale is None else scale
        x = (u - (shift or 0.0)) / s if s != 0 else rng.standard_normal(dims)
        return {'power_param': param}, x
    return neuron_case(rng, i, 'Power', draw)


def threshold(rng, i):
    """No backward: Caffe has none (NOT_IMPLEMENTED), so force_backward stays off and no
    loss weight sits below it; the recorded diffs are zeros of a backward that skips it."""
    t = [None, 0.0, 0.5, -1.2, 2.0][i % 5]
    if i == 19:  # force_backward asks for its backward: Caffe aborts, the engine refuses
        x = away(rng.standard_normal(shape(rng)), [0.0])
        return Case(net({'x': x.shape}, layer('out', 'Threshold', ['x'])), {'x': f32(x)})

    def draw(rng, dims, in_place):
        param = {} if t is None else {'threshold_param': {'threshold': t}}
        return param, away(rng.standard_normal(dims) * 2, [t or 0.0])
    if i % MODES == 3:
        dims = shape(rng)
        fields, y = draw(rng, dims, False)
        body = [layer('pre', 'Scale', ['x'], ['y'], scale_param=WHOLE),
                layer('out', 'Threshold', ['y'], propagate_down=False, **fields),
                layer('loss', 'Power', ['y'], loss_weight=2.0)]
        return Case(net({'x': dims}, *body, force_backward=False), {'x': f32(y)},
                    params={'pre/0': np.ones(dims, np.float32)})
    if i % MODES == 4:  # a loss weight would ask Threshold for its backward: TEST alone
        i += 2
    elif i % MODES == 7:  # in place after Scale, with no loss weight
        i -= 6
    case = neuron_case(rng, i, 'Threshold', draw, force=False)
    case.backward = i % 2 == 0
    return case


GENERATORS = {'AbsVal': absval, 'BNLL': bnll, 'Dropout': dropout, 'Exp': exp, 'Log': log,
              'Power': power, 'ReLU': relu, 'Sigmoid': sigmoid, 'TanH': tanh,
              'Threshold': threshold}
