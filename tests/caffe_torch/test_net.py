"""Net: pycaffe's test_net cases, Caffe's graph rules, weights files and live views."""
from collections import OrderedDict
import textwrap

import numpy as np
import pytest

import caffe_torch as caffe
from caffe_torch.errors import CaffemodelError, LayerSetupError, UnknownLayerTypeError


def simple_net_text(num_output=13):
    """pycaffe's simple_net_file: DummyData -> Convolution -> InnerProduct -> loss."""
    return textwrap.dedent(f'''
        name: 'testnet' force_backward: true
        layer {{ type: 'DummyData' name: 'data' top: 'data' top: 'label'
          dummy_data_param {{ num: 5 channels: 2 height: 3 width: 4
            num: 5 channels: 1 height: 1 width: 1
            data_filler {{ type: 'gaussian' std: 1 }}
            data_filler {{ type: 'constant' }} }} }}
        layer {{ type: 'Convolution' name: 'conv' bottom: 'data' top: 'conv'
          convolution_param {{ num_output: 11 kernel_size: 2 pad: 3
            weight_filler {{ type: 'gaussian' std: 1 }}
            bias_filler {{ type: 'constant' value: 2 }} }}
          param {{ decay_mult: 1 }} param {{ decay_mult: 0 }} }}
        layer {{ type: 'InnerProduct' name: 'ip' bottom: 'conv' top: 'ip_blob'
          inner_product_param {{ num_output: {num_output}
            weight_filler {{ type: 'gaussian' std: 2.5 }}
            bias_filler {{ type: 'constant' value: -3 }} }} }}
        layer {{ type: 'SoftmaxWithLoss' name: 'loss' bottom: 'ip_blob' bottom: 'label'
          top: 'loss' }}''')


@pytest.fixture
def net_file(tmp_path):
    caffe.set_random_seed(1701)
    path = tmp_path / 'net.prototxt'
    path.write_text(simple_net_text())
    return str(path)


@pytest.fixture
def net(net_file):
    net = caffe.Net(net_file, caffe.TRAIN)
    # fill in valid labels
    net.blobs['label'].data[...] = np.random.RandomState(0).randint(
        13, size=net.blobs['label'].data.shape)
    return net


def test_memory(net_file):
    """Blobs and params stay usable after the Net that made them is gone."""
    net = caffe.Net(net_file, caffe.TRAIN)
    params = sum(map(list, net.params.values()), [])
    blobs = list(net.blobs.values())
    del net
    total = sum(p.data.sum() + p.diff.sum() for p in params)
    total += sum(b.data.sum() + b.diff.sum() for b in blobs)
    assert np.isfinite(total)


def test_layer_dict(net):
    """layer_dict maps each layer name to the layer, in net order."""
    assert list(net.layer_dict) == list(net._layer_names) == ['data', 'conv', 'ip', 'loss']
    assert all(net.layer_dict[n] is layer for n, layer in zip(net._layer_names, net.layers))
    assert net.layer_dict['conv'].type == 'Convolution'


def test_forward_start_end(net):
    """forward(start, end) runs just that range and returns the end layer's tops."""
    conv, ip = net.blobs['conv'], net.blobs['ip_blob']
    sample = np.random.RandomState(1).uniform(size=conv.data.shape)
    conv.data[...] = sample
    out = net.forward(start='ip', end='ip')
    assert 'ip_blob' in out
    w, b = net.params['ip'][0].data, net.params['ip'][1].data
    manual = sample.reshape(5, -1) @ w.T + b
    np.testing.assert_allclose(ip.data, manual, rtol=1e-4, atol=1e-4)


def test_backward_start_end(net):
    """backward(start, end) runs just that range and returns the end layer's bottoms."""
    conv, ip = net.blobs['conv'], net.blobs['ip_blob']
    sample = np.random.RandomState(2).uniform(size=ip.data.shape)
    ip.diff[...] = sample
    out = net.backward(start='ip', end='ip')
    assert 'conv' in out
    manual = (sample @ net.params['ip'][0].data).reshape(conv.diff.shape)
    np.testing.assert_allclose(conv.diff, manual, rtol=1e-4, atol=1e-4)


