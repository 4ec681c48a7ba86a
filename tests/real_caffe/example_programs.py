"""Caffe's example programs, run from a Caffe root of their own on either side: real BVLC
Caffe (its `caffe` binary, pycaffe under the system Python) or the engine (its `caffe`
command, `python -m caffe_torch.run`). Nothing of Caffe is copied into the project: the
programs, prototxts and notebooks are taken from the build's source tree at test time, and
the data and weights they would download are generated.
"""
import contextlib
import json
import math
import os
import pathlib
import re
import shutil
import subprocess
import sys
import warnings

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
SIDES = ('caffe', 'engine')


SKIMAGE_SHIM = '''"""Added by the tests on real Caffe's side: Caffe 1.0's caffe.io.load_image passes
skimage.io.imread `as_grey`, which scikit-image 0.16 renamed `as_gray`; accept the old name."""
try:
    import skimage.io as _io
except ImportError:
    _io = None
if _io is not None:
    _imread = _io.imread

    def imread(fname, *args, as_grey=None, **kwargs):
        if as_grey is not None:
            kwargs['as_gray'] = as_grey
        return _imread(fname, *args, **kwargs)

    _io.imread = imread
'''


class Side:
    """One side's way of running Caffe's programs: the `caffe` tool and Python. `scratch` is
    a folder for the Caffe side's sitecustomize (SKIMAGE_SHIM)."""

    def __init__(self, real_caffe, name, scratch):
        self.real_caffe, self.name = real_caffe, name
        self.source = real_caffe.folder  # the source tree the build was made in
        self.shim = scratch / 'skimage-shim'
        if name == 'caffe':
            self.shim.mkdir(parents=True, exist_ok=True)
            (self.shim / 'sitecustomize.py').write_text(SKIMAGE_SHIM)

    def env(self, pythonpath=(), **extra):
        """A child's environment: glog's INFO lines on stderr in glog's classic prefix
        (glog 0.6 adds the year, which tools/extra/extract_seconds.py cannot read), plots
        to files, one BLAS/OpenMP thread (the same numbers on every machine; and torch's
        OpenMP threads stall, 10-20 times slower, where other processes hold the cores)."""
        if self.name == 'caffe':
            env = self.real_caffe.env([*pythonpath, self.shim])
            env.update(GLOG_minloglevel='0', GLOG_logtostderr='1',
                       GLOG_log_year_in_prefix='0')
            # Caffe's binary embeds the Python it was built for, which finds its prefix
            # through the first python3 on PATH (under pyenv, another Python's)
            env['PATH'] = os.pathsep.join([os.path.dirname(self.real_caffe.python),
                                           env['PATH']])
        else:
            env = dict(os.environ)
            for name in ('FCN_BACKEND', 'GLOG_minloglevel'):
                env.pop(name, None)
            env['PYTHONPATH'] = os.pathsep.join([str(ROOT)] + [str(p) for p in pythonpath])
        env.update(MPLBACKEND='Agg', OMP_NUM_THREADS='1', OPENBLAS_NUM_THREADS='1')
        env.update(extra)
        return env

    def python(self, script, *args):
        """The command that runs a pycaffe program on this side."""
        if self.name == 'caffe':
            return [self.real_caffe.python, str(script), *map(str, args)]
        return [sys.executable, '-m', 'caffe_torch.run', str(script), *map(str, args)]

    def run(self, command, cwd, pythonpath=(), timeout=600, check=True, **extra):
        """Run `command` in `cwd`; the CompletedProcess. With `check`, a failure is an
        AssertionError showing the end of stderr."""
        done = subprocess.run([str(c) for c in command], cwd=cwd,
                              env=self.env(pythonpath, **extra), capture_output=True,
                              text=True, timeout=timeout)
        if check:
            assert done.returncode == 0, (f'{self.name}: {command} failed '
                                          f'({done.returncode}):\n{done.stderr[-4000:]}')
        return done

    def install_caffe_tool(self, tree):
        """tree/build/tools/caffe: Caffe's binary, or a script running the engine's."""
        tool = tree / 'build' / 'tools' / 'caffe'
        tool.parent.mkdir(parents=True, exist_ok=True)
        if tool.exists() or tool.is_symlink():
            tool.unlink()
        if self.name == 'caffe':
            tool.symlink_to(self.source / 'build' / 'tools' / 'caffe')
        else:
            tool.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m caffe_torch "$@"\n')
            tool.chmod(0o755)


