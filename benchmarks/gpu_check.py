"""`make gpu-check`: everything a CUDA machine should confirm, in one command and one summary.

  1. the GPU-marked tests (the 148 golden cases in GPU mode, host/device sync, GPU solvers)
  2. the bench: FCN-32s/16s/8s, VGG16 at 500x500 and demo size, forward, training step,
     peak memory and images/s, engine against the same nets in plain PyTorch
  3. the demo on the GPU, checked against its table

On a machine without CUDA, `--device cpu` runs the same steps on the CPU (the golden cases
through the CPU test file, a small bench, a short demo), which the test suite does so that
this script cannot rot. Each step runs in a process of its own; the summary says which
passed, how long each took, and the bench's table.

    python benchmarks/gpu_check.py                   # on the GPU: about 5 minutes on an H100
    python benchmarks/gpu_check.py --device cpu --quick
"""
import argparse
import os
import pathlib
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]


def steps(device, quick, out):
    """[(name, argv)] of the checks for `device`; `quick` shrinks the bench and the demo."""
    python = sys.executable
    if device == 'cuda':
        tests = [python, '-m', 'pytest', '-q', '-m', 'gpu', 'tests']
    else:
        tests = [python, '-m', 'pytest', '-q', 'tests/caffe_torch/test_golden_layers.py']
    bench = [python, 'benchmarks/fcn_bench.py', '--device', device]
    bench += ['--sizes', 'demo', '--strides', '32', '--repeat', '1', '--no-save'] if quick \
        else ['--repeat', '3']
    demo = [python, '-m', 'solve.demo', '--no-progress', '--out', str(out)]
    demo += ['--iterations', '2'] if quick else ['--check']
    if device == 'cuda':
        demo += ['--gpu', '0']
    return [('tests', tests), ('bench', bench), ('demo', demo)]


def run(name, argv, env, timeout):
    """(passed, seconds, last lines of output) of one step."""
    start = time.perf_counter()
    try:
        done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=timeout)
        passed, output = done.returncode == 0, done.stdout + done.stderr
    except subprocess.TimeoutExpired as e:
        passed = False
        output = f'{name}: no result after {timeout} s\n' + (e.stdout or '') \
            if isinstance(e.stdout, str) else f'{name}: no result after {timeout} s'
    return passed, time.perf_counter() - start, output


def summary(results, device):
    lines = [f'gpu-check on {device}:', '', '| step | result | seconds |', '|---|---|--:|']
    lines += [f'| {name} | {"passed" if ok else "FAILED"} | {seconds:.0f} |'
              for name, ok, seconds, _ in results]
    for name, ok, _, output in results:
        if name == 'bench' and ok:
            table = [line for line in output.splitlines()
                     if line.startswith('|') or 'cores' in line or 'torch' in line]
            lines += ['', *table]
        if not ok:
            lines += ['', f'{name} failed; its last lines:', *output.splitlines()[-15:]]
    return '\n'.join(lines)


def main(args):
    import torch
    if args.device == 'cuda' and not torch.cuda.is_available():
        print('gpu-check: no CUDA device here; run it on a GPU machine, or pass --device cpu '
              'to check the script itself on the CPU', file=sys.stderr)
        return 2
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as tmp:
        env.setdefault('FCN_DATA', str(pathlib.Path(tmp) / 'data'))
        results = []
        for name, argv in steps(args.device, args.quick, pathlib.Path(tmp) / 'out'):
            print(f'gpu-check: {name} ...', file=sys.stderr, flush=True)
            results.append((name, *run(name, argv, env, args.timeout)))
    print(summary(results, args.device))
    return 0 if all(ok for _, ok, _, _ in results) else 1


def get_args_parser():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--device', default='cuda', choices=['cuda', 'cpu'])
    parser.add_argument('--quick', action='store_true',
                        help='a small bench and a 2-iteration demo (what the tests run)')
    parser.add_argument('--timeout', type=int, default=900, help='seconds per step')
    return parser


if __name__ == '__main__':
    sys.exit(main(get_args_parser().parse_args()))
