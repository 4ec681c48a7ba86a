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
