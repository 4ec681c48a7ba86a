"""Python: user layers in a module written into the case folder (`import caffe`,
subclasses of caffe.Layer), one module name per case (py_layer_<i>), so that the recorder and
the engine import each case's own; the engine's test process makes `import caffe` give the
engine for these cases (test_layers.py).

The classes cover param_str (JSON), setup/reshape/forward/backward, bottoms and tops by
index and len, propagate_down, learnable blobs (blobs.add_blob) whose diffs accumulate,
shared by name between two layers, several bottoms or tops, a loss top (1-d or 0-d, its
diff the loss_weight), a data layer keeping a count between forwards (forwards=3), the
phase (caffe.TRAIN), reshaping tops, a Python layer between others. Caffe (its import
raising, as the engine's LayerSetupError) refuses a missing module or class.
"""
import json

import numpy as np

from real_caffe.cases import Case, layer, net

MODULE = '''"""Python layers of one differential case."""
import json

import numpy as np

import caffe


class Affine(caffe.Layer):
    """y = k x + b[c]: k from param_str, b learnable along axis 1."""

    def setup(self, bottom, top):
        self.k = json.loads(self.param_str)['k']
        if len(self.blobs) == 0:
            self.blobs.add_blob(bottom[0].data.shape[1])
            self.blobs[0].data[...] = 0.25

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def _b(self, ndim):
        return self.blobs[0].data.reshape((1, -1) + (1,) * (ndim - 2))

    def forward(self, bottom, top):
        x = bottom[0].data
        top[0].data[...] = np.float32(self.k) * x + self._b(x.ndim)

    def backward(self, top, propagate_down, bottom):
        d = top[0].diff
        if propagate_down[0]:
            bottom[0].diff[...] = np.float32(self.k) * d
        axes = (0,) + tuple(range(2, d.ndim))
        self.blobs[0].diff[...] += d.sum(axis=axes)


class WeightedSum(caffe.Layer):
    def setup(self, bottom, top):
        self.w = [np.float32(v) for v in json.loads(self.param_str)]
        assert len(self.w) == len(bottom)

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        total = np.zeros(bottom[0].data.shape, np.float32)
        for i in range(len(bottom)):
            total += self.w[i] * bottom[i].data
        top[0].data[...] = total

    def backward(self, top, propagate_down, bottom):
        for i in range(len(bottom)):
            if propagate_down[i]:
                bottom[i].diff[...] = self.w[i] * top[0].diff


class SquareAbs(caffe.Layer):
    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        for i in range(len(top)):
            top[i].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = bottom[0].data ** 2
        top[1].data[...] = np.abs(bottom[0].data)

    def backward(self, top, propagate_down, bottom):
        x = bottom[0].data
        bottom[0].diff[...] = 2 * x * top[0].diff + np.sign(x) * top[1].diff


class HalfSquaredLoss(caffe.Layer):
    def setup(self, bottom, top):
        self.scalar = json.loads(self.param_str)['scalar']

    def reshape(self, bottom, top):
        self.delta = np.zeros(bottom[0].data.shape, np.float32)
        if self.scalar:
            top[0].reshape()
        else:
            top[0].reshape(1)

    def forward(self, bottom, top):
        self.delta[...] = bottom[0].data - bottom[1].data
        top[0].data[...] = np.sum(self.delta ** 2) / bottom[0].num / 2.0

    def backward(self, top, propagate_down, bottom):
        for i, sign in enumerate((1, -1)):
            if propagate_down[i]:
                bottom[i].diff[...] = sign * top[0].diff.flat[0] * self.delta / bottom[i].num


class Counter(caffe.Layer):
    """No bottoms: start + k + arange, k the forwards so far."""

    def setup(self, bottom, top):
        param = json.loads(self.param_str)
        self.shape, self.start, self.k = param['shape'], param['start'], 0

    def reshape(self, bottom, top):
        for i in range(len(top)):
            top[i].reshape(*self.shape)

    def forward(self, bottom, top):
        for i in range(len(top)):
            values = np.arange(top[i].count, dtype=np.float32).reshape(self.shape)
            top[i].data[...] = self.start + self.k + (i + 1) * values
        self.k += 1

    def backward(self, top, propagate_down, bottom):
        pass


class ByPhase(caffe.Layer):
    def setup(self, bottom, top):
        self.factor = np.float32(2.0 if self.phase == caffe.TRAIN else -1.0)

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = self.factor * bottom[0].data

    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            bottom[0].diff[...] = self.factor * top[0].diff


class Flatten(caffe.Layer):
    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        top[0].reshape(bottom[0].num, bottom[0].count // bottom[0].num)

    def forward(self, bottom, top):
        top[0].data[...] = bottom[0].data.reshape(top[0].data.shape)

    def backward(self, top, propagate_down, bottom):
        bottom[0].diff[...] = top[0].diff.reshape(bottom[0].diff.shape)
'''


