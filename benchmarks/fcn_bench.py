"""Engine versus the same FCNs written directly in PyTorch: time, memory, throughput.

For FCN-32s, 16s and 8s (VGG16, the committed nets/voc-fcn*s prototxts), each measurement
runs in a fresh process on the same weights and input:
  train   forward + backward of the TRAIN net (loss, Dropout, frozen bilinear deconvs)
  test    forward of the TEST net; the engine records no autograd graph, the direct model
          runs under torch.no_grad()
Peak memory is the process's peak RSS on the CPU, torch's peak allocation on a GPU.

Example: python benchmarks/fcn_bench.py --size 500 --repeat 2 --strides 32 16 8
"""
import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import caffe_torch as caffe  # noqa: E402
from benchmarks.direct_fcn import DirectFCN  # noqa: E402
from caffe_torch import formats  # noqa: E402
from nets.generate import NETS  # noqa: E402


def engine_param(stride, size, train):
    """nets/voc-fcn<stride>s/train.prototxt with Input layers in place of the data layer."""
    param = formats.read_net(NETS / f'voc-fcn{stride}s' / 'train.prototxt')
    data = param.layer[0]
    data.ClearField('python_param')
    data.type = 'Input'
    shapes = [[1, 3, size, size], [1, 1, size, size]]
    for shape in shapes:
        data.input_param.shape.add().dim.extend(shape)
    param.state.phase = caffe.TRAIN if train else caffe.TEST
    return param


def prepare(stride, size, folder, seed=0):
    """Write weights and inputs both implementations load (from a process of its own)."""
    net = caffe.Net(engine_param(stride, size, True))
    rng = np.random.RandomState(seed)
    arrays = {f'{name}/{i}': rng.normal(0, 0.01, blob.shape).astype(np.float32)
              for name, blobs in net.params.items() for i, blob in enumerate(blobs)}
    arrays['data'] = rng.uniform(-100, 100, net.blobs['data'].shape).astype(np.float32)
    arrays['label'] = rng.randint(0, 21, net.blobs['label'].shape).astype(np.float32)
    np.savez(os.path.join(folder, f'inputs{stride}.npz'), **arrays)


def measure(impl, mode, stride, size, repeat, folder, device):
    """Seconds per iteration (best of `repeat` after one warm-up) and peak memory in MiB."""
    if device == 'cuda':
        caffe.set_mode_gpu()
    arrays = dict(np.load(os.path.join(folder, f'inputs{stride}.npz')))
    run = _engine_step(stride, size, mode, arrays) if impl == 'engine' \
        else _direct_step(stride, mode, arrays, device)
    del arrays
    times = []
    for _ in range(repeat + 1):
        _sync(device)
        start = time.perf_counter()
        run()
        _sync(device)
        times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() / 2 ** 20 if device == 'cuda' else \
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return {'seconds': min(times[1:]), 'peak_mib': peak}


def _sync(device):
    if device == 'cuda':
        torch.cuda.synchronize()


def _engine_step(stride, size, mode, arrays):
    net = caffe.Net(engine_param(stride, size, mode == 'train'))
    for key, value in arrays.items():
        if '/' in key:
            name, i = key.split('/')
            net.params[name][int(i)].data[...] = value
        else:
            net.blobs[key].data[...] = value

    def train():
        net.forward()
        net.backward()
    return train if mode == 'train' else net.forward


def _direct_step(stride, mode, arrays, device):
    model = DirectFCN.from_arrays(arrays, stride).to(device)
    data = torch.from_numpy(arrays['data']).to(device)
    label = torch.from_numpy(arrays['label']).long().to(device)
    model.train(mode == 'train')

    def train():
        model.zero_grad(set_to_none=False)
        model.loss(data, label).backward()

    def test():
        with torch.no_grad():
            model(data)
    return train if mode == 'train' else test


def main(args):
    if args.prepare:
        prepare(args.prepare, args.size, args.folder)
        return 0
    if args.one:
        impl, mode, stride = args.one.split(':')
        print(json.dumps(measure(impl, mode, int(stride), args.size, args.repeat,
                                 args.folder, args.device)))
        return 0
    rows = {}
    with tempfile.TemporaryDirectory() as folder:
        for stride in args.strides:
            _child(['--prepare', str(stride)], args, folder)
            for mode in ('train', 'test'):
                for impl in ('direct', 'engine'):
                    out = _child(['--one', f'{impl}:{mode}:{stride}'], args, folder)
                    rows[(stride, impl, mode)] = json.loads(out.strip().splitlines()[-1])
    print(report(rows, args))
    return 0


def _child(extra, args, folder):
    cmd = [sys.executable, __file__, '--size', str(args.size), '--repeat', str(args.repeat),
           '--folder', folder, '--device', args.device] + extra
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def _machine(device):
    if device == 'cuda':
        return torch.cuda.get_device_name(0)
    return f'{platform.processor() or platform.machine()} CPU, {os.cpu_count()} cores'


def report(rows, args):
    lines = [f'FCN VGG16, {args.size}x{args.size}, {_machine(args.device)}, '
             f'torch {torch.__version__}, best of {args.repeat}', '',
             '| net | pass | direct s | engine s | ratio | direct MiB | engine MiB | ratio '
             '| engine img/s |', '|---|---|--:|--:|--:|--:|--:|--:|--:|']
    for stride in args.strides:
        for mode, label in (('train', 'TRAIN fwd+bwd'), ('test', 'TEST forward')):
            d, e = rows[(stride, 'direct', mode)], rows[(stride, 'engine', mode)]
            lines.append(f'| FCN-{stride}s | {label} | {d["seconds"]:.3f} | '
                         f'{e["seconds"]:.3f} | {e["seconds"] / d["seconds"]:.3f} | '
                         f'{d["peak_mib"]:.0f} | {e["peak_mib"]:.0f} | '
                         f'{e["peak_mib"] / d["peak_mib"]:.3f} | {1 / e["seconds"]:.2f} |')
    return '\n'.join(lines)


def get_args_parser():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--size', type=int, default=500, help='input height and width')
    parser.add_argument('--repeat', type=int, default=2, help='timed iterations')
    parser.add_argument('--strides', type=int, nargs='+', default=[32, 16, 8],
                        choices=[32, 16, 8], help='which FCNs')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu',
                        choices=['cpu', 'cuda'], help='where to run')
    parser.add_argument('--one', help=argparse.SUPPRESS)
    parser.add_argument('--prepare', type=int, help=argparse.SUPPRESS)
    parser.add_argument('--folder', help=argparse.SUPPRESS)
    return parser


if __name__ == '__main__':
    sys.exit(main(get_args_parser().parse_args()))
