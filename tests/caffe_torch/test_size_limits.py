"""Oversized blobs and weights files: refused by name and size before any allocation.

The cases that would allocate gigabytes run in a child process whose address space is
capped at 1 GiB above what it holds after importing the engine (RLIMIT_AS): there, reading
the data of a dataset declaring 10^9 floats raises MemoryError, so a clean CaffeError shows
that the declared shape was checked before the data was read.
"""
import os
import subprocess
import sys
import textwrap

from google.protobuf import text_format
import h5py
import numpy as np
import pytest

import caffe_torch as caffe
from caffe_torch.errors import CaffemodelError
from caffe_torch.proto import caffe_pb2

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HUGE = 10 ** 9

CAPPED = '''
import resource, sys
sys.path[:0] = [{root!r}]
import caffe_torch as caffe
held = int(next(l for l in open('/proc/self/status') if l.startswith('VmSize')).split()[1])
resource.setrlimit(resource.RLIMIT_AS, (held * 1024 + (1 << 30), resource.RLIM_INFINITY))
try:
{body}
except BaseException as e:
    print(type(e).__name__)
    print(e)
else:
    print('no error')
'''

NET = '''name: "tiny"
layer { name: "input" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
  inner_product_param { num_output: 2 } }
'''


def _capped(body):
    """Run `body` in a child with capped address space: (exception name, message)."""
    code = CAPPED.format(root=ROOT, body=textwrap.indent(textwrap.dedent(body), '    '))
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    name, _, message = proc.stdout.partition('\n')
    return name, message


def _net_file(tmp_path, text=NET):
    path = tmp_path / 'net.prototxt'
    path.write_text(text)
    return str(path)


def _huge_dataset(group, name):
    """A float dataset declaring 10^9 values with no data written: a few KB on disk."""
    group.create_dataset(name, shape=(HUGE,), dtype='f4', chunks=(1 << 16,),
                         compression='gzip')


def test_catch_hdf5_caffemodel_declaring_huge_param(tmp_path):
    """An HDF5 caffemodel whose dataset declares 10^9 floats is refused by its declared
    shape, naming the layer and param index, without reading the data."""
    path = tmp_path / 'huge.caffemodel.h5'
    with h5py.File(path, 'w') as f:
        _huge_dataset(f.create_group('data/ip'), '0')
        f['data/ip/1'] = np.zeros(2, np.float32)
    assert path.stat().st_size < 16384
    name, message = _capped(f'caffe.Net({_net_file(tmp_path)!r}, caffe.TEST, '
                            f'weights={str(path)!r})')
    assert name == 'CaffemodelError', message
    assert 'layer "ip"' in message and 'param 0' in message, message
    assert '(1000000000,)' in message and '(2, 3)' in message, message
    assert str(path) in message and 'rename the layer' in message, message


def _hdf5_solver(tmp_path):
    """A solver on NET snapshotting in HDF5, and the path of its first solverstate."""
    solver_file = tmp_path / 'solver.prototxt'
    solver_file.write_text(f'net: "{_net_file(tmp_path)}" base_lr: 0.01 momentum: 0.9 '
                           f'lr_policy: "fixed" snapshot_format: HDF5 '
                           f'snapshot_prefix: "{tmp_path / "run"}"')
    caffe.SGDSolver(str(solver_file)).snapshot()
    return str(solver_file), tmp_path / 'run_iter_0.solverstate.h5'


def _restore_capped(solver_file, state):
    return _capped(f'''
        solver = caffe.SGDSolver({solver_file!r})
        solver.restore({str(state)!r})''')


def test_catch_hdf5_solverstate_declaring_huge_history(tmp_path):
    """An HDF5 solverstate whose history dataset declares 10^9 floats is refused by its
    declared shape, naming the history blob and its param, without reading it."""
    solver_file, state = _hdf5_solver(tmp_path)
    with h5py.File(state, 'r+') as f:
        del f['history/0']
        _huge_dataset(f['history'], '0')
    name, message = _restore_capped(solver_file, state)
    assert name == 'CaffemodelError', message
    assert 'history blob 0 has shape (1000000000,), the parameter (2, 3) (layer "ip" param 0)' \
        in message, message


def test_catch_hdf5_solverstate_with_huge_iter(tmp_path):
    """An `iter` dataset declaring 10^9 values instead of one scalar is refused unread."""
    solver_file, state = _hdf5_solver(tmp_path)
    with h5py.File(state, 'r+') as f:
        del f['iter']
        f.create_dataset('iter', shape=(HUGE,), dtype='i4', chunks=(1 << 16,),
                         compression='gzip')
    name, message = _restore_capped(solver_file, state)
    assert name == 'CaffemodelError', message
    assert '"iter"' in message and '(1000000000,)' in message, message


