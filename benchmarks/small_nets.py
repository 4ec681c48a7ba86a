"""Small nets, where what happens around each layer is the cost: the engine against real
Caffe (make caffe) on the same solver, data and command.

  logreg  the brewing-logreg notebook's logistic regression: HDF5 data (4 features, batch
          10), InnerProduct, Accuracy, SoftmaxWithLoss; 10000 iterations, tested every 1000
          (250 batches), Caffe's own solver fields
  lenet   examples/mnist/lenet_solver.prototxt and lenet_train_test.prototxt from Caffe's
          tree on a generated LMDB (Datum records as convert_mnist_data writes them);
          --lenet-iters iterations, tested every 100
  siamese examples/siamese/mnist_siamese_solver.prototxt and its train/test net (two LeNet
          towers sharing their params, ContrastiveLoss) on generated LMDBs of image pairs
          (2-channel Datums, label 1 for a same-class pair, as convert_mnist_siamese_data
          writes them; LMDB instead of the example's LevelDB); --lenet-iters iterations,
          tested every 100 on 10 batches

Each is `caffe train --solver=...` run as a command (real Caffe's binary; the engine's
`python -m caffe_torch train`), wall time from start to exit, best of --repeat, with the
logs silenced (GLOG_minloglevel=2) on both. Prints a table of seconds and the ratios.

Example: python benchmarks/small_nets.py --repeat 2
"""
import argparse
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import h5py
import lmdb
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from backend import caffe_build  # noqa: E402
from caffe_torch import io  # noqa: E402

LOGREG_NET = '''layer {{ name: "data" type: "HDF5Data" top: "data" top: "label"
        hdf5_data_param {{ source: "{source}" batch_size: 10 }} }}
layer {{ name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1"
        inner_product_param {{ num_output: 2 weight_filler {{ type: "xavier" }} }} }}
layer {{ name: "accuracy" type: "Accuracy" bottom: "ip1" bottom: "label" top: "accuracy" }}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "ip1" bottom: "label" top: "loss" }}
'''
LOGREG_SOLVER = '''train_net: "train.prototxt"
test_net: "test.prototxt"
test_interval: 1000
test_iter: 250
max_iter: 10000
base_lr: 0.01
lr_policy: "step"
gamma: 0.1
stepsize: 5000
momentum: 0.9
weight_decay: 0.0005
display: 1000
snapshot: 10000
snapshot_prefix: "train"
solver_mode: CPU
'''


def logreg(folder):
    """The notebook's data (two informative features of four) and nets; the solver file."""
    rng = np.random.RandomState(0)
    for name, count in (('train', 7500), ('test', 2500)):
        x = rng.standard_normal((count, 4)).astype(np.float32)
        y = (x[:, 0] + x[:, 1] > 0).astype(np.float32)
        with h5py.File(folder / f'{name}.h5', 'w') as f:
            f['data'], f['label'] = x, y
        (folder / f'{name}.txt').write_text(f'{folder / name}.h5\n' * (2 if name == 'train'
                                                                        else 1))
        (folder / f'{name}.prototxt').write_text(LOGREG_NET.format(source=f'{name}.txt'))
    (folder / 'solver.prototxt').write_text(LOGREG_SOLVER)
    return folder / 'solver.prototxt'


def write_lmdb(path, records):
    """An LMDB of Datums, as Caffe's convert tools write them: (uint8 array, label) pairs."""
    with lmdb.open(str(path), map_size=1 << 28) as env, env.begin(write=True) as txn:
        for i, (array, label) in enumerate(records):
            txn.put(b'%08d' % i, io.array_to_datum(array, label).SerializeToString())


def edited_solver(text, **fields):
    """A solver prototxt's text with the given top-level fields' values replaced."""
    return '\n'.join(f'{line.split(":")[0]}: {fields[line.split(":")[0]]}'
                     if line.split(':')[0] in fields else line
                     for line in text.splitlines()) + '\n'


