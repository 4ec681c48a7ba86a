"""NetSpec DSL: layer graphs written in Python serialize to the NetParameter Caffe would read."""
import numpy as np
import pytest
from google.protobuf import text_format

from caffe_torch.errors import LayerSetupError
from caffe_torch.net_spec import (Function, NetSpec, Top, param_name_dict, to_proto,
                                  layers as L, params as P)
from caffe_torch.proto import caffe_pb2

LR = [dict(lr_mult=1, decay_mult=1), dict(lr_mult=2, decay_mult=0)]


def lenet_layers(batch_size=50):
    """LeNet as in pycaffe's test, returning its tops in declaration order."""
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
    loss = L.SoftmaxWithLoss(ip2, label)
    return [data, label, conv1, pool1, conv2, pool2, ip1, relu1, ip2, loss]


LENET_NAMES = ['data', 'label', 'conv1', 'pool1', 'conv2', 'pool2', 'ip1', 'relu1',
               'ip2', 'loss']


def lenet_spec():
    n = NetSpec()
    for name, top in zip(LENET_NAMES, lenet_layers()):
        setattr(n, name, top)
    return n


def round_trip(net):
    """Print `net` as prototxt and parse it back."""
    return text_format.Parse(text_format.MessageToString(net), caffe_pb2.NetParameter())


def layer_table(net):
    return [(l.name, l.type, list(l.bottom), list(l.top)) for l in net.layer]


def test_lenet_round_trip():
    """Named LeNet serializes to the layers, blobs and routed parameters Caffe expects."""
    net = round_trip(lenet_spec().to_proto())
    assert layer_table(net) == [
        ('data', 'DummyData', [], ['data', 'label']),
        ('conv1', 'Convolution', ['data'], ['conv1']),
        ('pool1', 'Pooling', ['conv1'], ['pool1']),
        ('conv2', 'Convolution', ['pool1'], ['conv2']),
        ('pool2', 'Pooling', ['conv2'], ['pool2']),
        ('ip1', 'InnerProduct', ['pool2'], ['ip1']),
        ('relu1', 'ReLU', ['ip1'], ['ip1']),
        ('ip2', 'InnerProduct', ['ip1'], ['ip2']),
        ('loss', 'SoftmaxWithLoss', ['ip2', 'label'], ['loss']),
    ]
    data, conv1, pool1, ip1 = net.layer[0], net.layer[1], net.layer[2], net.layer[5]
    assert [list(s.dim) for s in data.dummy_data_param.shape] == [[50, 1, 28, 28], [50, 1, 1, 1]]
    assert data.transform_param.scale == pytest.approx(1. / 255)
    assert list(conv1.convolution_param.kernel_size) == [5]
    assert conv1.convolution_param.num_output == 20
    assert conv1.convolution_param.weight_filler.type == 'xavier'
    assert pool1.pooling_param.pool == caffe_pb2.PoolingParameter.MAX
    assert (pool1.pooling_param.kernel_size, pool1.pooling_param.stride) == (2, 2)
    assert ip1.inner_product_param.num_output == 500
    assert [f.name for f, _ in net.layer[8].ListFields()] == ['name', 'type', 'bottom', 'top']


def test_anonymous_lenet_autonames():
    """Unnamed tops and layers get pycaffe's <Type><count> names, layers after their first top."""
    loss = lenet_layers()[-1]
    net = loss.to_proto()
    assert layer_table(net) == [
        ('DummyData1', 'DummyData', [], ['DummyData1', 'DummyData2']),
        ('Convolution1', 'Convolution', ['DummyData1'], ['Convolution1']),
        ('Pooling1', 'Pooling', ['Convolution1'], ['Pooling1']),
        ('Convolution2', 'Convolution', ['Pooling1'], ['Convolution2']),
        ('Pooling2', 'Pooling', ['Convolution2'], ['Pooling2']),
        ('InnerProduct1', 'InnerProduct', ['Pooling2'], ['InnerProduct1']),
        ('ReLU1', 'ReLU', ['InnerProduct1'], ['InnerProduct1']),
        ('InnerProduct2', 'InnerProduct', ['InnerProduct1'], ['InnerProduct2']),
        ('SoftmaxWithLoss1', 'SoftmaxWithLoss', ['InnerProduct2', 'DummyData2'],
         ['SoftmaxWithLoss1']),
    ]


