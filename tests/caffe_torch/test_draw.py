"""caffe_torch.draw against pycaffe's draw.py: node labels, styles, edges and phase rules of
the pydot graph (always), rendering with Graphviz's dot (skipped where it is missing)."""
import glob
import os
import shutil

import pytest
from google.protobuf import text_format

import caffe_torch as caffe
from caffe_torch import draw
from caffe_torch.proto import caffe_pb2

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
needs_dot = pytest.mark.skipif(shutil.which('dot') is None, reason="Graphviz's dot missing")

NET = """name: 'drawn'
layer { name: 'data' type: 'Data' top: 'data' top: 'label' data_param { batch_size: 8 }
        include { phase: TRAIN } }
layer { name: 'input' type: 'Input' top: 'data' top: 'label' include { phase: TEST } }
layer { name: 'conv1' type: 'Convolution' bottom: 'data' top: 'conv1'
        param { lr_mult: 1 } param { lr_mult: 2 }
        convolution_param { num_output: 16 kernel_size: 3 stride: 2 pad: 1 } }
layer { name: 'relu1' type: 'ReLU' bottom: 'conv1' top: 'conv1' }
layer { name: 'pool1' type: 'Pooling' bottom: 'conv1' top: 'pool1'
        pooling_param { pool: AVE kernel_size: 2 stride: 2 } }
layer { name: 'fc' type: 'InnerProduct' bottom: 'pool1' top: 'fc'
        inner_product_param { num_output: 10 } }
layer { name: 'loss' type: 'SoftmaxWithLoss' bottom: 'fc' bottom: 'label' top: 'loss'
        exclude { phase: TEST } }
"""


def net_param(text=NET):
    return text_format.Parse(text, caffe_pb2.NetParameter())


def nodes(graph):
    return {n.get_name(): n for n in graph.get_nodes()}


def edges(graph):
    return [(e.get_source(), e.get_destination(), e.get('label')) for e in graph.get_edges()]


def test_layer_labels_and_styles_lr():
    graph = draw.get_pydot_graph(net_param(), 'LR')
    found = nodes(graph)
    conv = '"conv1\\n(Convolution)\\nkernel size: 3\\nstride: 2\\npad: 1"'
    pool = '"pool1\\n(Pooling AVE)\\nkernel size: 2\\nstride: 2\\npad: 0"'
    assert found[conv].get('fillcolor') == '#FF5050' and found[conv].get('shape') == 'record'
    assert found[pool].get('fillcolor') == '#FF9900'
    assert found['"fc\\n(InnerProduct)"'].get('fillcolor') == '#CC33FF'
    assert found['"loss\\n(SoftmaxWithLoss)"'].get('fillcolor') == '#6495ED'
    assert found['"relu1\\n(ReLU)"'].get('fillcolor') == '#90EE90'  # in place
    for blob in ('data', 'label', 'conv1', 'pool1', 'fc'):
        assert found[blob].get('shape') == 'octagon' and found[blob].get('fillcolor') == \
            '#E0E0E0'
    assert found['loss'].get_attributes() == {}  # read by no layer: plain, as pycaffe
    assert graph.get_name() == 'drawn' and graph.get('rankdir') == 'LR'


def test_edges_bottom_layer_top_with_labels():
    graph = draw.get_pydot_graph(net_param(), 'TB', phase=caffe.TRAIN)
    conv = '"conv1 (Convolution) kernel size: 3 stride: 2 pad: 1"'  # spaces for TB
    found = edges(graph)
    assert ('"data (Data)"', 'data', 'Batch 8') in found
    assert ('data', conv, '""') in found and (conv, 'conv1', '16') in found
    assert ('conv1', '"relu1 (ReLU)"', '""') in found
    assert ('"relu1 (ReLU)"', 'conv1', '""') in found
    assert ('"fc (InnerProduct)"', 'fc', '10') in found
    assert ('label', '"loss (SoftmaxWithLoss)"', '""') in found
    assert len(found) == 2 + 2 + 2 + 2 + 2 + 3
    unlabelled = draw.get_pydot_graph(net_param(), 'TB', label_edges=False)
    assert {label for _, _, label in edges(unlabelled)} == {'""'}


@pytest.mark.parametrize('phase, present, absent', [
    (caffe.TRAIN, ['"data\\n(Data)"', '"loss\\n(SoftmaxWithLoss)"'], ['"input\\n(Input)"']),
    (caffe.TEST, ['"input\\n(Input)"'], ['"data\\n(Data)"', '"loss\\n(SoftmaxWithLoss)"']),
    (None, ['"data\\n(Data)"', '"input\\n(Input)"', '"loss\\n(SoftmaxWithLoss)"'], []),
])
def test_phase_selects_layers(phase, present, absent):
    found = nodes(draw.get_pydot_graph(net_param(), 'LR', phase=phase))
    assert all(n in found for n in present) and not any(n in found for n in absent)


def test_display_lrm_and_defaults():
    graph = draw.get_pydot_graph(net_param(), 'BT', display_lrm=True)
    assert '"conv1 (Convolution) kernel size: 3 stride: 2 pad: 1 lr mult: 1.0, 2.0"' in \
        nodes(graph)
    assert '"fc (InnerProduct) lr mult: 1.0, 1.0"' in nodes(graph)
    assert draw.get_pydot_graph(caffe_pb2.NetParameter(), 'LR').get_name() == 'Net'
    layer = net_param().layer[2]
    del layer.convolution_param.kernel_size[:]
    assert draw.get_layer_label(layer, 'LR') == \
        '"conv1\\n(Convolution)\\nkernel size: 1\\nstride: 2\\npad: 1"'


