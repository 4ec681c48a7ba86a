"""Where a TEST forward's time goes: the engine's layers beside ONNX Runtime's nodes.

The engine runs the deploy net with the toolkit's settings (`keep_blobs` of the outputs) and
times each layer through its forward hooks; ONNX Runtime runs the engine's own export of the
same net and weights with its profiler on. Convolutions (Conv, FusedConv, NchwcConv in ONNX
Runtime's graph) are matched to the engine's by the index in their exported names, not by
when they run (ONNX Runtime runs a score layer as soon as its pool is ready): a convolution
fused with its ReLU is named after the k-th ReLU and pairs with the engine's k-th
Convolution followed by a ReLU, the others are named after the k-th Conv of the graph and
pair with the engine's k-th Convolution; transposed ones pair in order. The rest is summed
per kind. Times are the best of --repeat passes after one warm-up, in ms.

Example: python benchmarks/layer_profile.py --model voc-fcn8s --size 500
"""
import argparse
import collections
import json
import os
import re
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import caffe_torch as caffe  # noqa: E402
from nets.generate import NETS  # noqa: E402

CONV_NODES = {'Conv', 'FusedConv', 'NchwcConv'}


def random_net(model, size, seed=0):
    """The model's deploy net at size x size with seeded random weights."""
    net = caffe.Net(str(NETS / model / 'deploy.prototxt'), caffe.TEST)
    rng = np.random.RandomState(seed)
    for blobs in net.params.values():
        for blob in blobs:
            blob.data[...] = rng.normal(0, 0.01, blob.shape)
    name = net.inputs[0]
    net.blobs[name].reshape(1, net.blobs[name].shape[1], size, size)
    net.reshape()
    net.blobs[name].data[...] = rng.uniform(-100, 100, net.blobs[name].shape)
    return net


def engine_layers(net, repeat):
    """{layer index: best ms} and the best whole pass in ms. The whole passes are timed
    first: the timing hooks stop a convolution from applying the ReLU after it (a hook
    could look in between), so per layer the ReLUs show up as layers of their own."""
    net.keep_blobs(list(net.outputs))
    net.forward()
    passes = []
    for _ in range(repeat):
        start = time.perf_counter()
        net.forward()
        passes.append(time.perf_counter() - start)
    began, times = {}, collections.defaultdict(list)
    net.before_forward(lambda i: began.__setitem__(i, time.perf_counter()))
    net.after_forward(lambda i: times[i].append(time.perf_counter() - began[i]))
    for _ in range(repeat + 1):
        net.forward()
    return {i: 1e3 * min(t) for i, t in times.items()}, 1e3 * min(passes)


