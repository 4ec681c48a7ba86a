"""Layer names: weights are matched by name, so two layers of one name holding parameters
would lose one's weights through a save and load; the net refuses them."""
import textwrap

import numpy as np
import pytest

import caffe_torch as caffe
from caffe_torch.errors import LayerSetupError

INPUT = '''name: "names"
layer { name: "input" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 } } }
'''


def _net(tmp_path, layers, phase=caffe.TEST):
    path = tmp_path / 'net.prototxt'
    path.write_text(INPUT + textwrap.dedent(layers))
    return caffe.Net(str(path), phase)


def test_catch_duplicate_layer_name_with_params(tmp_path):
    """Two InnerProduct layers named "ip" are refused, naming both indices and types."""
    with pytest.raises(LayerSetupError, match=r'net\.prototxt: layers 1 \(InnerProduct\) and '
                       r'2 \(InnerProduct\) are both named "ip".*silently.*Rename one'):
        _net(tmp_path, '''
            layer { name: "ip" type: "InnerProduct" bottom: "data" top: "a"
              inner_product_param { num_output: 4 } }
            layer { name: "ip" type: "InnerProduct" bottom: "a" top: "b"
              inner_product_param { num_output: 2 } }''')


def test_catch_duplicate_name_of_param_layer_and_plain_layer(tmp_path):
    """A parameter-less layer sharing its name with a later InnerProduct is refused too:
    Caffe would load the InnerProduct's weights into the wrong layer."""
    with pytest.raises(LayerSetupError, match=r'layers 1 \(ReLU\) and 2 \(InnerProduct\) '
                       r'are both named "fc"'):
        _net(tmp_path, '''
            layer { name: "fc" type: "ReLU" bottom: "data" top: "a" }
            layer { name: "fc" type: "InnerProduct" bottom: "a" top: "b"
              inner_product_param { num_output: 2 } }''')


def test_same_name_in_other_phases_is_fine(tmp_path):
    """Layers excluded by phase rules do not count: one name per phase builds both nets."""
    layers = '''
        layer { name: "ip" type: "InnerProduct" bottom: "data" top: "out"
          inner_product_param { num_output: 4 } include { phase: TRAIN } }
        layer { name: "ip" type: "InnerProduct" bottom: "data" top: "out"
          inner_product_param { num_output: 2 } include { phase: TEST } }'''
    assert _net(tmp_path, layers, caffe.TRAIN).params['ip'][0].shape == (4, 3)
    assert _net(tmp_path, layers, caffe.TEST).params['ip'][0].shape == (2, 3)


def test_same_name_without_params_is_allowed(tmp_path):
    """Parameter-less layers may share a name, as in Caffe's own
    examples/mnist/mnist_autoencoder.prototxt (two loss layers named "loss"): nothing is
    matched by their name, so nothing is lost."""
    net = _net(tmp_path, '''
        layer { name: "act" type: "Sigmoid" bottom: "data" top: "a" }
        layer { name: "act" type: "TanH" bottom: "data" top: "b" }''')
    out = net.forward(data=np.zeros((2, 3), np.float32))
    np.testing.assert_allclose(out['a'], 0.5)
    np.testing.assert_allclose(out['b'], 0.0)
