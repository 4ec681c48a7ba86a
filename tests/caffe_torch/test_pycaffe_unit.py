"""pycaffe's own unit tests (BVLC/caffe python/caffe/test/*.py) that the rest of the suite
does not already transcribe, rewritten for pytest on the engine, `import caffe` included:
same nets, same setup, same assertions. Each docstring names the pycaffe test.

Transcribed elsewhere: test_net.py's TestNet (test_net.py here: test_memory, test_layer_dict,
test_forward_start_end, test_backward_start_end, test_clear_param_diffs,
test_inputs_outputs, test_top_bottom_names, test_save_and_read, test_save_hdf5),
test_solver.py (test_solver.py: test_solve, test_apply_update, test_net_memory,
test_snapshot), test_python_layer.py and test_python_layer_with_param_str.py
(test_pycaffe_python_layer.py: test_forward, test_backward, test_reshape, test_exception,
test_parameter, test_phase, test_param_str for both of that file's cases) and
test_coord_map.py (test_coord_map.py: test_conv_pool_deconv,
test_pass_through_layers, test_padding, test_multi_bottom_conv, test_rectangular_kernel_list,
test_nd_conv, test_crop_of_crop, test_crop_helper, test_catch_unconnected,
test_catch_scale_mismatch, test_catch_negative_crop).
"""
import glob
import os
import shutil

import numpy as np
import pytest
from google.protobuf import text_format

from caffe_torch import install_as_caffe

caffe = install_as_caffe()
import caffe.draw  # noqa: E402  (pycaffe's test_draw imports it so)
from caffe import layers as L  # noqa: E402
from caffe import params as P  # noqa: E402
from caffe.proto import caffe_pb2  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(name, text):
    with open(name, 'w') as f:
        f.write(text)
    return name


# -- test_net.py ----------------------------------------------------------------------------
def simple_net_file(num_output):
    return write('simple.prototxt', """name: 'testnet' force_backward: true
    layer { type: 'DummyData' name: 'data' top: 'data' top: 'label'
      dummy_data_param { num: 5 channels: 2 height: 3 width: 4
        num: 5 channels: 1 height: 1 width: 1
        data_filler { type: 'gaussian' std: 1 }
        data_filler { type: 'constant' } } }
    layer { type: 'Convolution' name: 'conv' bottom: 'data' top: 'conv'
      convolution_param { num_output: 11 kernel_size: 2 pad: 3
        weight_filler { type: 'gaussian' std: 1 }
        bias_filler { type: 'constant' value: 2 } }
        param { decay_mult: 1 } param { decay_mult: 0 }
        }
    layer { type: 'InnerProduct' name: 'ip' bottom: 'conv' top: 'ip_blob'
      inner_product_param { num_output: """ + str(num_output) + """
        weight_filler { type: 'gaussian' std: 2.5 }
        bias_filler { type: 'constant' value: -3 } } }
    layer { type: 'SoftmaxWithLoss' name: 'loss' bottom: 'ip_blob' bottom: 'label'
      top: 'loss' }""")


def test_net_forward_backward():
    """test_net.py TestNet.test_forward_backward."""
    net = caffe.Net(simple_net_file(13), caffe.TRAIN)
    net.blobs['label'].data[...] = np.random.randint(13, size=net.blobs['label'].data.shape)
    net.forward()
    net.backward()
    assert np.isfinite(net.blobs['loss'].data).all()


LEVELS_NET = """
layer { name: "data" type: "DummyData" top: "data"
  dummy_data_param { shape { dim: 1 dim: 1 dim: 10 dim: 10 } } }
layer { name: "NoLevel" type: "InnerProduct" bottom: "data" top: "NoLevel"
  inner_product_param { num_output: 1 } }
layer { name: "Level0Only" type: "InnerProduct" bottom: "data" top: "Level0Only"
  include { min_level: 0 max_level: 0 } inner_product_param { num_output: 1 } }
layer { name: "Level1Only" type: "InnerProduct" bottom: "data" top: "Level1Only"
  include { min_level: 1 max_level: 1 } inner_product_param { num_output: 1 } }
layer { name: "Level>=0" type: "InnerProduct" bottom: "data" top: "Level>=0"
  include { min_level: 0 } inner_product_param { num_output: 1 } }
layer { name: "Level>=1" type: "InnerProduct" bottom: "data" top: "Level>=1"
  include { min_level: 1 } inner_product_param { num_output: 1 } }
"""
STAGES_NET = """
layer { name: "data" type: "DummyData" top: "data"
  dummy_data_param { shape { dim: 1 dim: 1 dim: 10 dim: 10 } } }
layer { name: "A" type: "InnerProduct" bottom: "data" top: "A" include { stage: "A" }
  inner_product_param { num_output: 1 } }
layer { name: "B" type: "InnerProduct" bottom: "data" top: "B" include { stage: "B" }
  inner_product_param { num_output: 1 } }
layer { name: "AorB" type: "InnerProduct" bottom: "data" top: "AorB"
  include { stage: "A" } include { stage: "B" } inner_product_param { num_output: 1 } }
layer { name: "AandB" type: "InnerProduct" bottom: "data" top: "AandB"
  include { stage: "A" stage: "B" } inner_product_param { num_output: 1 } }
"""
ALL_IN_ONE_NET = """
layer { name: "train_data" type: "DummyData" top: "data" top: "label"
  dummy_data_param { shape { dim: 1 dim: 1 dim: 10 dim: 10 } shape { dim: 1 dim: 1 dim: 1 dim: 1 } }
  include { phase: TRAIN stage: "train" } }
layer { name: "val_data" type: "DummyData" top: "data" top: "label"
  dummy_data_param { shape { dim: 1 dim: 1 dim: 10 dim: 10 } shape { dim: 1 dim: 1 dim: 1 dim: 1 } }
  include { phase: TEST stage: "val" } }
layer { name: "deploy_data" type: "Input" top: "data"
  input_param { shape { dim: 1 dim: 1 dim: 10 dim: 10 } }
  include { phase: TEST stage: "deploy" } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
  inner_product_param { num_output: 2 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss"
  include: { phase: TRAIN stage: "train" } include: { phase: TEST stage: "val" } }
layer { name: "pred" type: "Softmax" bottom: "ip" top: "pred"
  include: { phase: TEST stage: "deploy" } }
"""


