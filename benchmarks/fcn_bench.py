"""Engine versus the same FCNs written directly in PyTorch: time, memory, throughput.

For FCN-32s, 16s and 8s, full size (VGG16, the committed nets/voc-fcn*s prototxts, 500x500)
and demo size (nets/demo-fcn*s, 160x160), each measurement runs in a fresh process on the
same weights and input:
  train   forward + backward of the TRAIN net (loss, Dropout, frozen bilinear deconvs)
  test    forward of the TEST net; the engine records no autograd graph, the direct model
          runs under torch.no_grad()
The engine runs with the toolkit's settings (`Net.keep_blobs`: only the loss and outputs
are kept) and, for the memory column "all blobs", as pycaffe does (every blob kept). Beside
it, the fastest ways a user has to run the same net on the same weights: the direct model in
channels-last memory ("direct CL", eager PyTorch) and, for TEST, ONNX Runtime on the
engine's own export (python -m caffe_torch.export), which ends at the score: beside it the
engine runs to the score as well ("engine to score": keep_blobs(['score']), forward(end=
'score'), the work of the toolkit's inference, no loss layer); the last column times that
and ONNX Runtime alternately in one process, as the two would meet in one program.
Times come from processes as users run them (glibc as it comes; the engine asks it to keep
freed memory for the next pass, caffe_torch/host_memory.py, and its resident size as run is
the "held" column). Memory comes from a second process per measurement in which every large
block goes back to the system when freed, so that RSS follows what is alive.
Peak memory is the peak during the timed passes, after one warm-up pass (weights, inputs
and the net included; loading and one-time set-up such as oneDNN's kernels not): the
process's peak RSS (VmHWM, reset before the passes) on the CPU, torch's peak allocation on
a GPU; "pass's own" is that peak less what was resident when the passes began, the part a
pass adds (at demo size the libraries' ~250 MiB otherwise hide it).
Also timed: writing VGG16 FCN-8s as a binary caffemodel (`net.save`).

Example: python benchmarks/fcn_bench.py --repeat 2 --strides 32 16 8 --sizes full demo
"""
import argparse
import gc
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
from torch.nn import functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import caffe_torch as caffe  # noqa: E402
from benchmarks.direct_fcn import DirectFCN, Shape  # noqa: E402
from caffe_torch import formats  # noqa: E402
from nets.generate import NETS  # noqa: E402


SIZES = {'full': ('voc-fcn{}s', 500, Shape.VGG16), 'demo': ('demo-fcn{}s', 160, Shape.DEMO)}
IMPLS = ('direct', 'engine', 'engine-all', 'direct-cl', 'onnxruntime', 'engine-score')
TEST_ONLY = ('onnxruntime', 'engine-score')


def engine_param(stride, size, train):
    """The size's train.prototxt with Input layers in place of the data layer."""
    model, pixels, _ = SIZES[size]
    param = formats.read_net(NETS / model.format(stride) / 'train.prototxt')
    data = param.layer[0]
    data.ClearField('python_param')
    data.type = 'Input'
    for shape in ([1, 3, pixels, pixels], [1, 1, pixels, pixels]):
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
    arrays['label'] = rng.randint(0, SIZES[size][2].classes,
                                  net.blobs['label'].shape).astype(np.float32)
    np.savez(os.path.join(folder, f'inputs{stride}{size}.npz'), **arrays)


def measure(impl, mode, stride, size, repeat, folder, device):
    """Seconds per iteration (best of `repeat` after one warm-up) and peak memory in MiB."""
    if device == 'cuda':
        caffe.set_mode_gpu()
    arrays = dict(np.load(os.path.join(folder, f'inputs{stride}{size}.npz')))
    if impl.startswith('direct'):
        run = _direct_step(stride, size, mode, arrays, device, impl == 'direct-cl')
    elif impl == 'onnxruntime':
        run = _onnxruntime_step(stride, size, arrays, folder)
    else:
        run = _engine_step(stride, size, mode, arrays, keep_all=impl == 'engine-all',
                           to_score=impl == 'engine-score')
    del arrays
    gc.collect()
    run()  # warm-up: one-time set-up (oneDNN's kernels, thread pools) is no pass's memory
    _sync(device)
    _reset_peak(device)
    base = _resident_mib(device)
    times = []
    for _ in range(repeat):
        _sync(device)
        start = time.perf_counter()
        run()
        _sync(device)
        times.append(time.perf_counter() - start)
    peak = _peak_mib(device)
    return {'seconds': min(times), 'peak_mib': peak, 'pass_mib': peak - base}


