"""Bilinear upsampling kernels written into the diagonal of Deconvolution weights.

    upsample_filt(K)[y, x] = (1 - |y - c| / f) (1 - |x - c| / f),
    f = floor((K + 1) / 2),  c = f - 1 for odd K, f - 0.5 for even K

(the reference's upsample_filt; the same numbers as Caffe's `bilinear` filler). A
Deconvolution with stride s and kernel 2s (or 2s - 1) upsamples by s exactly this way, e.g.
FCN-32s's `upscore`: kernel 64, stride 32. The equivalent prototxt without surgery:

    convolution_param { num_output: C  group: C  kernel_size: 64  stride: 32
                        weight_filler { type: "bilinear" }  bias_term: false }

FCN nets instead keep group 1 and put the kernel on the diagonal [c, c] of a C x C x K x K
weight (off-diagonal zero), which `interp` does for every Deconvolution with lr_mult 0.
"""
import os

import numpy as np


def upsample_filt(size):
    """The K x K bilinear kernel, float64."""
    if int(size) != size or size < 1:
        raise ValueError(f'kernel size must be a positive integer, got {size}')
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    ramp = 1 - np.abs(np.arange(size) - center) / factor
    return ramp[:, None] * ramp[None, :]


def bilinear_targets(net_param):
    """Names of the Deconvolution layers whose weights are frozen (lr_mult 0): by type and
    parameters, never by a substring of the name."""
    return [layer.name for layer in net_param.layer
            if layer.type == 'Deconvolution' and layer.param and layer.param[0].lr_mult == 0]


def interp(net, layers=None):
    """Write bilinear kernels into `layers`: names, or a NetParameter or prototxt path whose
    frozen Deconvolutions are meant (pycaffe's Net does not keep its NetParameter; an
    engine Net does, so there the default is its own). Returns the names written."""
    if layers is None:
        if not hasattr(net, 'param'):
            raise TypeError('interp(net) on a pycaffe Net needs the layers: their names, '
                            'or the prototxt the net was built from, e.g. '
                            'interp(net, "train.prototxt")')
        layers = net.param
    if isinstance(layers, (str, os.PathLike)):
        from backend import files
        layers = files.read_prototxt(layers)
    if hasattr(layers, 'layer'):
        layers = bilinear_targets(layers)
    for name in layers:
        _fill_diagonal(name, net.params[name][0])
    return list(layers)


def _fill_diagonal(name, blob):
    shape = tuple(blob.data.shape)
    if len(shape) != 4 or shape[2] != shape[3]:
        raise ValueError(f'interp: layer "{name}" has weight shape {shape}; bilinear '
                         f'upsampling needs a square kernel (out, in, K, K)')
    out_channels, in_channels, size = shape[0], shape[1], shape[2]
    if in_channels not in (out_channels, 1):
        raise ValueError(f'interp: layer "{name}" has weight shape {shape}: {in_channels} '
                         f'inputs per group for {out_channels} outputs; the kernel goes on '
                         f'a diagonal, so inputs must equal outputs (group 1) or be 1 '
                         f'(group = channels)')
    weights = np.zeros(shape, dtype=np.float32)
    kernel = upsample_filt(size)
    for c in range(out_channels):
        weights[c, c if in_channels == out_channels else 0] = kernel
    blob.data[...] = weights