def test_named_and_anonymous_tops_mix():
    """Assigned tops keep their NetSpec names while the rest are auto-named."""
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 3, 8, 8]))
    hidden = L.Convolution(n.data, kernel_size=3, num_output=4)
    n.out = L.Convolution(L.ReLU(hidden), kernel_size=1, num_output=2)
    assert layer_table(n.to_proto()) == [
        ('data', 'Input', [], ['data']),
        ('Convolution1', 'Convolution', ['data'], ['Convolution1']),
        ('ReLU1', 'ReLU', ['Convolution1'], ['ReLU1']),
        ('out', 'Convolution', ['ReLU1'], ['out']),
    ]


def test_fcn_like_net():
    """An FCN-style net routes python_param, convolution_param, param lists, crop and loss_param."""
    n = NetSpec()
    n.data, n.label = L.Python(module='voc_layers', layer='VOCSegDataLayer', ntop=2,
                               param_str=str(dict(split='train', seed=1337)))
    n.conv1_1 = L.Convolution(n.data, kernel_size=3, num_output=64, pad=100, param=LR)
    n.relu1_1 = L.ReLU(n.conv1_1, in_place=True)
    n.pool1 = L.Pooling(n.relu1_1, pool=P.Pooling.MAX, kernel_size=2, stride=2)
    n.score_fr = L.Convolution(n.pool1, num_output=21, kernel_size=1, pad=0, param=LR)
    n.upscore = L.Deconvolution(n.score_fr, convolution_param=dict(
        num_output=21, kernel_size=4, stride=2, bias_term=False), param=[dict(lr_mult=0)])
    n.score = L.Crop(n.upscore, n.data, crop_param=dict(axis=2, offset=[19]))
    n.loss = L.SoftmaxWithLoss(n.score, n.label,
                               loss_param=dict(ignore_label=255, normalize=False))
    net = round_trip(n.to_proto())
    assert layer_table(net) == [
        ('data', 'Python', [], ['data', 'label']),
        ('conv1_1', 'Convolution', ['data'], ['conv1_1']),
        ('relu1_1', 'ReLU', ['conv1_1'], ['conv1_1']),
        ('pool1', 'Pooling', ['conv1_1'], ['pool1']),
        ('score_fr', 'Convolution', ['pool1'], ['score_fr']),
        ('upscore', 'Deconvolution', ['score_fr'], ['upscore']),
        ('score', 'Crop', ['upscore', 'data'], ['score']),
        ('loss', 'SoftmaxWithLoss', ['score', 'label'], ['loss']),
    ]
    data, conv, _, _, _, up, crop, loss = net.layer
    assert (data.python_param.module, data.python_param.layer) == ('voc_layers', 'VOCSegDataLayer')
    assert eval(data.python_param.param_str) == dict(split='train', seed=1337)
    assert list(conv.convolution_param.pad) == [100]
    assert [(p.lr_mult, p.decay_mult) for p in conv.param] == [(1, 1), (2, 0)]
    assert up.convolution_param.bias_term is False
    assert (list(up.convolution_param.kernel_size), list(up.convolution_param.stride)) == ([4], [2])
    assert [p.lr_mult for p in up.param] == [0]
    assert (crop.crop_param.axis, list(crop.crop_param.offset)) == (2, [19])
    assert loss.loss_param.ignore_label == 255 and loss.loss_param.normalize is False


def test_silence_with_zero_tops():
    """ntop=0 returns the Function itself, whose layer has bottoms and no tops."""
    n = NetSpec()
    n.data, n.data2 = L.DummyData(shape=dict(dim=3), ntop=2)
    n.silence_data = L.Silence(n.data, ntop=0)
    n.silence_data2 = L.Silence(n.data2, ntop=0)
    assert isinstance(n.silence_data, Function)
    assert layer_table(n.to_proto()) == [
        ('data', 'DummyData', [], ['data', 'data2']),
        ('silence_data', 'Silence', ['data'], []),
        ('silence_data2', 'Silence', ['data2'], []),
    ]
    data = L.Input(shape=dict(dim=[2]))
    assert layer_table(to_proto(L.Silence(data, ntop=0))) == [
        ('Input1', 'Input', [], ['Input1']), ('Silence1', 'Silence', ['Input1'], [])]


def test_multiple_tops_tuple():
    """ntop > 1 returns a tuple of Tops indexing the same layer."""
    tops = L.DummyData(ntop=3)
    assert isinstance(tops, tuple) and len(tops) == 3 and all(isinstance(t, Top) for t in tops)
    assert [t.n for t in tops] == [0, 1, 2] and len({t.fn for t in tops}) == 1


def test_top_to_proto_matches_free_function():
    """Top.to_proto() gives the same NetParameter as to_proto(top)."""
    top = lenet_layers()[-1]
    assert top.to_proto() == to_proto(top)


