"""Caffe's weight fillers (filler.hpp), with its formulas, drawing from the seeded generator.

  constant            value
  uniform             U(min, max)
  gaussian            N(mean, std); with sparse >= 0 each weight is kept with probability
                      sparse / shape[0] and zeroed otherwise
  positive_unitball   U(0, 1), then each of the shape[0] rows scaled to sum to 1
  xavier              U(-a, a), a = sqrt(3 / n)
  msra                N(0, s), s = sqrt(2 / n)
      n = fan_in = count / shape[0], fan_out = count / shape[1] (count for 1-D), or their
      mean, as variance_norm says
  bilinear            w[..., y, x] = (1 - |x / f - c|) (1 - |y / f - c|),
                      f = ceil(K / 2), c = (K - 1) / (2 f), for a K x K kernel. It fills every
                      (output, input) pair, so upsampling C channels independently needs
                      `group: C` (one input per group) in the Deconvolution.
The random streams are PyTorch's, not Caffe's boost mt19937: seeded runs repeat exactly
here, but random fills differ numerically from Caffe's (their distributions do not).
"""
import math

import torch

from caffe_torch import mode
from caffe_torch.proto import caffe_pb2

VarianceNorm = caffe_pb2.FillerParameter.VarianceNorm


def fill(blob, filler):
    """Fill `blob`'s data as the FillerParameter `filler` prescribes."""
    kind = filler.type
    if kind not in _FILLERS:
        raise ValueError(f'unknown filler type "{kind}"; Caffe knows '
                         f'{", ".join(sorted(_FILLERS))}')
    data = blob.data_tensor
    values = _FILLERS[kind](filler, tuple(blob.shape), data.device)
    data.copy_(values.reshape(data.shape))


def _generator(device):
    return mode.generator(device)


def _constant(filler, shape, device):
    return torch.full(shape, filler.value, dtype=torch.float32, device=device)


def _uniform(filler, shape, device, low=None, high=None):
    low = filler.min if low is None else low
    high = filler.max if high is None else high
    if low > high:
        raise ValueError(f'uniform filler needs min <= max, got min={low} max={high}')
    out = torch.empty(shape, dtype=torch.float32, device=device)
    return out.uniform_(low, high, generator=_generator(device))


def _gaussian(filler, shape, device):
    out = torch.empty(shape, dtype=torch.float32, device=device)
    out.normal_(filler.mean, filler.std, generator=_generator(device))
    if filler.sparse >= 0:
        if not shape:
            raise ValueError('a sparse gaussian filler needs a blob with at least one axis')
        keep = torch.full(shape, filler.sparse / shape[0], device=device).clamp_(0, 1)
        out *= torch.bernoulli(keep, generator=_generator(device))
    return out


def _positive_unitball(filler, shape, device):
    out = _uniform(filler, shape, device, 0.0, 1.0)
    rows = out.reshape(shape[0], -1)
    rows /= rows.sum(dim=1, keepdim=True)
    return out


def _fan(filler, shape):
    count = math.prod(shape)
    fan_in = count / shape[0]
    fan_out = count / shape[1] if len(shape) > 1 else count
    if filler.variance_norm == VarianceNorm.Value('AVERAGE'):
        return (fan_in + fan_out) / 2.0
    if filler.variance_norm == VarianceNorm.Value('FAN_OUT'):
        return fan_out
    return fan_in


def _xavier(filler, shape, device):
    scale = math.sqrt(3.0 / _fan(filler, shape))
    return _uniform(filler, shape, device, -scale, scale)


def _msra(filler, shape, device):
    std = math.sqrt(2.0 / _fan(filler, shape))
    plain = caffe_pb2.FillerParameter(mean=0.0, std=std)
    return _gaussian(plain, shape, device)


def bilinear_kernel(size):
    """The K x K bilinear upsampling kernel of Caffe's filler, as a float64 tensor."""
    f = math.ceil(size / 2.0)
    c = (size - 1) / (2.0 * f)
    ramp = 1 - torch.abs(torch.arange(size, dtype=torch.float64) / f - c)
    return ramp[:, None] * ramp[None, :]


def _bilinear(filler, shape, device):
    if len(shape) != 4 or shape[2] != shape[3]:
        raise ValueError(f'the bilinear filler needs a 4-D blob with a square kernel, got '
                         f'shape {shape}')
    kernel = bilinear_kernel(shape[3]).to(torch.float32)
    return kernel.expand(shape).to(device).contiguous()


_FILLERS = {'constant': _constant, 'uniform': _uniform, 'gaussian': _gaussian,
            'positive_unitball': _positive_unitball, 'xavier': _xavier, 'msra': _msra,
            'bilinear': _bilinear}
