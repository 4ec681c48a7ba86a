"""Kernels whose result for one sample does not depend on the rest of its batch.

BVLC Caffe computes each sample the same way, whatever batch it comes in: its convolution
runs one gemm per image, its InnerProduct's gemm and its elementwise loops happen to treat
every row and element alike, so one image gives the same fc7 bit for bit alone or among 50.
torch's kernels do not. BLAS picks a kernel and a blocking from the number of rows (MKL: a
gemv for one row, another path below 16 rows, the blocked gemm from 16 on; cuBLAS picks by
shape too), and a vectorised CPU loop hands the elements past the last full vector of its
share of a tensor to a scalar routine that rounds pow differently from the vector one
(exp, log, log1p, tanh and sqrt round alike in both; oneDNN and cuDNN pick a convolution
algorithm by the batch size). So here:

- `mm_rows` multiplies in blocks of exactly ROWS rows, each copied into one fresh buffer
  (zero-padded at the end), so every row meets one call of one shape and alignment;
- `scalar_pow` runs pow through torch's scalar loop on the CPU for every element.

Convolutions go one image per call (layer_types/vision.py), as Caffe's do.
"""
import torch

# 16 rows: MKL's blocked sgemm path, fast per row (below 16 rows MKL takes slower paths:
# VGG's fc6 in blocks of 8 took 3x the time of blocks of 16 on 2 cores); a batch of one
# pays for a 16-row product (fc6: 116 ms instead of 47 ms there).
ROWS = 16


def mm_rows(x, w, out=None):
    """x (M, K) @ w (K, N) into `out` (M, N, or a fresh tensor) in blocks of ROWS rows. A row's
    float32 result is then the same for any M and any other rows, provided one call treats
    its rows alike (MKL's do; tests/caffe_torch/test_batch_invariance.py checks it wherever
    it runs)."""
    m, k = x.shape
    if out is None:
        out = x.new_empty(m, w.shape[1])
    if m < ROWS:  # one block: the rows and zeros below them in one fresh buffer
        out.copy_(torch.mm(torch.constant_pad_nd(x, (0, 0, 0, ROWS - m)), w)[:m])
        return out
    block = x.new_empty(ROWS, k)
    result = x.new_empty(ROWS, w.shape[1])
    for start in range(0, m, ROWS):
        rows = min(ROWS, m - start)
        block[:rows].copy_(x[start:start + rows])
        if rows < ROWS:
            block[rows:].zero_()
        torch.mm(block, w, out=result)
        out[start:start + rows].copy_(result[:rows])
    return out


def scalar_pow(x, exponent):
    """x ** exponent elementwise, every element through the same routine: on the CPU torch's
    scalar loop (a strided view is never vectorised), which rounds as Caffe's std::pow."""
    if x.device.type != 'cpu':
        return torch.pow(x, exponent)
    spread = x.new_empty(x.numel(), 2)
    spread[:, 0] = x.reshape(-1)
    return torch.pow(spread[:, 0], exponent).reshape(x.shape)

