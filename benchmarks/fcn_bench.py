"""Engine versus the same FCN written directly in PyTorch: time and peak memory.

Each measurement runs in a fresh process (peak RSS is per process), on the same weights:
  train   forward + backward of the TRAIN net (loss, Dropout, frozen bilinear deconvs)
  test    forward of the TEST net; the engine records no autograd graph, the direct model
          runs under torch.no_grad()
Prints a table and the engine/direct ratios. `make bench` runs FCN-8s at 500x500.

Example: python benchmarks/fcn_bench.py --size 500 --repeat 3
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import caffe_torch as caffe  # noqa: E402
from benchmarks.direct_fcn import DirectFCN8s  # noqa: E402
from benchmarks.fcn8s_spec import fcn8s  # noqa: E402


def _engine_net(size, phase, path):
    with open(path, 'w') as f:
        f.write(str(fcn8s(size, train=(phase == caffe.TRAIN))))
    return caffe.Net(path, phase)


def prepare(size, folder, seed=0):
    """Write the weights and inputs both implementations load (from a process of its own)."""
    net = _engine_net(size, caffe.TRAIN, os.path.join(folder, 'net.prototxt'))
    rng = np.random.RandomState(seed)
    arrays = {f'{name}/{i}': rng.normal(0, 0.01, blob.shape).astype(np.float32)
              for name, blobs in net.params.items() for i, blob in enumerate(blobs)}
    arrays['data'] = rng.uniform(-100, 100, net.blobs['data'].shape).astype(np.float32)
    arrays['label'] = rng.randint(0, 21, net.blobs['label'].shape).astype(np.float32)
    np.savez(os.path.join(folder, 'inputs.npz'), **arrays)


def measure(impl, mode, size, repeat, folder):
    """Seconds per iteration (best of `repeat` after one warm-up) and peak RSS in MiB."""
    arrays = dict(np.load(os.path.join(folder, 'inputs.npz')))
    run = _engine_step(size, mode, arrays, folder) if impl == 'engine' \
        else _direct_step(mode, arrays)
    del arrays
    times = []
    for _ in range(repeat + 1):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return {'seconds': min(times[1:]), 'peak_mib': peak}


def _engine_step(size, mode, arrays, folder):
    phase = caffe.TRAIN if mode == 'train' else caffe.TEST
    net = _engine_net(size, phase, os.path.join(folder, f'{mode}.prototxt'))
    for key, value in arrays.items():
        if '/' in key:
            name, i = key.split('/')
            net.params[name][int(i)].data[...] = value
        elif key in net.blobs:
            net.blobs[key].data[...] = value

    def train():
        net.forward()
        net.backward()
    return train if mode == 'train' else net.forward


def _direct_step(mode, arrays):
    model = DirectFCN8s.from_arrays(arrays)
    data = torch.from_numpy(arrays['data'])
    label = torch.from_numpy(arrays['label']).long()
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
        prepare(args.size, args.folder)
        return 0
    if args.one:
        impl, mode = args.one.split(':')
        print(json.dumps(measure(impl, mode, args.size, args.repeat, args.folder)))
        return 0
    rows = {}
    with tempfile.TemporaryDirectory() as folder:
        _child(['--prepare'], args, folder)
        for mode in ('train', 'test'):
            for impl in ('direct', 'engine'):
                out = _child(['--one', f'{impl}:{mode}'], args, folder)
                rows[(impl, mode)] = json.loads(out.strip().splitlines()[-1])
    _report(rows, args)
    return 0


def _child(extra, args, folder):
    cmd = [sys.executable, __file__, '--size', str(args.size), '--repeat', str(args.repeat),
           '--folder', folder] + extra
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def _report(rows, args):
    print(f'FCN-8s VGG16, {args.size}x{args.size}, CPU ({os.cpu_count()} cores), '
          f'torch {torch.__version__}, best of {args.repeat}')
    print(f'{"":18s} {"direct":>10s} {"engine":>10s} {"ratio":>7s}')
    for mode, label in (('train', 'TRAIN fwd+bwd'), ('test', 'TEST forward')):
        d, e = rows[('direct', mode)], rows[('engine', mode)]
        print(f'{label + " s":18s} {d["seconds"]:10.3f} {e["seconds"]:10.3f} '
              f'{e["seconds"] / d["seconds"]:7.3f}')
        print(f'{label + " MiB":18s} {d["peak_mib"]:10.0f} {e["peak_mib"]:10.0f} '
              f'{e["peak_mib"] / d["peak_mib"]:7.3f}')


def get_args_parser():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--size', type=int, default=500, help='input height and width')
    parser.add_argument('--repeat', type=int, default=2, help='timed iterations')
    parser.add_argument('--one', help=argparse.SUPPRESS)
    parser.add_argument('--prepare', action='store_true', help=argparse.SUPPRESS)
    parser.add_argument('--folder', help=argparse.SUPPRESS)
    return parser


if __name__ == '__main__':
    sys.exit(main(get_args_parser().parse_args()))