def test_clear_param_diffs(net):
    """Param diffs accumulate over backward calls until clear_param_diffs zeroes them."""
    net.forward()
    net.backward()
    once = net.params['conv'][0].diff.copy()
    assert np.abs(once).sum() > 0
    net.backward()
    np.testing.assert_allclose(net.params['conv'][0].diff, 2 * once, rtol=1e-5)
    net.clear_param_diffs()
    assert all((p.diff == 0).all() for ps in net.params.values() for p in ps)


def test_bottom_diffs_are_overwritten(net):
    """A second backward gives the same bottom diff, not twice it."""
    net.forward()
    net.backward()
    once = net.blobs['conv'].diff.copy()
    net.backward()
    np.testing.assert_array_equal(net.blobs['conv'].diff, once)


def test_inputs_outputs(net):
    """A DummyData net has no inputs and the unconsumed loss as output."""
    assert net.inputs == [] and net.outputs == ['loss']


def test_top_bottom_names(net):
    """top_names and bottom_names map layers to blob names in order."""
    assert net.top_names == OrderedDict([('data', ['data', 'label']), ('conv', ['conv']),
                                         ('ip', ['ip_blob']), ('loss', ['loss'])])
    assert net.bottom_names == OrderedDict([('data', []), ('conv', ['data']),
                                            ('ip', ['conv']), ('loss', ['ip_blob', 'label'])])


def test_blob_loss_weights(net):
    """Only the loss top carries a loss weight, 1 by default for loss layers."""
    assert net.blob_loss_weights == OrderedDict(
        [('data', 0), ('label', 0), ('conv', 0), ('ip_blob', 0), ('loss', 1)])


def test_save_and_read(net, net_file, tmp_path):
    """A saved caffemodel loads back through both constructor forms and copy_from."""
    path = str(tmp_path / 'w.caffemodel')
    net.save(path)
    for other in (caffe.Net(net_file, path, caffe.TRAIN),
                  caffe.Net(net_file, caffe.TRAIN, weights=path)):
        for name in net.params:
            for a, b in zip(net.params[name], other.params[name]):
                np.testing.assert_array_equal(a.data, b.data)


def test_save_hdf5(net, net_file, tmp_path):
    """save_hdf5 then load_hdf5 reproduces every parameter."""
    path = str(tmp_path / 'w.h5')
    net.save_hdf5(path)
    other = caffe.Net(net_file, caffe.TRAIN)
    other.load_hdf5(path)
    for name in net.params:
        for a, b in zip(net.params[name], other.params[name]):
            np.testing.assert_array_equal(a.data, b.data)


def test_share_with(net, net_file):
    """share_with makes same-named params one memory: writes show in both nets."""
    other = caffe.Net(net_file, caffe.TEST)
    other.share_with(net)
    net.params['ip'][0].data[...] = 0.25
    assert (other.params['ip'][0].data == 0.25).all()


def test_live_views(net):
    """A data view taken before forward shows that forward's result; writes are seen."""
    view = net.blobs['ip_blob'].data
    net.blobs['conv'].data[...] = 0.5
    net.forward(start='ip')
    before = view.copy()
    net.params['ip'][1].data[...] += 1.0
    net.forward(start='ip')
    np.testing.assert_allclose(view, before + 1.0, rtol=1e-5, atol=1e-5)
    net.blobs['conv'].data[...] = 0
    net.forward(start='ip', end='ip')
    np.testing.assert_allclose(view, np.broadcast_to(net.params['ip'][1].data, view.shape))


def test_catch_shape_mismatch_on_copy(net, tmp_path):
    """copy_from into a layer of another shape names the layer and both shapes."""
    path = str(tmp_path / 'w.caffemodel')
    net.save(path)
    other_file = tmp_path / 'other.prototxt'
    other_file.write_text(simple_net_text(num_output=7))
    other = caffe.Net(str(other_file), caffe.TRAIN)
    with pytest.raises(CaffemodelError, match=r'param 0 weights from layer "ip".*'
                                              r'\(13, 792\).*\(7, 792\).*rename the layer'):
        other.copy_from(path)