def lenet(folder, caffe_tree, iterations):
    """Caffe's LeNet files, paths made local, on 2000/1000 generated 28 x 28 digits."""
    rng = np.random.RandomState(0)
    for name, count in (('mnist_train_lmdb', 2000), ('mnist_test_lmdb', 1000)):
        write_lmdb(folder / name, (
            ((rng.rand(1, 28, 28) * 60 + (i % 10) * 19).astype(np.uint8), i % 10)
            for i in range(count)))
    mnist = caffe_tree / 'examples' / 'mnist'
    net = (mnist / 'lenet_train_test.prototxt').read_text().replace('examples/mnist/', '')
    (folder / 'lenet_train_test.prototxt').write_text(net)
    solver = (mnist / 'lenet_solver.prototxt').read_text().replace('examples/mnist/', '')
    (folder / 'lenet_solver.prototxt').write_text(edited_solver(
        solver, max_iter=iterations, snapshot=iterations, test_interval=100,
        solver_mode='CPU'))
    return folder / 'lenet_solver.prototxt'


def digit_pairs(rng, count):
    """(2 x 28 x 28 pair, 1 if both show one digit else 0), as convert_mnist_siamese_data."""
    for _ in range(count):
        digits = rng.randint(10, size=2)
        pair = (rng.rand(2, 28, 28) * 60 + digits[:, None, None] * 19).astype(np.uint8)
        yield pair, int(digits[0] == digits[1])


def siamese(folder, caffe_tree, iterations):
    """Caffe's siamese files, paths made local, on 2000/1000 generated pairs of digits."""
    rng = np.random.RandomState(0)
    for name, count in (('mnist_siamese_train_lmdb', 2000), ('mnist_siamese_test_lmdb', 1000)):
        write_lmdb(folder / name, digit_pairs(rng, count))
    example = caffe_tree / 'examples' / 'siamese'
    net = (example / 'mnist_siamese_train_test.prototxt').read_text()
    for split in ('train', 'test'):
        net = net.replace(f'source: "examples/siamese/mnist_siamese_{split}_leveldb"',
                          f'source: "mnist_siamese_{split}_lmdb" backend: LMDB')
    (folder / 'mnist_siamese_train_test.prototxt').write_text(net)
    solver = (example / 'mnist_siamese_solver.prototxt').read_text() \
        .replace('examples/siamese/', '')
    (folder / 'mnist_siamese_solver.prototxt').write_text(edited_solver(
        solver, max_iter=iterations, snapshot=iterations, test_interval=100, test_iter=10,
        solver_mode='CPU'))
    return folder / 'mnist_siamese_solver.prototxt'


def wall(command, cwd, env, repeat):
    """Best wall seconds of `command`, which must succeed."""
    best = float('inf')
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(command, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - start)
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeat', type=int, default=1, help='runs of each, best taken')
    parser.add_argument('--lenet-iters', type=int, default=300,
                        help='iterations of LeNet and of the siamese net')
    args = parser.parse_args(argv)
    tree = caffe_build.build_dir()
    if not caffe_build.is_complete(tree):
        print(f'no real Caffe build in {tree}: run `make caffe` first', file=sys.stderr)
        return 2
    env = dict(os.environ, GLOG_minloglevel='2',
               LD_LIBRARY_PATH=caffe_build.environment(tree)['LD_LIBRARY_PATH'])
    engine_env = dict(os.environ, GLOG_minloglevel='2', PYTHONPATH=str(ROOT))
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for name, make in (('logreg', logreg),
                           ('lenet', lambda f: lenet(f, tree, args.lenet_iters)),
                           ('siamese', lambda f: siamese(f, tree, args.lenet_iters))):
            folder = pathlib.Path(scratch) / name
            folder.mkdir()
            solver = make(folder)
            real = wall([str(tree / 'build' / 'tools' / 'caffe'), 'train',
                         f'--solver={solver.name}'], folder, env, args.repeat)
            ours = wall([sys.executable, '-m', 'caffe_torch', 'train',
                         f'--solver={solver.name}'], folder, engine_env, args.repeat)
            rows.append((name, real, ours))
    print('| net | real Caffe s | engine s | engine / Caffe |\n|---|--:|--:|--:|')
    for name, real, ours in rows:
        print(f'| {name} | {real:.2f} | {ours:.2f} | {ours / real:.2f} |')
    return 0


if __name__ == '__main__':
    sys.exit(main())
