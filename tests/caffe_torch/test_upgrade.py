"""Legacy nets (V0, V1, net inputs, data transforms) upgraded as Caffe's upgrade_proto."""
import numpy as np
import pytest
from google.protobuf import text_format

from caffe_torch import formats, io
from caffe_torch.errors import UpgradeError
from caffe_torch.proto import caffe_pb2
from caffe_torch.upgrade import net_needs_upgrade, upgrade_net, upgrade_solver

# A VGG-like deploy net as the 2014 model zoo wrote it: V1 `layers`, enum types, blobs_lr,
# weight_decay, legacy input/input_dim.
V1_NET = '''
name: "VGG_like"
input: "data"
input_dim: 1 input_dim: 3 input_dim: 8 input_dim: 8
layers { bottom: "data" top: "conv1_1" name: "conv1_1" type: CONVOLUTION
  blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0
  convolution_param { num_output: 4 pad: 1 kernel_size: 3 } }
layers { bottom: "conv1_1" top: "conv1_1" name: "relu1_1" type: RELU }
layers { bottom: "conv1_1" top: "pool1" name: "pool1" type: POOLING
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layers { bottom: "pool1" top: "fc6" name: "fc6" type: INNER_PRODUCT
  blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0
  inner_product_param { num_output: 5 } }
layers { bottom: "fc6" top: "fc6" name: "drop6" type: DROPOUT
  dropout_param { dropout_ratio: 0.5 } }
layers { bottom: "fc6" top: "prob" name: "prob" type: SOFTMAX }
'''

V2_TWIN = '''
name: "VGG_like"
layer { name: "input" type: "Input" top: "data"
  input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }
layer { bottom: "data" top: "conv1_1" name: "conv1_1" type: "Convolution"
  param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 2 decay_mult: 0 }
  convolution_param { num_output: 4 pad: 1 kernel_size: 3 } }
layer { bottom: "conv1_1" top: "conv1_1" name: "relu1_1" type: "ReLU" }
layer { bottom: "conv1_1" top: "pool1" name: "pool1" type: "Pooling"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { bottom: "pool1" top: "fc6" name: "fc6" type: "InnerProduct"
  param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 2 decay_mult: 0 }
  inner_product_param { num_output: 5 } }
layer { bottom: "fc6" top: "fc6" name: "drop6" type: "Dropout"
  dropout_param { dropout_ratio: 0.5 } }
layer { bottom: "fc6" top: "prob" name: "prob" type: "Softmax" }
'''

# Current shapes of the twin's parameters, and the legacy 4-D shapes V1 files store.
CURRENT_SHAPES = {'conv1_1': [(4, 3, 3, 3), (4,)], 'fc6': [(5, 64), (5,)]}
LEGACY_SHAPES = {'conv1_1': [(4, 3, 3, 3), (1, 1, 1, 4)], 'fc6': [(1, 1, 5, 64), (1, 1, 1, 5)]}


def _net(text):
    return text_format.Parse(text, caffe_pb2.NetParameter())


def _v1_caffemodel(rng):
    net = _net(V1_NET)
    values = {}
    for layer in net.layers:
        for shape in LEGACY_SHAPES.get(layer.name, []):
            data = rng.randn(*shape).astype(np.float32)
            blob = layer.blobs.add(num=shape[0], channels=shape[1], height=shape[2],
                                   width=shape[3])
            blob.data.extend(data.ravel())
            values.setdefault(layer.name, []).append(data)
    return net, values


def test_v1_net_upgrades_to_its_v2_twin(tmp_path):
    """A V1 prototxt read from disk equals the hand-written current-format net."""
    path = tmp_path / 'deploy.prototxt'
    path.write_text(V1_NET)
    assert formats.read_net(path) == _net(V2_TWIN)


def test_v1_caffemodel_upgrades_with_the_same_weights(tmp_path):
    """Legacy 4-D weight blobs survive the upgrade and fit the current parameter shapes."""
    net, values = _v1_caffemodel(np.random.RandomState(0))
    path = tmp_path / 'vgg_like.caffemodel'
    path.write_bytes(net.SerializeToString())
    upgraded = formats.read_net_binary(path)
    layers = {l.name: l for l in upgraded.layer}
    for name, shapes in CURRENT_SHAPES.items():
        assert [p.lr_mult for p in layers[name].param] == [1, 2]
        for blob, shape, original in zip(layers[name].blobs, shapes, values[name]):
            assert io.shape_equals(shape, blob)
            np.testing.assert_array_equal(io.blobproto_to_array(blob).reshape(shape),
                                          original.reshape(shape))
    assert not net_needs_upgrade(upgraded)