@pytest.mark.parametrize('write_diff', [False, True])
def test_save_writes_the_bytes_protobuf_writes(net, tmp_path, write_diff):
    """The caffemodel, written from the arrays' buffers, is byte for byte what protobuf
    writes from a NetParameter filled value by value (Net::ToProto)."""
    for blobs in net.params.values():
        for blob in blobs:
            blob.diff[...] = np.random.default_rng(4).standard_normal(blob.shape)
    reference = caffe.proto.caffe_pb2.NetParameter(name=net.name)
    for layer in net.layers:
        layer_param = reference.layer.add()
        layer_param.CopyFrom(layer.layer_param)
        del layer_param.blobs[:]
        for blob in layer.blobs:
            proto = layer_param.blobs.add()
            proto.shape.dim.extend(blob.shape)
            proto.data.extend(blob.data.ravel().tolist())
            if write_diff:
                proto.diff.extend(blob.diff.ravel().tolist())
    net.save(str(tmp_path / 'w.caffemodel'), write_diff=write_diff)
    assert (tmp_path / 'w.caffemodel').read_bytes() == reference.SerializeToString()


def test_failed_copy_leaves_the_net_as_it_was(tmp_path):
    """A file whose second layer does not fit is refused before any layer is copied, so
    the net is not left half loaded (Caffe checks as it copies, and aborts)."""
    text = simple_net_text(num_output=7)
    (tmp_path / 'a.prototxt').write_text(text)
    caffe.set_random_seed(1)
    source = caffe.Net(str(tmp_path / 'a.prototxt'), caffe.TRAIN)
    source.save(str(tmp_path / 'a.caffemodel'))
    (tmp_path / 'c.prototxt').write_text(simple_net_text(num_output=9))
    caffe.set_random_seed(2)
    target = caffe.Net(str(tmp_path / 'c.prototxt'), caffe.TRAIN)
    before = {name: [b.data.copy() for b in blobs] for name, blobs in target.params.items()}
    assert not np.array_equal(before['conv'][0], source.params['conv'][0].data)
    with pytest.raises(CaffemodelError, match=r'layer "ip"'):
        target.copy_from(str(tmp_path / 'a.caffemodel'))
    for name, blobs in target.params.items():
        for blob, old in zip(blobs, before[name]):
            np.testing.assert_array_equal(blob.data, old)


def test_catch_damaged_hdf5_names_the_file(net, tmp_path):
    path = tmp_path / 'w.caffemodel.h5'
    path.write_bytes(b'\x89HDF\r\n\x1a\n damaged')
    with pytest.raises(CaffemodelError, match=r'w\.caffemodel\.h5: not a readable HDF5 '):
        net.copy_from(str(path))


def _net(tmp_path, text, *args, **kwargs):
    path = tmp_path / 'n.prototxt'
    path.write_text(textwrap.dedent(text))
    return caffe.Net(str(path), *args, **kwargs)


STATES = '''
    layer { name: 'data' type: 'DummyData' top: 'data'
            dummy_data_param { shape { dim: 1 dim: 10 } } }
    layer { name: 'NoLevel' type: 'InnerProduct' bottom: 'data' top: 'NoLevel'
            inner_product_param { num_output: 1 } }
    layer { name: 'Level0Only' type: 'InnerProduct' bottom: 'data' top: 'Level0Only'
            include { min_level: 0 max_level: 0 } inner_product_param { num_output: 1 } }
    layer { name: 'Level1Only' type: 'InnerProduct' bottom: 'data' top: 'Level1Only'
            include { min_level: 1 max_level: 1 } inner_product_param { num_output: 1 } }
    layer { name: 'AorB' type: 'InnerProduct' bottom: 'data' top: 'AorB'
            include { stage: 'A' } include { stage: 'B' } inner_product_param { num_output: 1 } }
    layer { name: 'AandB' type: 'InnerProduct' bottom: 'data' top: 'AandB'
            include { stage: 'A' stage: 'B' } inner_product_param { num_output: 1 } }
    layer { name: 'NotTest' type: 'InnerProduct' bottom: 'data' top: 'NotTest'
            exclude { phase: TEST } inner_product_param { num_output: 1 } }
    layer { name: 'NotA' type: 'InnerProduct' bottom: 'data' top: 'NotA'
            include { not_stage: 'A' } inner_product_param { num_output: 1 } }
'''


@pytest.mark.parametrize('phase, level, stages, expected', [
    (caffe.TRAIN, 0, [], ['NoLevel', 'Level0Only', 'NotTest', 'NotA']),
    (caffe.TEST, 1, [], ['NoLevel', 'Level1Only', 'NotA']),
    (caffe.TEST, 0, ['A'], ['NoLevel', 'Level0Only', 'AorB']),
    (caffe.TEST, 0, ['B'], ['NoLevel', 'Level0Only', 'AorB', 'NotA']),
    (caffe.TEST, 0, ['A', 'B'], ['NoLevel', 'Level0Only', 'AorB', 'AandB']),
])
def test_phase_level_stage_filtering(tmp_path, phase, level, stages, expected):
    """include/exclude rules select layers by phase, level and stages (pycaffe's tests)."""
    net = _net(tmp_path, STATES, phase, level=level, stages=stages)
    assert net.outputs == sorted(expected)