def measure_save(folder):
    """Seconds to write VGG16 FCN-8s as a binary caffemodel, and its size in MB."""
    net = caffe.Net(engine_param(8, 'full', False))
    path = os.path.join(folder, 'fcn8s.caffemodel')
    start = time.perf_counter()
    net.save(path)
    return {'seconds': time.perf_counter() - start, 'mb': os.path.getsize(path) / 1e6}


def _reset_peak(device):
    """Start the peak at what is resident now (weights, inputs, the net), so that it is the
    passes' peak and not loading's: Linux resets VmHWM on writing 5 to clear_refs."""
    if device == 'cuda':
        torch.cuda.reset_peak_memory_stats()
        return
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
    except OSError:
        pass  # elsewhere the peak is the whole process's (getrusage)


def _peak_mib(device):
    if device == 'cuda':
        return torch.cuda.max_memory_allocated() / 2 ** 20
    peak = _status_mib('VmHWM')
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0 if peak is None else peak


def _resident_mib(device):
    """What the passes start from: resident memory (CPU) or torch's allocation (GPU)."""
    if device == 'cuda':
        return torch.cuda.memory_allocated() / 2 ** 20
    return _status_mib('VmRSS') or 0.0


def _status_mib(field):
    """A kB field of /proc/self/status in MiB; None where there is no such file."""
    try:
        with open('/proc/self/status') as f:
            return next(int(line.split()[1]) for line in f
                        if line.startswith(field + ':')) / 1024.0
    except (OSError, StopIteration):
        return None


def _sync(device):
    if device == 'cuda':
        torch.cuda.synchronize()


def _engine_step(stride, size, mode, arrays, keep_all=False, to_score=False):
    """The engine as the toolkit runs it: keeping only the loss and outputs (a TRAIN net
    frees diffs as backward passes them, a TEST net frees data after its last reader);
    `keep_all` keeps every blob, as Caffe and pycaffe do; `to_score` (TEST) keeps the score
    and stops there, as inference does (what ONNX Runtime's export computes)."""
    net = caffe.Net(engine_param(stride, size, mode == 'train'))
    if to_score:
        net.keep_blobs(['score'])
    elif not keep_all:
        net.keep_blobs(['loss'], for_backward=mode == 'train')
    for key, value in arrays.items():
        if '/' in key:
            name, i = key.split('/')
            net.params[name][int(i)].data[...] = value
        else:
            net.blobs[key].data[...] = value

    def train():
        net.forward()
        net.backward()
    if to_score:
        return lambda: net.forward(end='score')
    return train if mode == 'train' else net.forward


def _onnxruntime_step(stride, size, arrays, folder, spinning=True):
    """ONNX Runtime (CPU) on the engine's export of the TEST net, loss layer left out.
    Without `spinning` its pool's threads sleep once a run ends instead of spinning for
    the next one (which would take the cores from whatever runs after it in the process)."""
    import onnxruntime
    from caffe_torch.export.__main__ import export
    net = caffe.Net(engine_param(stride, size, False))
    for key, value in arrays.items():
        if '/' in key:
            name, i = key.split('/')
            net.params[name][int(i)].data[...] = value
    path = os.path.join(folder, f'net{stride}{size}.onnx')
    export(net, path, net.blobs['data'].shape)
    del net
    options = onnxruntime.SessionOptions()
    if not spinning:
        options.add_session_config_entry('session.intra_op.allow_spinning', '0')
    session = onnxruntime.InferenceSession(path, options, providers=['CPUExecutionProvider'])
    feed = {session.get_inputs()[0].name: arrays['data']}
    return lambda: session.run(None, feed)


def duel(stride, size, repeat, folder):
    """Engine (to the score) and ONNX Runtime TEST forwards alternately in one process: best
    seconds (ONNX Runtime's threads not spinning between its runs, which would slow the
    engine's)."""
    arrays = dict(np.load(os.path.join(folder, f'inputs{stride}{size}.npz')))
    runs = {'engine': _engine_step(stride, size, 'test', arrays, to_score=True),
            'onnxruntime': _onnxruntime_step(stride, size, arrays, folder, spinning=False)}
    times = {name: [] for name in runs}
    for name, run in runs.items():
        run()
    for _ in range(repeat):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: min(t) for name, t in times.items()}


