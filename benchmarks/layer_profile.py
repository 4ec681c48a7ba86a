"""Where a TEST forward's time goes: the engine's layers beside ONNX Runtime's nodes.

The engine runs the deploy net with the toolkit's settings (`keep_blobs` of the outputs) and
times each layer through its forward hooks; ONNX Runtime runs the engine's own export of the
same net and weights with its profiler on. Convolutions (Conv, FusedConv, NchwcConv in ONNX
Runtime's graph) are matched in order, the k-th to the engine's k-th Convolution layer; the
rest is summed per kind. Times are the best of --repeat passes after one warm-up, in ms.

Example: python benchmarks/layer_profile.py --model voc-fcn8s --size 500
"""
import argparse
import collections
import json
import os
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
    per_node = collections.OrderedDict()
    for e in events[len(events) // (repeat + 1):]:  # drop the warm-up run
        key = (e['args'].get('op_name', '?'), e['name'][:-len('_kernel_time')])
        per_node.setdefault(key, []).append(e['dur'] / 1e3)
    return [(op, name, min(t)) for (op, name), t in per_node.items()], 1e3 * min(passes)


def report(net, layer_ms, engine_pass, nodes, ort_pass):
    convs = [(i, layer) for i, layer in enumerate(net.layers)
             if layer.type in ('Convolution', 'Deconvolution')]
    ort_convs = [n for n in nodes if n[0] in CONV_NODES or n[0] == 'ConvTranspose']
    print(f'{"layer":<12}{"type":<15}{"top shape":<22}{"engine ms":>10}{"ORT ms":>9}'
          f'{"ratio":>7}')
    for k, (i, layer) in enumerate(convs):
        ort_ms = ort_convs[k][2] if k < len(ort_convs) else float('nan')
        shape = str(net.top_vecs[i][0].shape)
        print(f'{net._layer_names[i]:<12}{layer.type:<15}{shape:<22}{layer_ms[i]:>10.1f}'
              f'{ort_ms:>9.1f}{layer_ms[i] / ort_ms:>7.2f}')
    engine_kinds, ort_kinds = collections.Counter(), collections.Counter()
    for i, layer in enumerate(net.layers):
        if layer.type not in ('Convolution', 'Deconvolution'):
            engine_kinds[layer.type] += layer_ms.get(i, 0.0)
    for op, _, ms in nodes:
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
