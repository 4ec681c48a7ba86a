"""GPU mode: the golden cases on CUDA, and host/device memory kept in sync."""
import pytest
import torch

import caffe_torch as caffe
from caffe_torch.blob import Blob
from golden_check import CASES, check_case

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')]


@pytest.fixture
def gpu_mode():
    caffe.set_device(0)
    caffe.set_mode_gpu()
    yield
    caffe.set_mode_cpu()


def test_host_writes_reach_the_device(gpu_mode):
    """Writing the host view, then reading the device tensor, sees the write (and back)."""
    blob = Blob((2, 3))
    assert blob.data_tensor.is_cuda
    blob.data[...] = 7
    assert torch.all(blob.data_tensor == 7)
    blob.data_tensor.fill_(3)
    assert (blob.data == 3).all()
    blob.diff[...] = 1
    blob.diff_tensor.mul_(5)
    assert (blob.diff == 5).all()


@pytest.mark.parametrize('case', sorted(p.name for p in CASES.iterdir()))
def test_golden_case_on_gpu(gpu_mode, case, tmp_path):
    """Every case Caffe recorded is met on the GPU too (TF32 off), blobs on the device."""
    check_case(case, tmp_path, forward_tol=1e-5, backward_tol=1e-4)
    assert Blob((1,)).data_tensor.is_cuda


def test_forward_only_fast_forms_on_gpu(gpu_mode):
    """The forward-only plan on CUDA (cuDNN channels-last, gemm convolutions, pooling):
    demo-fcn8s's score equals the keep-everything net's (rel. 1e-5); the channels-last
    blobs copy to the host in NCHW indexing."""
    import numpy as np
    from benchmarks.layer_profile import random_net
    full, lean = (random_net('demo-fcn8s', 96) for _ in range(2))
    want = full.forward()['score'].copy()
    lean.keep_blobs(['score', 'conv3_1'])
    got = lean.forward()['score'].copy()
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()
    kept = lean.blobs['conv3_1'].data
    assert np.abs(kept - full.blobs['conv3_1'].data).max() <= 1e-5 * np.abs(kept).max()