def _direct_step(stride, size, mode, arrays, device, channels_last=False):
    model = DirectFCN.from_arrays(arrays, stride, SIZES[size][2]).to(device)
    data = torch.from_numpy(arrays['data']).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        data = data.contiguous(memory_format=torch.channels_last)
    label = torch.from_numpy(arrays['label']).long().to(device)
    model.train(mode == 'train')

    def train():
        model.zero_grad(set_to_none=False)
        model.loss(data, label).backward()

    held = {}

    def test():
        """What the engine's TEST net computes and keeps for the caller: scores and loss."""
        with torch.no_grad():  # as the engine's blobs, the last outputs live until replaced
            held['score'] = model(data)
            held['loss'] = F.cross_entropy(held['score'], label[:, 0], ignore_index=255,
                                           reduction='sum')
    return train if mode == 'train' else test


def main(args):
    if args.prepare:
        stride, size = args.prepare.split(':')
        prepare(int(stride), size, args.folder)
        return 0
    if args.one:
        impl, mode, stride, size = args.one.split(':')
        print(json.dumps(measure(impl, mode, int(stride), size, args.repeat, args.folder,
                                 args.device)))
        return 0
    if args.save:
        print(json.dumps(measure_save(args.folder)))
        return 0
    if args.duel:
        stride, size = args.duel.split(':')
        print(json.dumps(duel(int(stride), size, args.repeat, args.folder)))
        return 0
    rows = {}
    with tempfile.TemporaryDirectory() as folder:
        for size in args.sizes:
            for stride in args.strides:
                _child(['--prepare', f'{stride}:{size}'], args, folder)
                for mode in ('train', 'test'):
                    for impl in IMPLS:
                        if impl in TEST_ONLY and (mode == 'train' or args.device != 'cpu'):
                            continue
                        one = ['--one', f'{impl}:{mode}:{stride}:{size}']
                        timed = _last_json(_child(one, args, folder))
                        live = _last_json(_child(one, args, folder, live=True))
                        rows[(size, stride, impl, mode)] = dict(
                            live, seconds=timed['seconds'], held_mib=timed['peak_mib'])
                if args.device == 'cpu':
                    out = _child(['--duel', f'{stride}:{size}'], args, folder)
                    rows[(size, stride, 'duel')] = _last_json(out)
        save = _last_json(_child(['--save'], args, folder)) if args.with_save else None
    print(report(rows, save, args))
    return 0


def _last_json(out):
    return json.loads(out.strip().splitlines()[-1])


def _child(extra, args, folder, live=False):
    """Run one measurement in a fresh process. Times come from processes as users run
    them: glibc as it comes, the engine asking it to keep freed memory (host_memory.py).
    Memory comes from `live` ones: glibc keeps freed blocks below its (growing) mmap
    threshold in the heap, so RSS would count memory an implementation has freed, by
    chance; a fixed low threshold returns every large block to the system (and the engine,
    seeing it set, leaves it), so that RSS follows what is alive."""
    cmd = [sys.executable, __file__, '--repeat', str(args.repeat), '--folder', folder,
           '--device', args.device] + extra
    env = {k: v for k, v in os.environ.items() if not k.startswith('MALLOC_')}
    if live:
        env['MALLOC_MMAP_THRESHOLD_'] = '65536'
    return subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout


def machine(device):
    """The machine in words: the GPU's name, or the CPU model and its core count."""
    if device == 'cuda':
        return torch.cuda.get_device_name(0)
    model = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            model = next(line.split(':', 1)[1].strip() for line in f
                         if line.startswith('model name'))
    except (OSError, StopIteration):
        pass
    return f'{model}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads'