def test_in_place_layers_share_one_blob(tmp_path):
    """A top named like its bottom is computed in place: one blob, final value."""
    net = _net(tmp_path, '''
        force_backward: true
        layer { name: 'x' type: 'Input' top: 'x' input_param { shape { dim: 2 dim: 3 } } }
        layer { name: 'relu' type: 'ReLU' bottom: 'x' top: 'x' }
        layer { name: 'power' type: 'Power' bottom: 'x' top: 'x' power_param { scale: 3 } }''',
               caffe.TRAIN)
    assert list(net.blobs) == ['x'] and net.inputs == ['x'] and net.outputs == ['x']
    x = np.array([[-1, 2, -3], [4, -5, 6]], np.float32)
    out = net.forward(x=x)
    np.testing.assert_allclose(out['x'], 3 * np.maximum(x, 0))
    grad = net.backward(x=np.ones((2, 3), np.float32))['x']
    # Caffe's in-place Power writes dy/dx over the top diff it then multiplies by, so the
    # diff is (dy/dx)^2 = 9, not 3 (the inplace_chain golden case records the same).
    np.testing.assert_allclose(grad, 9 * (x > 0))


def test_loss_weight_on_any_top(tmp_path):
    """loss_weight makes a non-loss top part of the loss and seeds its diff."""
    net = _net(tmp_path, '''
        layer { name: 'x' type: 'Input' top: 'x' input_param { shape { dim: 4 } } }
        layer { name: 'p' type: 'Power' bottom: 'x' top: 'y' loss_weight: 0.5
                power_param { power: 2 } }''', caffe.TRAIN)
    x = np.array([1, 2, 3, 4], np.float32)
    net.blobs['x'].data[...] = x
    assert net.forward_from_to(0, 1) == pytest.approx(0.5 * (x ** 2).sum())
    assert net.blob_loss_weights['y'] == 0.5


def test_split_sums_diffs(tmp_path):
    """A blob read by two layers gets a Split whose backward sums both diffs."""
    net = _net(tmp_path, '''
        force_backward: true
        layer { name: 'x' type: 'Input' top: 'x' input_param { shape { dim: 3 } } }
        layer { name: 'a' type: 'Power' bottom: 'x' top: 'a' power_param { scale: 2 } }
        layer { name: 'b' type: 'Power' bottom: 'x' top: 'b' power_param { scale: -5 } }''',
               caffe.TRAIN)
    assert net.top_names['x_x_0_split'] == ['x_x_0_split_0', 'x_x_0_split_1']
    net.forward(x=np.ones(3, np.float32))
    grad = net.backward(a=np.ones(3, np.float32), b=np.ones(3, np.float32))['x']
    np.testing.assert_allclose(grad, [-3, -3, -3])


def test_split_of_a_consumed_loss_top_weighs_its_first_top_only(tmp_path):
    """A loss-weighted top that a layer also reads gets a Split with one loss_weight per
    top, the weight on top 0 and 0 on the rest (Caffe's ConfigureSplitLayer). Silence
    zeroes the diff of the top it reads, so x gets only the loss's gradient:
    dE/dx = 2 * (1 - tanh(x)^2)."""
    net = _net(tmp_path, '''
        force_backward: true
        layer { name: 'x' type: 'Input' top: 'x' input_param { shape { dim: 3 } } }
        layer { name: 'use' type: 'TanH' bottom: 'x' top: 'use' loss_weight: 2 }
        layer { name: 'quiet' type: 'Silence' bottom: 'use' }''', caffe.TRAIN)
    assert net.top_names['use_use_0_split'] == ['use_use_0_split_0', 'use_use_0_split_1']
    assert net.blob_loss_weights['use_use_0_split_0'] == 2
    assert net.blob_loss_weights['use_use_0_split_1'] == 0
    x = np.array([-1.5, 0.25, 2.0], np.float32)
    y = np.tanh(x.astype(np.float64))
    net.blobs['x'].data[...] = x
    assert net.forward_from_to(0, 2) == pytest.approx(2 * y.sum(), rel=1e-6)
    net.backward()
    np.testing.assert_allclose(net.blobs['x'].diff, 2 * (1 - y ** 2), rtol=1e-6)


