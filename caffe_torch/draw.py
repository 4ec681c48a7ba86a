"""Net drawing, pycaffe's caffe.draw and python/draw_net.py: a NetParameter as a Graphviz
graph (pydot), one box per layer, one node per blob, edges bottom -> layer -> top.

    python -m caffe_torch.draw nets/voc-fcn8s/train.prototxt fcn8s.png [--rankdir LR]
                               [--phase TRAIN|TEST|ALL] [--display_lrm]

Layer boxes read as pycaffe labels them: name, (type) (Pooling adds its method), and for
Convolution, Deconvolution and Pooling "kernel size", "stride" and "pad" (the first value
of each repeated field), one per line for rankdir LR, space-separated for TB and BT;
--display_lrm adds the learning-rate multipliers of Convolution/Deconvolution/InnerProduct.
Colours as pycaffe: convolutions #FF5050, pooling #FF9900, inner products #CC33FF, other
layers #6495ED, in-place layers #90EE90, blobs #E0E0E0. The edge out of a Data layer reads
"Batch N", out of a Convolution, Deconvolution or InnerProduct its num_output.

Building the graph needs only pydot; rendering it (PNG, SVG, PDF...) needs Graphviz's `dot`
program. A '.raw' file name writes the DOT text itself, as pycaffe documents.
A blob is styled by its last mention, as pycaffe does: a grey octagon where it is last read
as a bottom, a plain node (Graphviz's ellipse) where it is last written as a top, so the
outputs no layer reads (loss, accuracy, a last in-place top) are drawn plain.
"""
import argparse
import shutil
import sys

import pydot
from google.protobuf import text_format

from caffe_torch.proto import caffe_pb2

LAYER_STYLE_DEFAULT = {'shape': 'record', 'fillcolor': '#6495ED', 'style': 'filled'}
NEURON_LAYER_STYLE = {'shape': 'record', 'fillcolor': '#90EE90', 'style': 'filled'}
BLOB_STYLE = {'shape': 'octagon', 'fillcolor': '#E0E0E0', 'style': 'filled'}
LEARNING_LAYERS = ('Convolution', 'Deconvolution', 'InnerProduct')


def get_pooling_types_dict():
    """{PoolMethod number: name}, e.g. {0: 'MAX', 1: 'AVE', 2: 'STOCHASTIC'}."""
    desc = caffe_pb2.PoolingParameter.PoolMethod.DESCRIPTOR
    return {v.number: name for name, v in desc.values_by_name.items()}


def get_edge_label(layer):
    """The label of the edges out of `layer`: batch size or num_output, else empty."""
    if layer.type == 'Data':
        return 'Batch ' + str(layer.data_param.batch_size)
    if layer.type in ('Convolution', 'Deconvolution'):
        return str(layer.convolution_param.num_output)
    if layer.type == 'InnerProduct':
        return str(layer.inner_product_param.num_output)
    return '""'


def get_layer_lr_mult(layer):
    """(weights' lr_mult, biases' lr_mult) of a learning layer; 1.0 where not given."""
    if layer.type not in LEARNING_LAYERS:
        raise ValueError(f'{layer.type} layers do not have a learning rate multiplier')
    params = layer.param
    if len(params) > 2:
        raise ValueError('Could not parse the learning rate multiplier')
    mults = [p.lr_mult for p in params] + [1.0] * (2 - len(params))
    return tuple(mults)


def get_layer_label(layer, rankdir, display_lrm=False):
    """The quoted node label of `layer`: name, (type), spatial parameters, lr mults."""
    separator = ' ' if rankdir in ('TB', 'BT') else r'\n'
    descriptors = [layer.name]
    if layer.type == 'Pooling':
        kind = get_pooling_types_dict()[layer.pooling_param.pool]
        descriptors.append(f'({layer.type} {kind})')
    else:
        descriptors.append(f'({layer.type})')
    if layer.type in ('Convolution', 'Deconvolution', 'Pooling'):
        if layer.type == 'Pooling':
            p = layer.pooling_param
            kernel, stride, pad = p.kernel_size, p.stride, p.pad
        else:
            p = layer.convolution_param
            kernel = p.kernel_size[0] if len(p.kernel_size) else 1
            stride = p.stride[0] if len(p.stride) else 1
            pad = p.pad[0] if len(p.pad) else 0
        descriptors.append(separator.join([f'kernel size: {kernel:d}', f'stride: {stride:d}',
                                           f'pad: {pad:d}']))
    if display_lrm and layer.type in LEARNING_LAYERS:
        lrm0, lrm1 = get_layer_lr_mult(layer)
        if lrm0 or lrm1:
            descriptors.append(f'lr mult: {lrm0:.1f}, {lrm1:.1f}')
    return '"%s"' % separator.join(descriptors)


def choose_color_by_layertype(layertype):
    if layertype in ('Convolution', 'Deconvolution'):
        return '#FF5050'
    if layertype == 'Pooling':
        return '#FF9900'
    if layertype == 'InnerProduct':
        return '#CC33FF'
    return '#6495ED'