def test_catch_binary_solverstate_declaring_huge_history(tmp_path):
    """A binary solverstate whose history BlobProto declares 10^9 values (and holds none)
    is refused by its declared shape, naming the file, history blob and param."""
    solver_file, _ = _hdf5_solver(tmp_path)
    state = caffe_pb2.SolverState(iter=1)
    state.history.add().shape.dim.append(HUGE)
    state.history.add().shape.dim.append(2)
    path = tmp_path / 'huge.solverstate'
    path.write_bytes(state.SerializeToString())
    solver = caffe.SGDSolver(solver_file)
    with pytest.raises(CaffemodelError, match=r'huge\.solverstate: history blob 0 has '
                       r'shape \(1000000000,\), the parameter \(2, 3\) \(layer "ip" param 0\)'):
        solver.restore(str(path))


def test_catch_binary_caffemodel_declaring_huge_param(tmp_path):
    """A caffemodel BlobProto declaring 10^9 values is refused by shape before any copy."""
    model = caffe_pb2.NetParameter(name='tiny')
    layer = model.layer.add(name='ip', type='InnerProduct')
    layer.blobs.add().shape.dim.append(HUGE)
    layer.blobs.add().shape.dim.append(2)
    path = tmp_path / 'huge.caffemodel'
    path.write_bytes(model.SerializeToString())
    with pytest.raises(CaffemodelError, match=r'layer "ip"; shape mismatch\. Source param '
                       r'shape is \(1000000000,\); target param shape is \(2, 3\)'):
        caffe.Net(_net_file(tmp_path), caffe.TEST, weights=str(path))


def _layers(text):
    return 'name: "big"\n' + textwrap.dedent(text)


def _build_capped(tmp_path, text):
    return _capped(f'caffe.Net({_net_file(tmp_path, _layers(text))!r}, caffe.TEST)')


def test_catch_convolution_num_output_over_int_max(tmp_path):
    """num_output 2^31-1 gives a weight over INT_MAX elements: refused at set-up as Caffe's
    Blob::Reshape refuses it, naming the layer, param, shape and bytes."""
    name, message = _build_capped(tmp_path, '''
        layer { name: "input" type: "Input" top: "data"
          input_param { shape { dim: 1 dim: 3 dim: 4 dim: 4 } } }
        layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
          convolution_param { num_output: 2147483647 kernel_size: 1 } }''')
    assert name == 'BlobSizeError', message
    assert message.startswith('layer "conv" (Convolution): param 0 of shape '
                              '(2147483647, 3, 1, 1)'), message
    assert '25769803764 bytes' in message and 'INT_MAX' in message, message
    assert 'num_output' in message, message


def test_catch_inner_product_weight_over_memory(tmp_path):
    """A weight of exactly INT_MAX floats (8 GiB) passes Caffe's count check but not the
    memory there is: refused before allocation, naming layer, param, shape and bytes."""
    name, message = _build_capped(tmp_path, '''
        layer { name: "input" type: "Input" top: "data" input_param { shape { dim: 1 dim: 1 } } }
        layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
          inner_product_param { num_output: 2147483647 } }''')
    assert name == 'BlobSizeError', message
    assert message.startswith('layer "ip" (InnerProduct): param 0 of shape '
                              '(2147483647, 1)'), message
    assert '8589934588 bytes' in message and 'num_output' in message, message


def test_catch_input_shape_over_int_max():
    """An Input of 10^6 x 10^6 is refused when the net is built, naming the layer, its top,
    the shape and the bytes (the blob is never allocated, so no child process is needed)."""
    text = _layers('''
        layer { name: "input" type: "Input" top: "data"
          input_param { shape { dim: 1000000 dim: 1000000 } } }''')
    param = text_format.Merge(text, caffe_pb2.NetParameter())
    param.state.phase = caffe.TEST
    with pytest.raises(caffe.CaffeError, match=r'layer "input" \(Input\): top 0 "data" of '
                       r'shape \(1000000, 1000000\) .*4000000000000 bytes.*INT_MAX.*'
                       r'input shape'):
        caffe.Net(param)


def test_catch_failed_allocation_names_the_layer(tmp_path):
    """A top within every limit whose allocation still fails (1.2 GB with 1 GiB left) raises
    the engine's error naming the layer and top, not a bare torch RuntimeError."""
    name, message = _build_capped(tmp_path, '''
        layer { name: "dummy" type: "DummyData" top: "data"
          dummy_data_param { shape { dim: 300 dim: 1000 dim: 1000 } } }''')
    assert name == 'BlobSizeError', message
    assert message.startswith('layer "dummy" (DummyData): top 0 "data" of shape '
                              '(300, 1000, 1000)'), message
    assert '1200000000 bytes' in message and 'could not be allocated' in message, message
