"""GPU mode: the golden cases on CUDA, and host/device memory kept in sync."""
import pytest
import torch

import caffe_torch as caffe
from caffe_torch.blob import Blob
from golden_check import rel_error, run_case

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


@pytest.mark.parametrize('case', ['conv_k3p1', 'deconv_k4s2', 'pool_max_k3s2p1',
                                  'pool_ave_k4s3p2', 'lrn_across', 'softmaxloss_valid',
                                  'innerproduct', 'implicit_split', 'inplace_chain'])
def test_golden_case_on_gpu(gpu_mode, case):
    """Caffe's recorded outputs and diffs are met on the GPU too (TF32 off)."""
    net, data = run_case(case)
    assert net.blobs[next(iter(net.blobs))].data_tensor.is_cuda
    for name, value in data.get('top', {}).items():
        assert rel_error(net.blobs[name].data, value) < 1e-5, name
    if 'bottom_diff' in data or 'param_diff' in data:
        for name, value in data.get('top_diff', {}).items():
            net.blobs[name].diff[...] = value
        net.clear_param_diffs()
        net.backward()
        for name, value in data.get('bottom_diff', {}).items():
            assert rel_error(net.blobs[name].diff, value) < 1e-4, name