def check_blobs(net, blobs):
    assert [b for b in net.blobs.keys() if 'data' not in b] == blobs


def test_levels_0():
    """test_net.py TestLevels.test_0."""
    net = caffe.Net(write('l.prototxt', LEVELS_NET), caffe.TEST)
    check_blobs(net, ['NoLevel', 'Level0Only', 'Level>=0'])


def test_levels_1():
    """test_net.py TestLevels.test_1."""
    net = caffe.Net(write('l.prototxt', LEVELS_NET), caffe.TEST, level=1)
    check_blobs(net, ['NoLevel', 'Level1Only', 'Level>=0', 'Level>=1'])


@pytest.mark.parametrize('stages, blobs', [
    (['A'], ['A', 'AorB']),                          # TestStages.test_A
    (['B'], ['B', 'AorB']),                          # TestStages.test_B
    (['A', 'B'], ['A', 'B', 'AorB', 'AandB']),       # TestStages.test_AandB
])
def test_stages(stages, blobs):
    """test_net.py TestStages.test_A, test_B and test_AandB."""
    net = caffe.Net(write('s.prototxt', STAGES_NET), caffe.TEST, stages=stages)
    check_blobs(net, blobs)


@pytest.mark.parametrize('phase, stage, outputs', [
    (caffe.TRAIN, 'train', ['loss']),   # TestAllInOne.test_train
    (caffe.TEST, 'val', ['loss']),      # TestAllInOne.test_val
    (caffe.TEST, 'deploy', ['pred']),   # TestAllInOne.test_deploy
])
def test_all_in_one(phase, stage, outputs):
    """test_net.py TestAllInOne.test_train, test_val and test_deploy."""
    net = caffe.Net(write('a.prototxt', ALL_IN_ONE_NET), phase, stages=[stage])
    assert list(net.blobs['data'].shape) == [1, 1, 10, 10]
    assert net.outputs == outputs


# -- test_layer_type_list.py ----------------------------------------------------------------
def test_layer_type_list_standard_types():
    """test_layer_type_list.py TestLayerTypeList.test_standard_types."""
    for type_name in ['Data', 'Convolution', 'InnerProduct']:
        assert type_name in caffe.layer_type_list(), f'{type_name} not in layer_type_list()'


# -- test_io.py -----------------------------------------------------------------------------
def test_blobproto_old_format():
    """test_io.py TestBlobProtoToArray.test_old_format."""
    data = np.zeros((10, 10))
    blob = caffe.proto.caffe_pb2.BlobProto()
    blob.data.extend(list(data.flatten()))
    shape = (1, 1, 10, 10)
    blob.num, blob.channels, blob.height, blob.width = shape
    assert caffe.io.blobproto_to_array(blob).shape == shape


def test_blobproto_new_format():
    """test_io.py TestBlobProtoToArray.test_new_format."""
    data = np.zeros((10, 10))
    blob = caffe.proto.caffe_pb2.BlobProto()
    blob.data.extend(list(data.flatten()))
    blob.shape.dim.extend(list(data.shape))
    assert caffe.io.blobproto_to_array(blob).shape == data.shape


def test_blobproto_no_shape():
    """test_io.py TestBlobProtoToArray.test_no_shape."""
    blob = caffe.proto.caffe_pb2.BlobProto()
    blob.data.extend(list(np.zeros((10, 10)).flatten()))
    with pytest.raises(ValueError):
        caffe.io.blobproto_to_array(blob)


def test_blobproto_scalar():
    """test_io.py TestBlobProtoToArray.test_scalar."""
    blob = caffe.proto.caffe_pb2.BlobProto()
    blob.data.extend(list((np.ones((1)) * 123).flatten()))
    assert caffe.io.blobproto_to_array(blob) == 123