def test_propagate_down_false_skips_bottom(tmp_path):
    """propagate_down: false leaves that bottom's diff and the branch above it untouched."""
    net = _net(tmp_path, '''
        layer { name: 'x' type: 'Input' top: 'x' top: 'y'
                input_param { shape { dim: 1 dim: 2 } shape { dim: 1 dim: 2 } } }
        layer { name: 'ax' type: 'InnerProduct' bottom: 'x' top: 'ax'
                inner_product_param { num_output: 2 weight_filler { type: 'constant' value: 1 } } }
        layer { name: 'ay' type: 'InnerProduct' bottom: 'y' top: 'ay'
                inner_product_param { num_output: 2 weight_filler { type: 'constant' value: 1 } } }
        layer { name: 'loss' type: 'EuclideanLoss' bottom: 'ax' bottom: 'ay' top: 'loss'
                propagate_down: true propagate_down: false }''', caffe.TRAIN)
    net.forward(x=np.array([[1., 2.]], np.float32), y=np.array([[0., 0.]], np.float32))
    net.backward()
    assert np.abs(net.blobs['ax'].diff).sum() > 0
    assert np.abs(net.params['ax'][0].diff).sum() > 0
    assert (net.blobs['ay'].diff == 0).all() and (net.params['ay'][0].diff == 0).all()
    assert net.layer_need_backward == [False, True, False, True]


def test_shared_params_by_name(tmp_path):
    """Layers naming the same param share data and accumulate into one diff."""
    net = _net(tmp_path, '''
        force_backward: true
        layer { name: 'x' type: 'Input' top: 'x' input_param { shape { dim: 1 dim: 2 } } }
        layer { name: 'ip1' type: 'InnerProduct' bottom: 'x' top: 'y1'
                param { name: 'w' } inner_product_param { num_output: 2 bias_term: false } }
        layer { name: 'ip2' type: 'InnerProduct' bottom: 'x' top: 'y2'
                param { name: 'w' } inner_product_param { num_output: 2 bias_term: false } }''',
               caffe.TRAIN)
    net.params['ip1'][0].data[...] = [[1, 2], [3, 4]]
    assert (net.params['ip2'][0].data == [[1, 2], [3, 4]]).all()
    assert len(net.learnable_params) == 1
    net.forward(x=np.array([[1., 1.]], np.float32))
    net.backward(y1=np.ones((1, 2), np.float32), y2=np.ones((1, 2), np.float32))
    np.testing.assert_allclose(net.params['ip1'][0].diff, 2 * np.ones((2, 2)))


def test_catch_unknown_layer_type(tmp_path):
    """An unknown type names the file, the layer and suggests the right type."""
    with pytest.raises(UnknownLayerTypeError, match=r'n\.prototxt: layer "c" has unknown type '
                                                    r'"Convolutoin". Did you mean Convolution'):
        _net(tmp_path, "layer { name: 'c' type: 'Convolutoin' }", caffe.TEST)


def test_catch_unknown_bottom(tmp_path):
    """A bottom no layer produces names the blob, the layer and the index."""
    with pytest.raises(LayerSetupError, match=r'layer "r" reads unknown bottom blob "nope" \(bottom index 0\)'):
        _net(tmp_path, "layer { name: 'r' type: 'ReLU' bottom: 'nope' top: 'r' }", caffe.TEST)


def test_catch_wrong_bottom_count(tmp_path):
    """A layer given the wrong number of bottoms says how many it takes."""
    with pytest.raises(LayerSetupError, match=r'layer "e" \(EuclideanLoss\).*2 bottom'):
        _net(tmp_path, '''
            layer { name: 'x' type: 'Input' top: 'x' input_param { shape { dim: 2 } } }
            layer { name: 'e' type: 'EuclideanLoss' bottom: 'x' top: 'l' }''', caffe.TEST)


def test_catch_duplicate_top(tmp_path):
    """Two layers producing one top name is an error naming the blob."""
    with pytest.raises(LayerSetupError, match='"a" of layer "b" is produced by multiple'):
        _net(tmp_path, '''
            layer { name: 'x' type: 'Input' top: 'x' input_param { shape { dim: 2 } } }
            layer { name: 'a' type: 'ReLU' bottom: 'x' top: 'a' }
            layer { name: 'b' type: 'ReLU' bottom: 'x' top: 'a' }''', caffe.TEST)


