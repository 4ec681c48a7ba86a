"""pycaffe's test_python_layer and test_python_layer_with_param_str, through a Net."""
import textwrap

import pytest

import caffe_torch as caffe
from caffe_torch import install_as_caffe

LAYERS = '''
import caffe


class SimpleLayer(caffe.Layer):
    """Multiplies its input by 10."""
    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = 10 * bottom[0].data

    def backward(self, top, propagate_down, bottom):
        bottom[0].diff[...] = 10 * top[0].diff


class SimpleParamLayer(SimpleLayer):
    """Multiplies by the integer in param_str."""
    def setup(self, bottom, top):
        self.value = int(self.param_str)

    def forward(self, bottom, top):
        top[0].data[...] = self.value * bottom[0].data

    def backward(self, top, propagate_down, bottom):
        bottom[0].diff[...] = self.value * top[0].diff


class ExceptionLayer(caffe.Layer):
    def setup(self, bottom, top):
        raise RuntimeError('Exception raised by the layer under test')


class ParameterLayer(caffe.Layer):
    """Adds a learned scalar; accumulates its gradient."""
    def setup(self, bottom, top):
        self.blobs.add_blob(1)
        self.blobs[0].data[0] = 0

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = bottom[0].data + self.blobs[0].data

    def backward(self, top, propagate_down, bottom):
        self.blobs[0].diff[0] += top[0].diff.sum()


class PhaseLayer(caffe.Layer):
    def setup(self, bottom, top):
        pass

    def reshape(self, bootom, top):
        top[0].reshape()

    def forward(self, bottom, top):
        top[0].data[()] = self.phase
'''


def _net_text(layer, n=3, param_str=None):
    extra = f' param_str: "{param_str}"' if param_str else ''
    tops = ''.join(f"layer {{ type: 'Python' name: 'l{i}' bottom: '{'data' if i == 1 else f'y{i-1}'}'"
                   f" top: 'y{i}' python_param {{ module: 'pyc_test_layers' layer: '{layer}'{extra}"
                   f" }} }}\n" for i in range(1, n + 1))
    return ("name: 'pythonnet' force_backward: true\n"
            "input: 'data' input_shape { dim: 10 dim: 9 dim: 8 }\n" + tops)


@pytest.fixture
def make_net(tmp_path, monkeypatch):
    (tmp_path / 'pyc_test_layers.py').write_text(LAYERS)
    monkeypatch.syspath_prepend(str(tmp_path))
    install_as_caffe()

    def make(text, phase=caffe.TRAIN):
        path = tmp_path / f'net{abs(hash(text))}.prototxt'
        path.write_text(textwrap.dedent(text))
        return caffe.Net(str(path), phase)
    return make


def test_forward(make_net):
    """Three SimpleLayers multiply the input by 10^3."""
    net = make_net(_net_text('SimpleLayer'))
    x = 8
    net.blobs['data'].data[...] = x
    net.forward()
    assert (net.blobs['y3'].data == 10 ** 3 * x).all()


def test_backward(make_net):
    """Their backward multiplies the top diff by 10^3."""
    net = make_net(_net_text('SimpleLayer'))
    x = 7
    net.blobs['y3'].diff[...] = x
    net.backward()
    assert (net.blobs['data'].diff == 10 ** 3 * x).all()


def test_reshape(make_net):
    """A reshaped input propagates through the Python layers' reshape."""
    net = make_net(_net_text('SimpleLayer'))
    net.blobs['data'].reshape(2, 3, 4)
    net.forward()
    assert net.blobs['y3'].data.shape == (2, 3, 4)


@pytest.mark.parametrize('value', [10, 2])
def test_param_str(make_net, value):
    """param_str reaches the layer before setup."""
    net = make_net(_net_text('SimpleParamLayer', param_str=str(value)))
    net.blobs['data'].data[...] = 1
    net.forward()
    assert (net.blobs['y3'].data == value ** 3).all()
    net.blobs['y3'].diff[...] = 1
    net.backward()
    assert (net.blobs['data'].diff == value ** 3).all()


def test_exception(make_net):
    """An exception in the layer's setup reaches the caller with its message."""
    with pytest.raises(RuntimeError, match='Exception raised by the layer under test'):
        make_net(_net_text('ExceptionLayer', n=1))


def test_parameter(make_net, tmp_path):
    """Layer blobs are parameters: learned, saved, copied and shared by name."""
    net = make_net(_net_text('ParameterLayer', n=1))
    assert len(net.params['l1']) == 1
    net.blobs['data'].data[...] = 1
    net.forward()
    assert (net.blobs['y1'].data == 1).all()
    net.params['l1'][0].data[0] = 2
    net.forward()
    assert (net.blobs['y1'].data == 3).all()
    net.blobs['y1'].diff[...] = 1
    net.backward()
    net.backward()
    assert net.params['l1'][0].diff[0] == 2 * 10 * 9 * 8
    path = str(tmp_path / 'p.caffemodel')
    net.save(path)
    other = make_net(_net_text('ParameterLayer', n=1))
    other.copy_from(path)
    assert other.params['l1'][0].data[0] == 2
    third = make_net(_net_text('ParameterLayer', n=1))
    third.share_with(net)
    net.params['l1'][0].data[0] = 5
    assert third.params['l1'][0].data[0] == 5


@pytest.mark.parametrize('phase', [caffe.TRAIN, caffe.TEST])
def test_phase(make_net, phase):
    """self.phase is the net's phase."""
    net = make_net('''layer { name: 'p' type: 'Python' top: 'phase'
                      python_param { module: 'pyc_test_layers' layer: 'PhaseLayer' } }''',
                   phase)
    net.forward()
    assert net.blobs['phase'].data[()] == phase


def test_layer_type_list_has_python_and_core_types():
    """layer_type_list names Python and the core types (pycaffe's test_layer_type_list)."""
    types = caffe.layer_type_list()
    for name in ('Python', 'Convolution', 'InnerProduct', 'Input', 'DummyData'):
        assert name in types
    assert types == sorted(types)