def _included(layer, phase):
    """pycaffe's phase rule: included unless an include names another phase only, or an
    exclude names this phase. Levels and stages are not considered."""
    if phase is None:
        return True
    if len(layer.include) and len(layer.exclude):
        raise ValueError(f'layer {layer.name} has both include and exclude specified.')
    included = not len(layer.include)
    for rule in layer.include:
        included = included or rule.phase == phase
    for rule in layer.exclude:
        included = included and rule.phase != phase
    return included


def get_pydot_graph(caffe_net, rankdir, label_edges=True, phase=None, display_lrm=False):
    """The pydot.Dot of `caffe_net` (a NetParameter): layers of `phase` (caffe.TRAIN,
    caffe.TEST, or None for all), laid out in direction `rankdir` (LR, TB, BT, RL)."""
    graph = pydot.Dot(caffe_net.name if caffe_net.name else 'Net', graph_type='digraph',
                      rankdir=rankdir)
    nodes, edges = {}, []
    for layer in caffe_net.layer:
        if not _included(layer, phase):
            continue
        label = get_layer_label(layer, rankdir, display_lrm=display_lrm)
        node_name = f'{layer.name}_{layer.type}'
        in_place = (len(layer.bottom) == 1 and len(layer.top) == 1 and
                    layer.bottom[0] == layer.top[0])
        if in_place:
            style = dict(NEURON_LAYER_STYLE)
        else:
            style = dict(LAYER_STYLE_DEFAULT, fillcolor=choose_color_by_layertype(layer.type))
        nodes[node_name] = pydot.Node(label, **style)
        for bottom in layer.bottom:
            nodes[bottom + '_blob'] = pydot.Node(_blob_name(bottom), **BLOB_STYLE)
            edges.append((bottom + '_blob', node_name, '""'))
        for top in layer.top:
            nodes[top + '_blob'] = pydot.Node(_blob_name(top))
            edges.append((node_name, top + '_blob',
                          get_edge_label(layer) if label_edges else '""'))
    for node in nodes.values():
        graph.add_node(node)
    for src, dst, label in edges:
        graph.add_edge(pydot.Edge(nodes[src], nodes[dst], label=label))
    return graph


DOT_KEYWORDS = ('node', 'edge', 'graph', 'digraph', 'subgraph', 'strict')


def _blob_name(name):
    """A blob's node name; quoted where pydot would leave it unquoted and Graphviz read it
    otherwise ('a:b' names port b of a; a blob called 'node' would vanish)."""
    if name.startswith('"') or not (':' in name or name.lower() in DOT_KEYWORDS):
        return name
    return f'"{name}"'


def draw_net(caffe_net, rankdir, ext='png', phase=None, display_lrm=False):
    """The net drawn in format `ext` (png, svg, pdf, ... as Graphviz writes them; 'raw'
    gives the DOT text), as bytes."""
    graph = get_pydot_graph(caffe_net, rankdir, phase=phase, display_lrm=display_lrm)
    if ext == 'raw':
        return graph.to_string().encode('utf-8')
    if shutil.which(graph.prog if isinstance(graph.prog, str) else 'dot') is None:
        raise RuntimeError(
            f'Drawing a net as {ext} needs Graphviz\'s "dot" program, which is not on PATH: '
            f'install graphviz (apt-get install graphviz, brew install graphviz or conda '
            f'install graphviz), or write the DOT text with a ".raw" file name.')
    return graph.create(format=ext)


def draw_net_to_file(caffe_net, filename, rankdir='LR', phase=None, display_lrm=False):
    """Draw the net into `filename`, in the format its extension names ('.raw': DOT
    text)."""
    ext = filename[filename.rfind('.') + 1:]
    data = draw_net(caffe_net, rankdir, ext, phase, display_lrm)
    with open(filename, 'wb') as f:
        f.write(data)


def get_args_parser():
    parser = argparse.ArgumentParser(description='Draw a network graph (python/draw_net.py)')
    parser.add_argument('input_net_proto_file', help='Input network prototxt file')
    parser.add_argument('output_image_file', help='Output image file')
    parser.add_argument('--rankdir', default='LR',
                        help='One of TB (top-bottom, i.e., vertical), RL (right-left, i.e., '
                             'horizontal), see https://www.graphviz.org/doc/info/attrs.html'
                             '#k:rankdir for more')
    parser.add_argument('--phase', default='ALL',
                        help='Which network phase to draw: can be TRAIN, TEST, or ALL. If '
                             'ALL, then all layers are drawn regardless of phase.')
    parser.add_argument('--display_lrm', action='store_true',
                        help='Use this flag to visualize the learning rate multiplier, when '
                             'non-zero, for the learning layers (Convolution, '
                             'Deconvolution, InnerProduct).')
    return parser


def main(argv=None):
    args = get_args_parser().parse_args(argv)
    phases = {'TRAIN': caffe_pb2.TRAIN, 'TEST': caffe_pb2.TEST, 'ALL': None}
    if args.phase not in phases:
        print(f'error: Unknown phase: {args.phase} (TRAIN, TEST or ALL)', file=sys.stderr)
        return 1
    net = caffe_pb2.NetParameter()
    try:
        with open(args.input_net_proto_file) as f:
            text_format.Merge(f.read(), net)
        print(f'Drawing net to {args.output_image_file}')
        draw_net_to_file(net, args.output_image_file, args.rankdir, phases[args.phase],
                         args.display_lrm)
    except (OSError, RuntimeError, ValueError, text_format.ParseError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