def test_catch_too_many_param_specs(tmp_path):
    """More `param` entries than parameter blobs is refused."""
    with pytest.raises(LayerSetupError, match='gives 3 param specs but has 2'):
        _net(tmp_path, '''
            layer { name: 'x' type: 'Input' top: 'x' input_param { shape { dim: 1 dim: 2 } } }
            layer { name: 'ip' type: 'InnerProduct' bottom: 'x' top: 'y'
                    param {} param {} param {} inner_product_param { num_output: 1 } }''',
                 caffe.TEST)


def test_catch_bad_phase(net_file):
    """The phase must be TRAIN or TEST."""
    with pytest.raises(ValueError, match='caffe.TRAIN'):
        caffe.Net(net_file, 'train')


def test_net_keeps_the_prototxt_stages(tmp_path):
    """Net(file, phase, stages=...) adds to the stages the file's NetState names."""
    net = _net(tmp_path, "state { stage: 'A' }\n" + STATES, caffe.TEST, stages=['B'])
    assert net.outputs == sorted(['NoLevel', 'Level0Only', 'AorB', 'AandB'])


def test_net_from_netparameter_keeps_its_state():
    """A NetParameter with no phase argument is built in the state it carries."""
    param = caffe.caffe_pb2.NetParameter()
    from google.protobuf import text_format
    text_format.Merge(STATES, param)
    param.state.phase, param.state.level = caffe.TEST, 1
    assert caffe.Net(param).outputs == sorted(['NoLevel', 'Level1Only', 'NotA'])


def test_loss_layer_without_top_gets_an_automatic_one(tmp_path):
    """Caffe's AutoTopBlobs: a loss layer given no top still has its loss blob, listed as
    "(automatic)" in net.blobs, counted in the loss, and not a net output."""
    net = _net(tmp_path, '''
        force_backward: true
        layer { name: "in" type: "Input" top: "x" top: "y"
                input_param { shape { dim: 2 dim: 3 } shape { dim: 2 } } }
        layer { name: "loss" type: "SoftmaxWithLoss" bottom: "x" bottom: "y" }''',
               caffe.TRAIN)
    x = np.array([[1., 2., 0.5], [0., -1., 3.]])
    net.blobs['x'].data[...], net.blobs['y'].data[...] = x, [1, 2]
    assert list(net.blobs) == ['x', 'y', '(automatic)'] and net.outputs == []
    assert net.forward() == {}
    p = np.exp(x) / np.exp(x).sum(1, keepdims=True)
    want = -(np.log(p[0, 1]) + np.log(p[1, 2])) / 2
    assert np.isclose(net.blobs['(automatic)'].data, want, rtol=1e-6)
    net.backward()
    onehot = np.eye(3)[[1, 2]]
    assert np.allclose(net.blobs['x'].diff, (p - onehot) / 2, atol=1e-7)


def test_batchnorm_counts_as_needing_backward(tmp_path):
    """BatchNorm adds `lr_mult: 0` to its own copy of the layer parameter; as in Net::Init,
    whether its blobs need diffs comes from the net's copy (no spec: they do), so its
    backward runs and writes its bottom's diff even where no layer below needs it, and
    its blobs still have learning rate 0."""
    text = '''
        layer { name: "in" type: "Input" top: "z" top: "t"
                input_param { shape { dim: 4 dim: 2 } shape { dim: 4 dim: 2 } } }
        layer { name: "bn" type: "BatchNorm" bottom: "z" top: "bz" }
        layer { name: "loss" type: "EuclideanLoss" bottom: "bz" bottom: "t" }'''
    rng = np.random.RandomState(0)
    z, t = rng.randn(4, 2), rng.randn(4, 2)
    diffs = []
    for force in ('', 'force_backward: true'):
        net = _net(tmp_path, force + text, caffe.TRAIN)
        net.blobs['z'].data[...], net.blobs['t'].data[...] = z, t
        net.forward()
        net.backward()
        diffs.append(net.blobs['z'].diff.copy())
        assert net.params_lr[-3:] == [0.0, 0.0, 0.0]
    assert np.abs(diffs[0]).sum() > 0
    assert np.array_equal(diffs[0], diffs[1])