def test_catch_include_and_exclude():
    net = net_param("layer { name: 'x' type: 'ReLU' include { phase: TRAIN } "
                    "exclude { phase: TEST } }")
    with pytest.raises(ValueError, match='layer x has both include and exclude'):
        draw.get_pydot_graph(net, 'LR', phase=caffe.TRAIN)


def test_raw_writes_dot_text_without_graphviz(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, 'which', lambda name: None)
    draw.draw_net_to_file(net_param(), str(tmp_path / 'net.raw'), 'LR')
    text = (tmp_path / 'net.raw').read_text()
    assert text.startswith('digraph drawn {') and 'rankdir=LR' in text
    assert text.count(' -> ') == len(draw.get_pydot_graph(net_param(), 'LR').get_edges())
    with pytest.raises(RuntimeError, match='install graphviz'):
        draw.draw_net(net_param(), 'LR', ext='png')


def repo_prototxts():
    """pycaffe's test_draw walks models/ and examples/: here nets/ (solvers left out)."""
    return sorted(p for p in glob.glob(os.path.join(ROOT, 'nets', '**', '*.prototxt'),
                                       recursive=True) if 'solver' not in p)


def test_every_repo_net_builds_a_graph():
    paths = repo_prototxts()
    assert paths
    for path in paths:
        with open(path) as f:
            net = text_format.Merge(f.read(), caffe_pb2.NetParameter())
        graph = draw.get_pydot_graph(net, 'LR')
        assert len(graph.get_edges()) == sum(len(l.bottom) + len(l.top) for l in net.layer)


@needs_dot
def test_draw_net_png_svg_and_cli(tmp_path):
    png = draw.draw_net(net_param(), 'LR')
    assert png[:8] == b'\x89PNG\r\n\x1a\n'
    draw.draw_net_to_file(net_param(), str(tmp_path / 'n.svg'), 'TB', caffe.TEST)
    svg = (tmp_path / 'n.svg').read_text()
    assert '<svg' in svg and 'input' in svg and 'SoftmaxWithLoss' not in svg
    (tmp_path / 'n.prototxt').write_text(NET)
    assert draw.main([str(tmp_path / 'n.prototxt'), str(tmp_path / 'o.png'), '--rankdir',
                      'BT', '--phase', 'TRAIN']) == 0
    assert (tmp_path / 'o.png').read_bytes()[:4] == b'\x89PNG'
    assert draw.main([str(tmp_path / 'n.prototxt'), str(tmp_path / 'o.png'), '--phase',
                      'VAL']) == 1


@needs_dot
def test_draw_fcn8s_train_net(tmp_path):
    with open(os.path.join(ROOT, 'nets', 'voc-fcn8s', 'train.prototxt')) as f:
        net = text_format.Merge(f.read(), caffe_pb2.NetParameter())
    draw.draw_net_to_file(net, str(tmp_path / 'fcn8s.png'))
    assert (tmp_path / 'fcn8s.png').stat().st_size > 10000


def test_blob_names_dot_would_misread_are_quoted():
    net = net_param("layer { name: 'a' type: 'ReLU' bottom: 'node' top: 'x:y' }")
    text = draw.get_pydot_graph(net, 'LR').to_string()
    assert '"node" -> "a\\n(ReLU)"' in text and '"a\\n(ReLU)" -> "x:y"' in text


OUTPUTS_NET = """name: 'outputs'
layer { name: 'data' type: 'Input' top: 'data' top: 'label' }
layer { name: 'conv1' type: 'Convolution' bottom: 'data' top: 'conv1'
        convolution_param { num_output: 4 kernel_size: 3 } }
layer { name: 'relu1' type: 'ReLU' bottom: 'conv1' top: 'conv1' }
layer { name: 'fc' type: 'InnerProduct' bottom: 'conv1' top: 'fc'
        inner_product_param { num_output: 3 } }
layer { name: 'loss' type: 'SoftmaxWithLoss' bottom: 'fc' bottom: 'label' top: 'loss' }
layer { name: 'accuracy' type: 'Accuracy' bottom: 'fc' bottom: 'label' top: 'accuracy' }
layer { name: 'prob' type: 'Softmax' bottom: 'fc' top: 'prob' }
layer { name: 'scaled' type: 'Power' bottom: 'prob' top: 'prob' }
"""


def test_nodes_follow_pycaffe_blob_rule():
    """Nodes, their order and attributes are pycaffe's: a blob node keeps the style of its
    last mention, an octagon as a bottom, plain (no attributes) as a top, so the outputs no
    layer reads (loss, accuracy, an in-place top) are plain."""
    graph = draw.get_pydot_graph(net_param(OUTPUTS_NET), 'LR')
    octagon = {'shape': 'octagon', 'fillcolor': '#E0E0E0', 'style': 'filled'}

    def box(color):
        return {'shape': 'record', 'fillcolor': color, 'style': 'filled'}

    expected = [
        ('"data\\n(Input)"', box('#6495ED')), ('data', octagon), ('label', octagon),
        ('"conv1\\n(Convolution)\\nkernel size: 3\\nstride: 1\\npad: 0"', box('#FF5050')),
        ('conv1', octagon), ('"relu1\\n(ReLU)"', box('#90EE90')),
        ('"fc\\n(InnerProduct)"', box('#CC33FF')), ('fc', octagon),
        ('"loss\\n(SoftmaxWithLoss)"', box('#6495ED')), ('loss', {}),
        ('"accuracy\\n(Accuracy)"', box('#6495ED')), ('accuracy', {}),
        ('"prob\\n(Softmax)"', box('#6495ED')), ('prob', {}),
        ('"scaled\\n(Power)"', box('#90EE90'))]
    assert [(n.get_name(), n.get_attributes()) for n in graph.get_nodes()] == expected
    assert ('"loss\\n(SoftmaxWithLoss)"', 'loss', '""') in edges(graph)