def test_array_to_datum_label_none_size():
    """test_io.py TestArrayToDatum.test_label_none_size."""
    d1 = caffe.io.array_to_datum(np.ones((10, 10, 3)), label=1)
    d2 = caffe.io.array_to_datum(np.ones((10, 10, 3)))
    assert len(d1.SerializeToString()) > len(d2.SerializeToString())


# -- test_net_spec.py -----------------------------------------------------------------------
def lenet(batch_size):
    n = caffe.NetSpec()
    n.data, n.label = L.DummyData(shape=[dict(dim=[batch_size, 1, 28, 28]),
                                         dict(dim=[batch_size, 1, 1, 1])],
                                  transform_param=dict(scale=1. / 255), ntop=2)
    n.conv1 = L.Convolution(n.data, kernel_size=5, num_output=20,
                            weight_filler=dict(type='xavier'))
    n.pool1 = L.Pooling(n.conv1, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.conv2 = L.Convolution(n.pool1, kernel_size=5, num_output=50,
                            weight_filler=dict(type='xavier'))
    n.pool2 = L.Pooling(n.conv2, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.ip1 = L.InnerProduct(n.pool2, num_output=500, weight_filler=dict(type='xavier'))
    n.relu1 = L.ReLU(n.ip1, in_place=True)
    n.ip2 = L.InnerProduct(n.relu1, num_output=10, weight_filler=dict(type='xavier'))
    n.loss = L.SoftmaxWithLoss(n.ip2, n.label)
    return n.to_proto()


def anon_lenet(batch_size):
    data, label = L.DummyData(shape=[dict(dim=[batch_size, 1, 28, 28]),
                                     dict(dim=[batch_size, 1, 1, 1])],
                              transform_param=dict(scale=1. / 255), ntop=2)
    conv1 = L.Convolution(data, kernel_size=5, num_output=20,
                          weight_filler=dict(type='xavier'))
    pool1 = L.Pooling(conv1, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    conv2 = L.Convolution(pool1, kernel_size=5, num_output=50,
                          weight_filler=dict(type='xavier'))
    pool2 = L.Pooling(conv2, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    ip1 = L.InnerProduct(pool2, num_output=500, weight_filler=dict(type='xavier'))
    relu1 = L.ReLU(ip1, in_place=True)
    ip2 = L.InnerProduct(relu1, num_output=10, weight_filler=dict(type='xavier'))
    return L.SoftmaxWithLoss(ip2, label).to_proto()


def load_net(net_proto):
    return caffe.Net(write('spec.prototxt', str(net_proto)), caffe.TEST)


def test_net_spec_lenet():
    """test_net_spec.py TestNetSpec.test_lenet."""
    for build in (lenet, anon_lenet):
        net_proto = build(50)
        assert net_proto.layer[6].bottom == net_proto.layer[6].top  # relu in place
        assert len(load_net(net_proto).layers) == 9


def test_net_spec_zero_tops():
    """test_net_spec.py TestNetSpec.test_zero_tops."""
    n = caffe.NetSpec()
    n.data, n.data2 = L.DummyData(shape=dict(dim=3), ntop=2)
    n.silence_data = L.Silence(n.data, ntop=0)
    n.silence_data2 = L.Silence(n.data2, ntop=0)
    assert len(load_net(n.to_proto()).forward()) == 0


def test_net_spec_type_error():
    """test_net_spec.py TestNetSpec.test_type_error."""
    data = L.DummyData(ntop=2)
    with pytest.raises(TypeError,
                       match=r"^Silence input 0 is not a Top \(type is <(type|class) 'tuple'>\)$"):
        L.Silence(data, ntop=0)
    L.Silence(*data, ntop=0)


# -- test_draw.py ---------------------------------------------------------------------------
@pytest.mark.skipif(shutil.which('dot') is None, reason="Graphviz's dot is not installed")
def test_draw_net():
    """test_draw.py TestDraw.test_draw_net: every net prototxt of the tree (nets/ stands
    for models/ and examples/) drawn with rankdir LR. Rendered as SVG (the same Graphviz
    layout; rasterising 66 PNGs takes a minute), PNG in test_draw.py."""
    filenames = [f for f in glob.glob(os.path.join(ROOT, 'nets', '**', '*.prototxt'),
                                      recursive=True) if 'solver' not in f]
    assert filenames
    for filename in filenames:
        net = caffe_pb2.NetParameter()
        with open(filename) as infile:
            text_format.Merge(infile.read(), net)
        assert b'<svg' in caffe.draw.draw_net(net, 'LR', ext='svg')


# -- test_nccl.py ---------------------------------------------------------------------------
def test_nccl_newuid():
    """test_nccl.py TestNCCL.test_newuid: NCCL uids are bytes on Python 3."""
    if caffe.has_nccl():
        uid = caffe.NCCL.new_uid()
        assert isinstance(uid, bytes)