def make_tree(side, tree, files=(), links=()):
    """A Caffe root at `tree` for `side`: `files` copied from the source tree (so that what
    the programs write stays in `tree`), `links` symlinked to it, python/ and the caffe
    tool in place."""
    for name in files:
        target = tree / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(side.source / name, target)
        shutil.copymode(side.source / name, target)
    for name in ('python', *links):
        target = tree / name
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(side.source / name)
    side.install_caffe_tool(tree)
    return tree


def edited_solver(text, **values):
    """A solver's text with the named top-level fields set (each must be there already)."""
    lines = text.splitlines()
    for field, value in values.items():
        found = [i for i, line in enumerate(lines) if line.startswith(f'{field}:')]
        assert len(found) == 1, f'{field} is not a line of the solver'
        lines[found[0]] = f'{field}: {value}'
    return '\n'.join(lines) + '\n'


# -- generated data --------------------------------------------------------------------------
def write_mnist(folder, counts, seed=0):
    """MNIST's four idx files (train-*, t10k-*) under `folder`, `counts` = (train, test)
    images of ten classes: each a fixed random pattern of its class faint under noise, so
    that LeNet learns, slowly."""
    rng = np.random.RandomState(seed)
    patterns = rng.randint(0, 256, (10, 28, 28))
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, count in zip(('train', 't10k'), counts):
        labels = rng.randint(0, 10, count)
        images = rng.randint(0, 200, (count, 28, 28)) * 0.8 + patterns[labels] * 0.2
        with open(folder / f'{prefix}-images-idx3-ubyte', 'wb') as f:
            f.write(np.array([2051, count, 28, 28], '>i4').tobytes())
            f.write(images.astype(np.uint8).tobytes())
        with open(folder / f'{prefix}-labels-idx1-ubyte', 'wb') as f:
            f.write(np.array([2049, count], '>i4').tobytes())
            f.write(labels.astype(np.uint8).tobytes())


