"""Smoke job: a V1-format VGG-style classifier and its caffemodel, written, upgraded to the
current format, read back and run by the engine, with a table of what was carried over.

This stands in for `make demo` until the demo pipeline exists. It exercises what loading
the ILSVRC VGG16 files needs: V1 `layers` with enum types and blobs_lr/weight_decay, legacy
`input_dim`, and 4-D legacy weight blobs (biases stored 1x1x1xN).

Example: python -m caffe_torch.tools.smoke out/smoke
"""
import argparse
import os
import sys

import numpy as np

from caffe_torch import formats, io
from caffe_torch.proto import caffe_pb2

# name, V1 type, (num_output, kernel) for parametric layers
LAYERS = [('conv1_1', 'CONVOLUTION', (8, 3)), ('relu1_1', 'RELU', None),
          ('pool1', 'POOLING', None), ('conv2_1', 'CONVOLUTION', (16, 3)),
          ('relu2_1', 'RELU', None), ('pool2', 'POOLING', None),
          ('fc6', 'INNER_PRODUCT', (32, None)), ('relu6', 'RELU', None),
          ('fc7', 'INNER_PRODUCT', (32, None)), ('fc8', 'INNER_PRODUCT', (10, None)),
          ('prob', 'SOFTMAX', None)]
INPUT_DIM = (1, 3, 16, 16)


def v1_net():
    """The deploy net in V1 format, with legacy input_dim, as 2014 model zoo files are."""
    net = caffe_pb2.NetParameter(name='VGG_tiny', input=['data'], input_dim=INPUT_DIM)
    bottom = 'data'
    for name, kind, shape in LAYERS:
        layer = net.layers.add(name=name, bottom=[bottom],
                               type=caffe_pb2.V1LayerParameter.LayerType.Value(kind))
        in_place = kind in ('RELU',)
        layer.top.append(bottom if in_place else name)
        if kind == 'CONVOLUTION':
            layer.convolution_param.num_output, layer.convolution_param.kernel_size[:] = \
                shape[0], [shape[1]]
            layer.convolution_param.pad[:] = [1]
        elif kind == 'INNER_PRODUCT':
            layer.inner_product_param.num_output = shape[0]
        elif kind == 'POOLING':
            layer.pooling_param.pool = caffe_pb2.PoolingParameter.MAX
            layer.pooling_param.kernel_size, layer.pooling_param.stride = 2, 2
        if shape:
            layer.blobs_lr.extend([1, 2])
            layer.weight_decay.extend([1, 0])
        bottom = layer.top[0]
    return net


def v1_weights(seed=0):
    """A caffemodel for `v1_net` whose blobs use the legacy 4-D fields."""
    rng = np.random.RandomState(seed)
    net = v1_net()
    channels, size = INPUT_DIM[1], INPUT_DIM[2]
    for layer in net.layers:
        kind = caffe_pb2.V1LayerParameter.LayerType.Name(layer.type)
        if kind == 'CONVOLUTION':
            n = layer.convolution_param.num_output
            _legacy_blob(layer, (n, channels, 3, 3), rng)
            channels = n
        elif kind == 'POOLING':
            size //= 2
        elif kind == 'INNER_PRODUCT':
            n = layer.inner_product_param.num_output
            _legacy_blob(layer, (1, 1, n, channels * size * size), rng)
            channels, size = n, 1
        if kind in ('CONVOLUTION', 'INNER_PRODUCT'):
            _legacy_blob(layer, (1, 1, 1, n), rng)
    return net


def _legacy_blob(layer, shape, rng):
    blob = layer.blobs.add(num=shape[0], channels=shape[1], height=shape[2], width=shape[3])
    blob.data.extend(rng.randn(int(np.prod(shape))).astype(np.float32))


def main(args):
    os.makedirs(args.out, exist_ok=True)
    paths = {k: os.path.join(args.out, k) for k in
             ('v1.prototxt', 'v1.caffemodel', 'upgraded.prototxt', 'upgraded.caffemodel')}
    formats.write_prototxt(v1_net(), paths['v1.prototxt'])
    formats.write_binaryproto(v1_weights(), paths['v1.caffemodel'])
    net = formats.read_net(paths['v1.prototxt'])
    weights = formats.read_net_binary(paths['v1.caffemodel'])
    formats.write_prototxt(net, paths['upgraded.prototxt'])
    formats.write_binaryproto(weights, paths['upgraded.caffemodel'])
    again = formats.read_net_binary(paths['upgraded.caffemodel'])
    print(f'{"layer":10s} {"type":14s} {"lr_mult":10s} blobs (legacy 4-D shapes)')
    for layer, reread in zip(weights.layer, again.layer):
        for a, b in zip(layer.blobs, reread.blobs):
            if not np.array_equal(io.blobproto_to_array(a), io.blobproto_to_array(b)):
                raise SystemExit(f'{layer.name}: weights changed in the round trip')
        mults = ','.join(f'{p.lr_mult:g}' for p in layer.param) or '-'
        shapes = ' '.join('x'.join(map(str, io.blob_shape(b))) for b in layer.blobs)
        print(f'{layer.name:10s} {layer.type:14s} {mults:10s} {shapes}')
    print(f'input layer: {net.layer[0].name} ({net.layer[0].type}) '
          f'shape {list(net.layer[0].input_param.shape[0].dim)}')
    probs = _run_engine(paths)
    print(f'engine forward: prob sums to {probs.sum():.6f}, top class {probs.argmax()}')
    print(f'smoke: {len(net.layer)} layers upgraded from V1, round-tripped and run; '
          f'files in {args.out}')
    return 0


def _run_engine(paths):
    """Load the V1 files themselves into the engine (upgraded on read) and classify."""
    import caffe_torch as caffe
    engine = caffe.Net(paths['v1.prototxt'], caffe.TEST, weights=paths['v1.caffemodel'])
    image = np.random.RandomState(1).uniform(-1, 1, INPUT_DIM).astype(np.float32)
    return engine.forward(data=image)['prob'][0]


def get_args_parser():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('out', nargs='?', default='out/smoke', help='output folder')
    return parser


if __name__ == '__main__':
    sys.exit(main(get_args_parser().parse_args()))