def report(rows, save, args):
    """A Markdown table to paste: engine / direct ratios of time and peak memory."""
    lines = [f'{machine(args.device)}; torch {torch.__version__}; best of {args.repeat}',
             '', '| net | size | pass | direct s | engine s | ratio | direct MiB '
             '| engine MiB | ratio | pass\'s own MiB, direct / engine | ratio | all blobs MiB '
             '| ratio | engine img/s |',
             '|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|']
    for size in args.sizes:
        pixels = SIZES[size][1]
        for stride in args.strides:
            for mode, label in (('train', 'TRAIN fwd+bwd'), ('test', 'TEST forward')):
                d, e, a = (rows[(size, stride, impl, mode)]
                           for impl in ('direct', 'engine', 'engine-all'))
                lines.append(
                    f'| FCN-{stride}s | {size} {pixels}x{pixels} | {label} | '
                    f'{d["seconds"]:.4f} | {e["seconds"]:.4f} | '
                    f'{e["seconds"] / d["seconds"]:.3f} | {d["peak_mib"]:.0f} | '
                    f'{e["peak_mib"]:.0f} | {e["peak_mib"] / d["peak_mib"]:.3f} | '
                    f'{d["pass_mib"]:.1f} / {e["pass_mib"]:.1f} | '
                    f'{e["pass_mib"] / max(d["pass_mib"], 1e-9):.3f} | '
                    f'{a["peak_mib"]:.0f} | {a["peak_mib"] / d["peak_mib"]:.3f} | '
                    f'{1 / e["seconds"]:.2f} |')
    lines += ['', '| net | size | pass | engine s | direct CL s | engine / CL | '
              'engine to score s | ONNX Runtime s | engine to score / ORT | direct CL MiB | '
              'engine / CL | ORT MiB | engine to score / ORT | one process: engine to '
              'score s / ORT s | held as run MiB, direct / engine |',
              '|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|']
    for size in args.sizes:
        for stride in args.strides:
            for mode, label in (('train', 'TRAIN fwd+bwd'), ('test', 'TEST forward')):
                e, c = rows[(size, stride, 'engine', mode)], rows[(size, stride, 'direct-cl', mode)]
                o = rows.get((size, stride, 'onnxruntime', mode))
                lean = rows.get((size, stride, 'engine-score', mode))
                both = rows.get((size, stride, 'duel')) if o else None
                ort = (f'{lean["seconds"]:.4f} | {o["seconds"]:.4f} | '
                       f'{lean["seconds"] / o["seconds"]:.3f}' if o else 'n/a | n/a | n/a')
                ort_mib = (f'{o["peak_mib"]:.0f} | {lean["peak_mib"] / o["peak_mib"]:.3f}'
                           if o else 'n/a | n/a')
                one = (f'{both["engine"]:.4f} / {both["onnxruntime"]:.4f} = '
                       f'{both["engine"] / both["onnxruntime"]:.3f}' if both else 'n/a')
                lines.append(
                    f'| FCN-{stride}s | {size} {SIZES[size][1]}x{SIZES[size][1]} | {label} | '
                    f'{e["seconds"]:.4f} | {c["seconds"]:.4f} | '
                    f'{e["seconds"] / c["seconds"]:.3f} | {ort} | {c["peak_mib"]:.0f} | '
                    f'{e["peak_mib"] / c["peak_mib"]:.3f} | {ort_mib} | {one} | '
                    f'{rows[(size, stride, "direct", mode)]["held_mib"]:.0f} / '
                    f'{e["held_mib"]:.0f} |')
    if save:
        lines += ['', f'VGG16 FCN-8s caffemodel ({save["mb"]:.0f} MB) written by net.save in '
                      f'{save["seconds"]:.2f} s']
    return '\n'.join(lines)


def get_args_parser():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--sizes', nargs='+', default=['full', 'demo'], choices=list(SIZES),
                        help='full: VGG16 at 500x500; demo: the demo nets at 160x160')
    parser.add_argument('--repeat', type=int, default=2, help='timed iterations')
    parser.add_argument('--strides', type=int, nargs='+', default=[32, 16, 8],
                        choices=[32, 16, 8], help='which FCNs')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu',
                        choices=['cpu', 'cuda'], help='where to run')
    parser.add_argument('--no-save', dest='with_save', action='store_false',
                        help='skip timing the VGG16 FCN-8s caffemodel write')
    parser.add_argument('--one', help=argparse.SUPPRESS)
    parser.add_argument('--prepare', help=argparse.SUPPRESS)
    parser.add_argument('--save', action='store_true', help=argparse.SUPPRESS)
    parser.add_argument('--duel', help=argparse.SUPPRESS)
    parser.add_argument('--folder', help=argparse.SUPPRESS)
    return parser


if __name__ == '__main__':
    sys.exit(main(get_args_parser().parse_args()))