def random_weights(prototxt, path, seed, phase='TRAIN', cwd='.', gain=1.0):
    """A caffemodel for `prototxt` (made by the engine, in this process, in `cwd` where its
    data layers' sources are relative): every weight U(-a, a) with
    a = gain sqrt(3 / fan_in), every bias 0.01."""
    import caffe_torch
    with contextlib.chdir(cwd):
        net = caffe_torch.Net(str(prototxt), getattr(caffe_torch, phase))
    rng = np.random.RandomState(seed)
    for blobs in net.params.values():
        for blob in blobs:
            shape = blob.data.shape
            if len(shape) > 1:
                bound = gain * np.sqrt(3.0 / (blob.data.size // shape[0]))
                blob.data[...] = rng.uniform(-bound, bound, shape)
            else:
                blob.data[...] = 0.01
    net.save(str(path))


def caffemodel_arrays(path):
    """{(layer, i): float32 array} of a binary caffemodel."""
    from caffe_torch.proto import caffe_pb2
    net = caffe_pb2.NetParameter()
    net.ParseFromString(pathlib.Path(path).read_bytes())
    return {(layer.name, i): np.array(blob.data, np.float32)
            for layer in net.layer for i, blob in enumerate(layer.blobs)}


def relative_distance(a, b):
    """||a - b|| / ||b|| over every blob of two caffemodels' arrays together."""
    assert a.keys() == b.keys(), (sorted(a), sorted(b))
    num = sum(float(np.sum((a[k].astype(np.float64) - b[k]) ** 2)) for k in b)
    den = sum(float(np.sum(b[k].astype(np.float64) ** 2)) for k in b)
    return (num / den) ** 0.5


# -- logs ------------------------------------------------------------------------------------
LOSS_LINE = re.compile(r'Iteration (\d+) \(.*\), loss = (\S+)')
LR_LINE = re.compile(r'Iteration (\d+), lr = (\S+)')
TESTING = re.compile(r'Iteration (\d+), Testing net')
TEST_OUTPUT = re.compile(r'Test net output #\d+: (\S+) = (\S+)')


def logged_values(log):
    """{('train', iter): loss, ('lr', iter): rate, ('test', iter, name): value} of a log."""
    values, testing = {}, None
    for line in log.splitlines():
        if m := LOSS_LINE.search(line):
            values['train', int(m[1])] = float(m[2])
        elif m := LR_LINE.search(line):
            values['lr', int(m[1])] = float(m[2])
        elif m := TESTING.search(line):
            testing = int(m[1])
        elif m := TEST_OUTPUT.search(line):
            values['test', testing, m[1]] = float(m[2])
    return values


def read_table(path, delimiter=None):
    """(header, rows) of a table parse_log writes, split at `delimiter`."""
    lines = path.read_text().splitlines()
    return lines[0].split(delimiter), [line.split(delimiter) for line in lines[1:]]


def compare_tables(theirs, ours, tolerance):
    """Same headers, same rows; Seconds is wall time, numbers within `tolerance` (the
    learning rate to its printed digits)."""
    for suffix in theirs:
        (header, rows), (our_header, our_rows) = theirs[suffix], ours[suffix]
        assert our_header == header and len(our_rows) == len(rows) > 0, suffix
        for row, our_row in zip(rows, our_rows):
            assert len(our_row) == len(row), (suffix, row, our_row)
            for column, a, b in zip(header, row, our_row):
                if column in ('Seconds',):
                    continue
                if column in ('NumIters', '#Iters'):
                    assert float(a) == float(b), (suffix, column, row, our_row)
                elif column in ('LearningRate',):
                    assert math.isclose(float(b), float(a), rel_tol=2e-6), (suffix, row, our_row)
                else:
                    assert abs(float(b) - float(a)) <= tolerance, (suffix, column, row, our_row)


# -- nets the tests write --------------------------------------------------------------------
TINY_DEPLOY = '''name: "tiny"
layer {{ name: "data" type: "Input" top: "data"
        input_param {{ shape {{ dim: 10 dim: 3 dim: {size} dim: {size} }} }} }}
layer {{ name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param {{ num_output: 8 kernel_size: 11 stride: 8 }} }}
layer {{ name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }}
layer {{ name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param {{ pool: MAX kernel_size: 3 stride: 2 }} }}
layer {{ name: "fc" type: "InnerProduct" bottom: "pool1" top: "fc"
        inner_product_param {{ num_output: 20 }} }}
layer {{ name: "prob" type: "Softmax" bottom: "fc" top: "prob" }}
'''


PYLOSS_NET = '''name: "PythonLossFromFiles"
layer { name: "data" type: "HDF5Data" top: "x" top: "y"
        hdf5_data_param { source: "data.txt" batch_size: 10 } }
layer { name: "ipx" type: "InnerProduct" bottom: "x" top: "ipx"
        inner_product_param { num_output: 4 } }
layer { name: "ipy" type: "InnerProduct" bottom: "y" top: "ipy"
        inner_product_param { num_output: 4 } }
layer { name: "loss" type: "Python" bottom: "ipx" bottom: "ipy" top: "loss"
        python_param { module: "pyloss" layer: "EuclideanLossLayer" } loss_weight: 1 }
'''
PYLOSS_SOLVER = '''net: "net.prototxt"
base_lr: 0.05
momentum: 0.9
weight_decay: 0.0005
lr_policy: "step"
gamma: 0.5
stepsize: 10
display: 1
max_iter: 30
snapshot: 30
snapshot_prefix: "pyloss"
'''


# -- notebooks -------------------------------------------------------------------------------
PRELUDE = '''\
# -- added by the test: a CPU machine (the GPU calls become CPU ones), Python 2's str files,
# NumPy < 1.23's loadtxt (delimiter='\\n' meant a field per line), NumPy 1's binary
# fromstring (NumPy 2 has frombuffer only)
import functools as _functools, tempfile as _tempfile
import numpy as _numpy
import caffe as _caffe
_caffe.set_device = lambda device: None
_caffe.set_mode_gpu = _caffe.set_mode_cpu
_tempfile.NamedTemporaryFile = _functools.partial(_tempfile.NamedTemporaryFile, mode='w')
_loadtxt = _numpy.loadtxt
_numpy.loadtxt = lambda *a, **k: _loadtxt(*a, **dict(k, delimiter='\\t')
                                          if k.get('delimiter') == '\\n' else k)
_fromstring = _numpy.fromstring
_numpy.fromstring = lambda string, dtype=float, count=-1, *, sep='': (
    _numpy.frombuffer(string, dtype, count).copy() if sep == '' else
    _fromstring(string, dtype, count, sep=sep))
# -- the notebook's code cells
'''
EPILOGUE = '''
# -- added by the test: the values compared
import numpy as _np
_np.savez({out!r}, **{{_k: _np.asarray(eval(_e)) for _k, _e in {values!r}.items()}})
'''


def notebook_cells(path):
    """The code cells of a notebook's JSON, as source strings."""
    cells = json.loads(pathlib.Path(path).read_text())['cells']
    return [''.join(c['source']) for c in cells if c['cell_type'] == 'code']


def without_magics(source):
    """IPython's shell (`!`) and magic (`%`, `%%`) lines become `pass` at their indent,
    with the lines a trailing backslash continues."""
    out, continued = [], False
    for line in source.splitlines():
        stripped = line.lstrip()
        if continued or stripped.startswith(('!', '%')):
            if not continued:
                out.append(line[:len(line) - len(stripped)] + 'pass')
            continued = line.rstrip().endswith('\\')
            continue
        out.append(line)
    return '\n'.join(out)


def to_python3(source):
    """lib2to3's default fixers over `source` (Caffe's notebooks are Python 2)."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        from lib2to3 import refactor
        tool = refactor.RefactoringTool(refactor.get_fixers_from_package('lib2to3.fixes'))
        return str(tool.refactor_string(source + '\n', 'notebook'))


def notebook_script(path, out, values, upto=None, before=None):
    """One Python 3 script of a notebook's code cells in order (the first `upto`), its
    shell and magic lines skipped; at its end it saves `values` ({key: expression}) to
    `out` (npz). `before` ({cell index: code}) runs code of the test's before those cells."""
    cells = notebook_cells(path)[:upto]
    for index, code in sorted((before or {}).items(), reverse=True):
        cells.insert(index, code)
    body = to_python3('\n\n'.join(without_magics(c) for c in cells))
    return PRELUDE + body + EPILOGUE.format(out=str(out), values=dict(values))


def python2():
    """A Python 2 interpreter (tools/extra/parse_log.py is Python 2), or None."""
    candidates = [shutil.which('python2'), shutil.which('python2.7')]
    candidates += sorted(str(p) for p in pathlib.Path.home().glob('.pyenv/versions/2.*/bin/'
                                                                  'python'))
    for candidate in filter(None, candidates):
        try:
            done = subprocess.run([candidate, '-c', 'import sys; print(sys.version_info[0])'],
                                  capture_output=True, text=True, timeout=60)
        except OSError:
            continue
        if done.returncode == 0 and done.stdout.strip() == '2':
            return candidate
    return None


def run_notebook(sides, trees, notebook, values, upto=None, folder='examples', before=None):
    """The notebook's code as one script run in each side's tree/`folder`; {side: values}."""
    path = sides['caffe'].source / 'examples' / notebook
    results = {}
    for name, side in sides.items():
        cwd = trees[name] / folder
        out = cwd / f'{path.stem}-values.npz'
        script = cwd / f'{path.stem}-notebook.py'
        script.write_text(notebook_script(path, out, values, upto, before))
        side.run(side.python(script), cwd)
        results[name] = dict(np.load(out))
    return results


def assert_close(results, rtol=1e-5):
    """Every value of the engine's equal to Caffe's to float32 rounding through a deep net:
    relative L2 distance at most `rtol`."""
    assert results['engine'].keys() == results['caffe'].keys()
    for key, theirs in results['caffe'].items():
        ours = results['engine'][key].astype(np.float64)
        assert ours.shape == theirs.shape, key
        distance = np.linalg.norm(ours - theirs) / max(np.linalg.norm(theirs), 1e-30)
        assert distance <= rtol, (key, distance)
        print(f'{key}: relative L2 distance {distance:.2g}')