def _python(name, bottoms, tops, module, cls, param_str=None, **extra):
    param = {'module': module, 'layer': cls}
    if param_str is not None:
        param['param_str'] = json.dumps(param_str)
    return layer(name, 'Python', bottoms, top=tops, python_param=param, **extra)


def _randn(rng, shape):
    return rng.standard_normal(shape).astype(np.float32)


def python_layer(rng, i):
    module = f'py_layer_{i:02d}'
    kind = i % 8
    shape = [int(d) for d in rng.integers(1, 4, int(rng.integers(2, 5)))]
    inputs, body, forwards, phase = {'x': shape}, [], 1, 'TRAIN'
    if i >= 18:  # a missing module, a missing class
        what = (f'{module}_absent', 'Affine') if i == 18 else (module, 'Absent')
        body = [_python('p', ['x'], ['y'], *what, {'k': 1.0})]
    elif kind == 0:
        extra = {'propagate_down': False} if i % 3 == 2 else {}
        body = [_python('p', ['x'], ['y'], module, 'Affine',
                        {'k': float(rng.uniform(-2, 2))}, **extra)]
    elif kind == 1:
        count = int(rng.integers(1, 4))
        inputs = {f'x{k}': shape for k in range(count)}
        extra = {'propagate_down': [bool(k % 2 == 0) for k in range(count)]} if i > 8 else {}
        body = [_python('p', list(inputs), ['y'], module, 'WeightedSum',
                        [float(w) for w in rng.uniform(-2, 2, count)], **extra)]
    elif kind == 2:
        body = [_python('p', ['x'], ['sq', 'abs'], module, 'SquareAbs')]
    elif kind == 3:
        inputs = {'a': shape, 'b': shape}
        body = [_python('loss', ['a', 'b'], ['loss'], module, 'HalfSquaredLoss',
                        {'scalar': bool(i % 2)}, loss_weight=float(rng.choice([1.0, 0.5])))]
    elif kind == 4:
        inputs, forwards = {}, 3
        tops = ['a', 'b'][:int(rng.integers(1, 3))]
        body = [_python('count', [], tops, module, 'Counter',
                        {'shape': shape, 'start': float(rng.integers(-5, 5))})]
    elif kind == 5:
        phase = 'TEST' if i % 2 else 'TRAIN'
        body = [_python('p', ['x'], ['y'], module, 'ByPhase')]
    elif kind == 6:  # two Affine layers sharing their blob by name
        inputs = {'x': shape, 'z': shape}
        shared = {'name': f'b{i}'}
        body = [_python('p', ['x'], ['y'], module, 'Affine', {'k': 1.5}, param=shared),
                _python('q', ['z'], ['w'], module, 'Affine', {'k': -0.5}, param=shared)]
    else:
        body = [layer('pre', 'Power', ['x'], power_param={'scale': 2.0}),
                _python('p', ['pre'], ['flat'], module, 'Flatten'),
                layer('post', 'Power', ['flat'], power_param={'shift': 1.0, 'power': 2.0})]
    bottoms = {name: _randn(rng, s) for name, s in inputs.items()}
    return Case(net(inputs, *body), bottoms, files={f'{module}.py': MODULE}, modules=(module,),
                forwards=forwards, phase=phase, backward=i < 18)


GENERATORS = {'Python': python_layer}