def test_v0_net_folds_padding_and_moves_fields():
    """V0 layers become current layers; a padding layer becomes the next conv's pad."""
    v0 = _net('''
        input: "data" input_dim: 1 input_dim: 3 input_dim: 9 input_dim: 9
        layers { layer { name: "pad1" type: "padding" pad: 2 } bottom: "data" top: "pad1" }
        layers { layer { name: "conv1" type: "conv" num_output: 6 kernelsize: 5 stride: 2
                         group: 1 biasterm: false blobs_lr: 1 weight_decay: 1
                         weight_filler { type: "gaussian" std: 0.01 } }
                 bottom: "pad1" top: "conv1" }
        layers { layer { name: "pool1" type: "pool" pool: AVE kernelsize: 3 stride: 2 }
                 bottom: "conv1" top: "pool1" }
        layers { layer { name: "norm1" type: "lrn" local_size: 3 alpha: 0.1 beta: 0.5 }
                 bottom: "pool1" top: "norm1" }
        layers { layer { name: "fc" type: "innerproduct" num_output: 2 }
                 bottom: "norm1" top: "fc" }''')
    net = upgrade_net(v0)
    assert [l.type for l in net.layer] == ['Input', 'Convolution', 'Pooling', 'LRN',
                                           'InnerProduct']
    conv = net.layer[1]
    assert list(conv.bottom) == ['data']
    assert list(conv.convolution_param.pad) == [2]
    assert list(conv.convolution_param.kernel_size) == [5]
    assert list(conv.convolution_param.stride) == [2]
    assert conv.convolution_param.bias_term is False
    assert conv.convolution_param.weight_filler.std == pytest.approx(0.01)
    assert conv.param[0].lr_mult == 1 and conv.param[0].decay_mult == 1
    assert net.layer[2].pooling_param.pool == caffe_pb2.PoolingParameter.AVE
    assert net.layer[3].lrn_param.local_size == 3
    assert net.layer[4].inner_product_param.num_output == 2


def test_v1_data_layer_fields_move_to_transform_param():
    """scale/mean_file/crop_size/mirror of a V1 data layer go into transform_param."""
    net = upgrade_net(_net('''
        layers { name: "data" type: DATA top: "data" top: "label"
                 data_param { source: "db" batch_size: 4 scale: 0.5 mean_file: "m"
                              crop_size: 7 mirror: true } }'''))
    layer = net.layer[0]
    assert layer.type == 'Data'
    assert layer.transform_param == caffe_pb2.TransformationParameter(
        scale=0.5, mean_file='m', crop_size=7, mirror=True)
    assert not layer.data_param.HasField('scale') and layer.data_param.batch_size == 4


def test_input_shape_becomes_input_layer_in_front():
    """`input` + `input_shape` turn into a first Input layer; nameless inputs are dropped."""
    net = upgrade_net(_net('''
        input: "a" input_shape { dim: 2 dim: 3 } input: "b" input_shape { dim: 4 }
        layer { name: "s" type: "Eltwise" bottom: "a" bottom: "a" top: "s" }'''))
    assert [l.name for l in net.layer] == ['input', 's']
    assert list(net.layer[0].top) == ['a', 'b']
    assert [list(s.dim) for s in net.layer[0].input_param.shape] == [[2, 3], [4]]
    bare = upgrade_net(_net('input: "data" layer { name: "r" type: "ReLU" }'))
    assert not bare.input and [l.name for l in bare.layer] == ['r']


def test_batch_norm_with_three_params_gets_zero_lr():
    """Old BatchNorm definitions with three ParamSpecs are frozen, as Caffe requires."""
    net = upgrade_net(_net('''layer { name: "bn" type: "BatchNorm"
        param { lr_mult: 1 } param { lr_mult: 1 } param { lr_mult: 1 } }'''))
    assert all(p.lr_mult == 0 and p.decay_mult == 0 for p in net.layer[0].param)


def test_solver_type_enum_becomes_string():
    """The deprecated solver_type enum turns into the type string and is cleared."""
    solver = upgrade_solver(text_format.Parse('solver_type: NESTEROV base_lr: 0.1',
                                              caffe_pb2.SolverParameter()))
    assert solver.type == 'Nesterov' and not solver.HasField('solver_type')


def test_catch_solver_with_both_types():
    """A solver giving both solver_type and type is refused, naming both."""
    solver = text_format.Parse('solver_type: ADAM type: "SGD"', caffe_pb2.SolverParameter())
    with pytest.raises(UpgradeError, match='both the deprecated `solver_type`'):
        upgrade_solver(solver, 'solver.prototxt')


def test_catch_unknown_v0_type():
    """An unknown V0 layer type names the layer and lists the known V0 types."""
    net = _net('layers { layer { name: "x" type: "convolution" } }')
    with pytest.raises(UpgradeError, match='"x" has unknown type "convolution".*conv'):
        upgrade_net(net, 'old.prototxt')


def test_catch_v0_field_on_wrong_type():
    """A V0 field that Caffe cannot carry to the layer's type is an error, not a log line."""
    net = _net('input: "d" layers { layer { name: "r" type: "relu" num_output: 3 } '
               'bottom: "d" top: "r" }')
    with pytest.raises(UpgradeError, match='"r" of type "relu" sets `num_output`'):
        upgrade_net(net)


def test_catch_input_dim_count():
    """input_dim must give four values per input."""
    net = _net('input: "a" input_dim: 1 input_dim: 3')
    with pytest.raises(UpgradeError, match='need 4 input_dim values.*got 2'):
        upgrade_net(net)


def test_catch_mixed_layer_formats():
    """A net with both V1 `layers` and current `layer` entries is refused."""
    net = _net('layers { name: "a" type: RELU } layer { name: "b" type: "ReLU" }')
    with pytest.raises(UpgradeError, match='mixes V1 `layers` and current `layer`'):
        upgrade_net(net)


def test_catch_padding_into_non_conv():
    """A V0 padding layer feeding anything but conv/pool cannot be folded."""
    net = _net('''input: "d"
        layers { layer { name: "p" type: "padding" pad: 1 } bottom: "d" top: "p" }
        layers { layer { name: "r" type: "relu" } bottom: "p" top: "r" }''')
    with pytest.raises(UpgradeError, match='padding layer "p" feeds layer "r"'):
        upgrade_net(net)