def test_to_proto_shares_ancestors():
    """to_proto of several tops emits a shared ancestor once, before its consumers."""
    data = L.Input(shape=dict(dim=[1, 1, 4, 4]))
    left, right = L.ReLU(data), L.Sigmoid(data)
    assert layer_table(to_proto(left, right)) == [
        ('Input1', 'Input', [], ['Input1']),
        ('ReLU1', 'ReLU', ['Input1'], ['ReLU1']),
        ('Sigmoid1', 'Sigmoid', ['Input1'], ['Sigmoid1']),
    ]


def test_diamond_emitted_once_in_dependency_order():
    """A layer reached along two paths appears once and after every bottom it needs."""
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 2]))
    n.a = L.ReLU(n.data)
    n.b = L.TanH(n.data)
    n.sum = L.Eltwise(n.a, n.b, operation=P.Eltwise.SUM)
    net = n.to_proto()
    assert [l.name for l in net.layer] == ['data', 'a', 'b', 'sum']
    assert net.layer[3].eltwise_param.operation == caffe_pb2.EltwiseParameter.SUM


def test_repeated_fields():
    """Lists fill repeated fields, a scalar becomes a one-element list, tuples count as lists."""
    data = L.Input(shape=dict(dim=[1, 1, 9, 9, 9]))
    conv = L.Convolution(data, kernel_size=(3, 5, 1), stride=[1, 2, 1], pad=np.array([0, 1, 2]),
                         dilation=2, num_output=1, loss_weight=[0.5],
                         propagate_down=[False])
    layer = conv.to_proto().layer[-1]
    cp = layer.convolution_param
    assert (list(cp.kernel_size), list(cp.stride), list(cp.pad), list(cp.dilation)) == (
        [3, 5, 1], [1, 2, 1], [0, 1, 2], [2])
    assert list(layer.loss_weight) == [0.5] and list(layer.propagate_down) == [False]
    assert list(data.to_proto().layer[0].input_param.shape[0].dim) == [1, 1, 9, 9, 9]


def test_include_exclude_phase():
    """include/exclude take a dict (one rule) or a list of dicts (several rules)."""
    data = L.Input(shape=dict(dim=[1]), include=dict(phase=caffe_pb2.TRAIN),
                   exclude=[dict(stage='deploy'), dict(min_level=2)])
    layer = data.to_proto().layer[0]
    assert [r.phase for r in layer.include] == [caffe_pb2.TRAIN]
    assert layer.exclude[0].stage == ['deploy'] and layer.exclude[1].min_level == 2


def test_layer_level_fields_go_on_layer():
    """name, loss_weight and phase land on LayerParameter, not in the type's param."""
    data = L.Input(shape=dict(dim=[2, 3]))
    loss = L.EuclideanLoss(data, data, name='my_loss', loss_weight=2.0, phase=caffe_pb2.TEST)
    layer = loss.to_proto().layer[-1]
    assert (layer.name, list(layer.top)) == ('my_loss', ['EuclideanLoss1'])
    assert list(layer.loss_weight) == [2.0] and layer.phase == caffe_pb2.TEST


def test_message_value_is_copied():
    """A caffe_pb2 message may stand in for a dict of its fields."""
    filler = caffe_pb2.FillerParameter(type='gaussian', std=0.01)
    conv = L.Convolution(L.Input(shape=dict(dim=[1, 1, 3, 3])), kernel_size=1,
                         num_output=1, weight_filler=filler)
    assert conv.to_proto().layer[-1].convolution_param.weight_filler == filler


def test_deconvolution_keywords_go_to_convolution_param():
    """Deconvolution keywords fill convolution_param, the message Caffe reads for it."""
    up = L.Deconvolution(L.Input(shape=dict(dim=[1, 1, 3, 3])), kernel_size=4, stride=2,
                         num_output=1, bias_term=False)
    cp = up.to_proto().layer[-1].convolution_param
    assert (list(cp.kernel_size), list(cp.stride), cp.bias_term) == ([4], [2], False)


def test_params_resolve_enums():
    """P.<Type>.<VALUE> reflects caffe_pb2's <Type>Parameter enum constants."""
    assert P.Pooling.MAX == caffe_pb2.PoolingParameter.MAX
    assert P.Pooling.AVE == caffe_pb2.PoolingParameter.AVE
    assert P.Eltwise.SUM == caffe_pb2.EltwiseParameter.SUM
    assert P.Phase.TEST == caffe_pb2.TEST


