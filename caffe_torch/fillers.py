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
    """Fill `blob`'s data as the FillerParameter `filler` prescribes, in place (no copy of a
    large weight is ever made: FCN's fc6 alone is 400 MB)."""
    kind = filler.type
    if kind not in _FILLERS:
        raise ValueError(f'unknown filler type "{kind}"; Caffe knows '
                         f'{", ".join(sorted(_FILLERS))}')
    _FILLERS[kind](filler, blob.data_tensor)


def _generator(device):
    return mode.generator(device)


def _constant(filler, out):
    out.fill_(filler.value)


def _uniform(filler, out, low=None, high=None):
    low = filler.min if low is None else low
    high = filler.max if high is None else high
    if low > high:
        raise ValueError(f'uniform filler needs min <= max, got min={low} max={high}')
    out.uniform_(low, high, generator=_generator(out.device))


def _gaussian(filler, out):
    out.normal_(filler.mean, filler.std, generator=_generator(out.device))
    if filler.sparse >= 0:
        if out.dim() == 0:
            raise ValueError('a sparse gaussian filler needs a blob with at least one axis')
        keep = torch.full(out.shape, filler.sparse / out.shape[0],
                          device=out.device).clamp_(0, 1)
        out.mul_(torch.bernoulli(keep, generator=_generator(out.device)))


def _positive_unitball(filler, out):
    _uniform(filler, out, 0.0, 1.0)
    rows = out.view(out.shape[0], -1)
    rows.div_(rows.sum(dim=1, keepdim=True))


def _fan(filler, shape):
    count = math.prod(shape)
    fan_in = count / shape[0]
    fan_out = count / shape[1] if len(shape) > 1 else count
    if filler.variance_norm == VarianceNorm.Value('AVERAGE'):
        return (fan_in + fan_out) / 2.0
    if filler.variance_norm == VarianceNorm.Value('FAN_OUT'):
        return fan_out
    return fan_in


def _xavier(filler, out):
    scale = math.sqrt(3.0 / _fan(filler, tuple(out.shape)))
    _uniform(filler, out, -scale, scale)


def _msra(filler, out):
    std = math.sqrt(2.0 / _fan(filler, tuple(out.shape)))
    _gaussian(caffe_pb2.FillerParameter(mean=0.0, std=std), out)


def bilinear_kernel(size):
    """The K x K bilinear upsampling kernel of Caffe's filler, as a float64 tensor."""
    f = math.ceil(size / 2.0)
    c = (size - 1) / (2.0 * f)
    ramp = 1 - torch.abs(torch.arange(size, dtype=torch.float64) / f - c)
    return ramp[:, None] * ramp[None, :]


def _bilinear(filler, out):
    shape = tuple(out.shape)
    if len(shape) != 4 or shape[2] != shape[3]:
        raise ValueError(f'the bilinear filler needs a 4-D blob with a square kernel, got '
                         f'shape {shape}')
    out.copy_(bilinear_kernel(shape[3]).to(torch.float32).expand(shape))


_FILLERS = {'constant': _constant, 'uniform': _uniform, 'gaussian': _gaussian,
            'positive_unitball': _positive_unitball, 'xavier': _xavier, 'msra': _msra,
            'bilinear': _bilinear}


def filler_types():
    """The filler type names Caffe knows."""
    return sorted(_FILLERS)
