"""Data-parallel training: two gloo ranks (torchrun-style, or pycaffe's caffe.NCCL) equal one
process with iter_size 2."""
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import caffe_torch as caffe
import dataset_fixtures as fx

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

NET = '''
layer { name: 'data' type: 'Python' top: 'data' top: 'label'
        python_param { module: 'data_layers.voc' layer: 'VOCSegDataLayer'
                       param_str: "{'split': 'train', 'randomize': False}" } }
layer { name: 'conv1' type: 'Convolution' bottom: 'data' top: 'conv1'
        param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 2 decay_mult: 0 }
        convolution_param { num_output: 4 kernel_size: 3 pad: 1
                            weight_filler { type: 'gaussian' std: 0.1 } } }
layer { name: 'relu1' type: 'ReLU' bottom: 'conv1' top: 'conv1' }
layer { name: 'score' type: 'Convolution' bottom: 'conv1' top: 'score'
        convolution_param { num_output: 21 kernel_size: 1
                            weight_filler { type: 'gaussian' std: 0.1 } } }
layer { name: 'loss' type: 'SoftmaxWithLoss' bottom: 'score' bottom: 'label' top: 'loss'
        loss_param { ignore_label: 255 normalize: false } }
'''

SCRIPT = '''
import sys, numpy as np
sys.path.insert(0, {root!r})
from backend import caffe
from caffe_torch import parallel
rank, world = parallel.init_from_env()
caffe.set_random_seed(5)  # fillers: rank 0's weights are broadcast anyway
solver = caffe.SGDSolver({solver!r})
parallel.DataParallel(solver)
solver.step(3)
if rank == 0:
    np.savez({out!r}, **{{f'{{k}}/{{i}}': b.data for k, v in solver.net.params.items()
                          for i, b in enumerate(v)}})
parallel.shutdown()
'''


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _solver(tmp_path, iter_size):
    (tmp_path / 'net.prototxt').write_text(NET)
    path = tmp_path / f'solver{iter_size}.prototxt'
    path.write_text(textwrap.dedent(f'''
        train_net: "{tmp_path / 'net.prototxt'}"
        base_lr: 1e-3 lr_policy: "fixed" momentum: 0.9 weight_decay: 0.0005
        iter_size: {iter_size} random_seed: 5'''))
    return str(path)


def _launch(tmp_path, world, iter_size, out):
    env = dict(os.environ, FCN_VOC_DIR=str(tmp_path / 'voc'), MASTER_ADDR='127.0.0.1',
               MASTER_PORT=str(_free_port()), WORLD_SIZE=str(world), OMP_NUM_THREADS='1')
    code = SCRIPT.format(root=ROOT, solver=_solver(tmp_path, iter_size), out=str(out))
    procs = [subprocess.Popen([sys.executable, '-c', code], cwd=str(tmp_path),
                              env=dict(env, RANK=str(r), LOCAL_RANK=str(r)),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for r in range(world)]
    for proc in procs:
        _, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
    return np.load(out)


def test_two_ranks_equal_one_process_with_iter_size_two(tmp_path):
    """Rank r reads images r, r + 2, ...; averaged gradients make 2 ranks x iter_size 1
    update exactly as 1 process x iter_size 2 reading the same images in turn."""
    ids = [f'2007_00{i:04d}' for i in range(6)]
    fx.make_voc(tmp_path / 'voc', ids=ids, sizes=(9, 11), splits={'train': ids})
    single = _launch(tmp_path, 1, 2, tmp_path / 'single.npz')
    ranks = _launch(tmp_path, 2, 1, tmp_path / 'ranks.npz')
    for key in single.files:
        np.testing.assert_allclose(ranks[key], single[key], rtol=2e-5, atol=1e-7, err_msg=key)
    start = np.load(tmp_path / 'single.npz')['conv1/0']
    assert np.abs(start).sum() > 0


NCCL_SCRIPT = '''
import sys, numpy as np
sys.path.insert(0, {root!r})
from backend import caffe
rank = int(sys.argv[1])
caffe.set_solver_count(2)
caffe.set_solver_rank(rank)
caffe.set_multiprocess(True)
caffe.set_random_seed(5 + rank)  # different fillers: bcast must make them rank 0's
solver = caffe.SGDSolver({solver!r})
nccl = caffe.NCCL(solver, {uid!r})
nccl.bcast()
solver.add_callback(nccl)
solver.net.after_backward(nccl)
solver.step(3)
if rank == 0:
    np.savez({out!r}, **{{f'{{k}}/{{i}}': b.data for k, v in solver.net.params.items()
                          for i, b in enumerate(v)}})
'''


def test_pycaffe_nccl_script_equals_one_process_with_iter_size_two(tmp_path):
    """Caffe's python/train.py pattern (caffe.NCCL.new_uid in the parent, NCCL(solver, uid),
    bcast, add_callback(nccl), after_backward(nccl) in each rank) trains as DataParallel:
    equal to one process with iter_size 2."""
    ids = [f'2007_00{i:04d}' for i in range(6)]
    fx.make_voc(tmp_path / 'voc', ids=ids, sizes=(9, 11), splits={'train': ids})
    single = _launch(tmp_path, 1, 2, tmp_path / 'single.npz')
    uid = caffe.NCCL.new_uid()
    assert isinstance(uid, bytes)
    code = NCCL_SCRIPT.format(root=ROOT, solver=_solver(tmp_path, 1), uid=uid,
                              out=str(tmp_path / 'nccl.npz'))
    env = dict(os.environ, FCN_VOC_DIR=str(tmp_path / 'voc'), OMP_NUM_THREADS='1')
    for key in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK'):
        env.pop(key, None)
    procs = [subprocess.Popen([sys.executable, '-c', code, str(r)], cwd=str(tmp_path),
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for r in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
    ranks = np.load(tmp_path / 'nccl.npz')
    for key in single.files:
        np.testing.assert_allclose(ranks[key], single[key], rtol=2e-5, atol=1e-7, err_msg=key)


def test_nccl_uid_must_be_one_new_uid_made():
    with pytest.raises(ValueError, match='32 hex digits'):
        caffe.parallel._uid_text(b'../../etc/passwd')