def onnxruntime_nodes(net, repeat, folder):
    """[(op type, node name, best ms)] in execution order, and the best whole pass in ms."""
    import onnxruntime as ort
    from caffe_torch.export.__main__ import export
    data = net.blobs[net.inputs[0]]
    path = os.path.join(folder, 'net.onnx')
    export(net, path, data.shape)
    options = ort.SessionOptions()
    options.enable_profiling = True
    options.profile_file_prefix = os.path.join(folder, 'ort')
    session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
    feed = {session.get_inputs()[0].name: data.data.copy()}
    session.run(None, feed)
    passes = []
    for _ in range(repeat):
        start = time.perf_counter()
        session.run(None, feed)
        passes.append(time.perf_counter() - start)
    with open(session.end_profiling()) as f:
        events = [e for e in json.load(f) if e.get('cat') == 'Node'
                  and e['name'].endswith('_kernel_time')]
    per_node, shapes = collections.OrderedDict(), {}
    for e in events[len(events) // (repeat + 1):]:  # drop the warm-up run
        key = (e['args'].get('op_name', '?'), e['name'][:-len('_kernel_time')])
        per_node.setdefault(key, []).append(e['dur'] / 1e3)
        shapes[key] = output_shape(e['args'])
    return ([(op, name, min(t), shapes[op, name]) for (op, name), t in per_node.items()],
            1e3 * min(passes))


def output_shape(args):
    """The first output's shape in a profiler event's args, or None."""
    for output in args.get('output_type_shape', [])[:1]:
        for shape in output.values():
            return tuple(shape)
    return None


def graph_index(node_name):
    """The index an exported node's name carries: /module/Relu_7_output_0_nchwc -> ('Relu',
    7), /module/Conv_output_0_nchwc -> ('Conv', 0), /module/ConvTranspose_2 ->
    ('ConvTranspose', 2)."""
    match = re.match(r'([A-Za-z]+)(?:_(\d+))?', node_name.split('/')[-1])
    return match.group(1), int(match.group(2) or 0)


def pair_convolutions(net, nodes):
    """{engine layer index: ONNX Runtime node (op, name, ms, output shape)} for each
    convolution and deconvolution."""
    followed = {i for i in range(len(net.layers) - 1) if net.layers[i + 1].type == 'ReLU'
                and net.top_vecs[i + 1][0] is net.top_vecs[i][0]}
    convs = [i for i, layer in enumerate(net.layers) if layer.type == 'Convolution']
    by_kind = {'Relu': [i for i in convs if i in followed], 'Conv': convs,
               'ConvTranspose': [i for i, layer in enumerate(net.layers)
                                 if layer.type == 'Deconvolution']}
    paired = {}
    for node in nodes:
        if node[0] in CONV_NODES or node[0] == 'ConvTranspose':
            kind, k = graph_index(node[1])
            if kind in by_kind and k < len(by_kind[kind]):
                paired[by_kind[kind][k]] = node
    return paired


def report(net, layer_ms, engine_pass, nodes, ort_pass):
    convs = [(i, layer) for i, layer in enumerate(net.layers)
             if layer.type in ('Convolution', 'Deconvolution')]
    paired = pair_convolutions(net, nodes)
    print(f'{"layer":<14}{"type":<15}{"top shape":<22}{"engine ms":>10}{"ORT ms":>9}'
          f'{"ratio":>7}')
    for i, layer in convs:
        ort_ms = paired[i][2] if i in paired else float('nan')
        shape = str(net.top_vecs[i][0].shape)
        print(f'{net._layer_names[i]:<14}{layer.type:<15}{shape:<22}{layer_ms[i]:>10.1f}'
              f'{ort_ms:>9.1f}{layer_ms[i] / ort_ms:>7.2f}')
    engine_kinds, ort_kinds = collections.Counter(), collections.Counter()
    for i, layer in enumerate(net.layers):
        if layer.type not in ('Convolution', 'Deconvolution'):
            engine_kinds[layer.type] += layer_ms.get(i, 0.0)
    for op, _, ms, _ in nodes:
        if op not in CONV_NODES and op != 'ConvTranspose':
            ort_kinds[op] += ms
    print('engine, other layers (ms):', ', '.join(f'{k} {v:.1f}' for k, v in
                                                 engine_kinds.most_common()))
    print('ONNX Runtime, other nodes (ms):', ', '.join(f'{k} {v:.1f}' for k, v in
                                                       ort_kinds.most_common()))
    print(f'whole pass: engine {engine_pass:.0f} ms, ONNX Runtime {ort_pass:.0f} ms, '
          f'ratio {engine_pass / ort_pass:.2f}')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--model', default='voc-fcn8s')
    parser.add_argument('--size', type=int, default=500)
    parser.add_argument('--repeat', type=int, default=2)
    args = parser.parse_args(argv)
    net = random_net(args.model, args.size)
    with tempfile.TemporaryDirectory() as folder:
        nodes, ort_pass = onnxruntime_nodes(net, args.repeat, folder)
        layer_ms, engine_pass = engine_layers(net, args.repeat)
    report(net, layer_ms, engine_pass, nodes, ort_pass)


if __name__ == '__main__':
    main()