def test_param_name_dict():
    """param_name_dict maps layer type names to their *_param field stems."""
    names = param_name_dict()
    assert names['Convolution'] == 'convolution'
    assert names['InnerProduct'] == 'inner_product'
    assert names['Python'] == 'python'
    assert names['Pooling'] == 'pooling'
    assert 'SoftmaxWithLoss' not in names and 'Deconvolution' not in names


def test_netspec_item_access_and_update():
    """NetSpec supports item access, keys/vals, deletion and later parameter updates."""
    n = NetSpec()
    n['data'] = L.Input(shape=dict(dim=[1, 1, 4, 4]))
    n.conv = L.Convolution(n['data'], kernel_size=3, num_output=2)
    assert n.keys() == ['data', 'conv'] and n.vals() == [n.data, n.conv]
    n.update('conv', dict(num_output=7, pad=1))
    cp = n.to_proto().layer[1].convolution_param
    assert cp.num_output == 7 and list(cp.pad) == [1]
    del n['conv']
    assert n.keys() == ['data'] and not hasattr(n, 'conv')


def test_deep_chain_serializes():
    """A chain deeper than Python's recursion limit serializes in order."""
    top = L.Input(shape=dict(dim=[1]))
    for _ in range(1500):
        top = L.ReLU(top)
    net = top.to_proto()
    assert len(net.layer) == 1501 and net.layer[-1].bottom == ['ReLU1499']


def test_catch_input_not_a_top():
    """A bottom that is not a Top (e.g. an unpacked tuple) raises pycaffe's TypeError."""
    data = L.DummyData(ntop=2)
    message = r"^Silence input 0 is not a Top \(type is <class 'tuple'>\)$"
    with pytest.raises(TypeError, match=message):
        L.Silence(data, ntop=0)
    L.Silence(*data, ntop=0)


def test_catch_wrong_value_type():
    """A value of the wrong type raises TypeError naming layer, argument, expected and got."""
    data = L.Input(shape=dict(dim=[1, 1, 4, 4]))
    with pytest.raises(TypeError, match=r"Convolution layer 'c1', argument kernel_size "
                                        r"\(convolution_param\.kernel_size\): expected uint32.*"
                                        r"got str '3'"):
        L.Convolution(data, kernel_size='3', num_output=1, name='c1')


def test_catch_unknown_argument():
    """An argument that is no field of the type's param nor of the layer raises TypeError."""
    data = L.Input(shape=dict(dim=[1, 1, 4, 4]))
    with pytest.raises(TypeError, match=r"Convolution layer got an unexpected keyword argument "
                                        r"'kernal_size'.*did you mean 'kernel_size'"):
        L.Convolution(data, kernal_size=3)


def test_catch_unknown_nested_field():
    """A misspelt key inside a dict value is reported with its full proto path."""
    data = L.Input(shape=dict(dim=[1, 1, 4, 4]))
    with pytest.raises(TypeError, match=r"argument weight_filler "
                                        r"\(convolution_param\.weight_filler\.typ\): "
                                        r"FillerParameter has no field 'typ'"):
        L.Convolution(data, kernel_size=1, weight_filler=dict(typ='xavier'))


def test_catch_out_of_range_value():
    """A value the field cannot hold raises LayerSetupError, a ValueError."""
    data = L.Input(shape=dict(dim=[1, 1, 4, 4]))
    with pytest.raises(LayerSetupError, match=r"num_output.*-1 is not a valid uint32"):
        L.Convolution(data, kernel_size=1, num_output=-1)


def test_catch_bad_update():
    """NetSpec.update checks the new arguments like a declaration does."""
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[1]))
    with pytest.raises(TypeError, match=r"Input layer got an unexpected keyword argument 'shapes'"):
        n.update('data', dict(shapes=[]))


def test_catch_tuple_assigned_to_netspec():
    """Assigning an ntop > 1 tuple to one NetSpec name raises TypeError suggesting unpacking."""
    n = NetSpec()
    with pytest.raises(TypeError, match=r"NetSpec\.data must be a Top.*unpack it"):
        n.data = L.DummyData(ntop=2)


def test_catch_missing_top():
    """Reading an unassigned name raises KeyError listing the assigned names."""
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[1]))
    with pytest.raises(KeyError, match=r"NetSpec has no top 'dat'; assigned: data"):
        n.dat


def test_catch_unknown_enum_value():
    """An unknown enum value name raises AttributeError listing the known ones."""
    with pytest.raises(AttributeError, match=r"PoolingParameter has no enum value 'MAXX'.*MAX"):
        P.Pooling.MAXX


def test_catch_negative_ntop():
    """ntop below zero raises ValueError."""
    with pytest.raises(ValueError, match=r"ntop must be >= 0; got -1"):
        L.DummyData(ntop=-1)
