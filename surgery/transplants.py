"""Parameter transplant between nets, with a report of every blob's fate.

Why the fc-to-conv reshape is the only coercion: an InnerProduct over a C x H x W bottom
computes sum over (c, h, w) of W[o, c*H*W + h*W + w] x[c, h, w] (Caffe flattens in C
order), which is exactly a convolution with kernel K[o, c, h, w] = W[o, c*H*W + h*W + w]
evaluated at one position. So VGG16's fc6 (4096 x 25088) becomes the 4096 x 512 x 7 x 7
convolution of FCN's fc6, and fc7 (4096 x 4096) a 1 x 1 convolution; slid over a bigger
input they give the classifier's output at every window (the paper's §3.1).
"""
import collections
import dataclasses
import types

import numpy as np

COPIED, RESHAPED, DROPPED, LEFT = 'copied', 'reshaped', 'dropped', 'left at init'


class SurgeryError(ValueError):
    """A transplant or score transfer whose shapes do not fit."""


@dataclasses.dataclass
class Row:
    source: str
    target: str
    index: int
    action: str
    source_shape: tuple
    target_shape: tuple


class Report(list):
    """Rows of (source layer, target layer, blob index, action, shapes); prints as a table."""

    def layers(self, action):
        return sorted({r.target if action == LEFT else r.source for r in self
                       if r.action == action})

    def __str__(self):
        lines = [f'{"source":<22} {"target":<22} {"#":>2} {"action":<13} shapes']
        for r in self:
            shapes = ' -> '.join('x'.join(map(str, s)) for s in (r.source_shape,
                                                                 r.target_shape) if s)
            lines.append(f'{r.source or "-":<22} {r.target or "-":<22} {r.index:>2} '
                         f'{r.action:<13} {shapes}')
        counts = {a: sum(r.action == a for r in self) for a in (COPIED, RESHAPED, DROPPED,
                                                                 LEFT)}
        lines.append(', '.join(f'{n} {a}' for a, n in counts.items()))
        return '\n'.join(lines)


def _shape(blob):
    return tuple(blob.data.shape)


def _fc_to_conv(source, target):
    """Whether `source` (an InnerProduct weight, 2-D or legacy 1x1xOxI) reshapes into the
    convolution weight `target` (O x C x H x W) in C order, or a bias into a bias."""
    src = tuple(d for d in source if d != 1) or (1,)
    if len(target) == 4 and len(src) == 2:
        return src[0] == target[0] and src[1] == int(np.prod(target[1:]))
    return len(src) == 1 and int(np.prod(target)) == src[0]


def transplant(net, source, mapping=None, suffix='', verbose=True):
    """Copy every parameter of `source` into `net`, by layer name (plus `suffix`) unless
    `mapping` ({source layer: target layer}) says otherwise.

    Identical shapes are copied; an InnerProduct weight or bias goes into a convolution
    when the element counts agree (reshaped in C order); any other mismatch is a
    SurgeryError. Source layers the target lacks, and source blobs beyond the target's,
    are dropped; target parameters nothing fills are left at their initialisation.
    """
    mapping = dict(mapping or {})
    report, filled = Report(), set()
    for name, blobs in source.params.items():
        target = mapping.get(name, name + suffix)
        if target not in net.params:
            report += [Row(name, '', i, DROPPED, _shape(b), ()) for i, b in enumerate(blobs)]
            continue
        for i, blob in enumerate(blobs):
            report.append(_copy_blob(name, target, i, blob, net.params[target]))
            filled.add((target, i))
    for name, blobs in net.params.items():
        report += [Row('', name, i, LEFT, (), _shape(b)) for i, b in enumerate(blobs)
                   if (name, i) not in filled]
    if verbose:
        print(report)
    return report


def _copy_blob(name, target, i, blob, target_blobs):
    if i >= len(target_blobs):
        return Row(name, target, i, DROPPED, _shape(blob), ())
    src, dst = _shape(blob), _shape(target_blobs[i])
    if src == dst:
        target_blobs[i].data[...] = blob.data
        return Row(name, target, i, COPIED, src, dst)
    if _fc_to_conv(src, dst):
        target_blobs[i].data[...] = blob.data.reshape(dst)
        return Row(name, target, i, RESHAPED, src, dst)
    raise SurgeryError(
        f'cannot transplant param {i} of layer "{name}" {src} into layer "{target}" {dst}: '
        f'only identical shapes, or an InnerProduct weight into a convolution with the same '
        f'outputs and element count, are carried over. Rename the target layer to '
        f'initialise it instead, or give a mapping.')


def expand_score(new_net, new_layer, net, layer):
    """Carry a trained k'-class score layer into the first k' outputs of a k-class one
    (k >= k'); the remaining classes keep their initialisation. Biases are 1-D (or the
    legacy 1x1x1xN, read as a vector)."""
    old, new = net.params[layer], new_net.params[new_layer]
    old_w, new_w = old[0].data, new[0].data
    k_old, k_new = old_w.shape[0], new_w.shape[0]
    if old_w.shape[1:] != new_w.shape[1:] or k_new < k_old:
        raise SurgeryError(
            f'expand_score: "{layer}" {old_w.shape} does not fit into the first outputs of '
            f'"{new_layer}" {new_w.shape}: inputs and kernel must agree and the new layer '
            f'must have at least as many classes')
    new_w[:k_old] = old_w
    if len(old) > 1 and len(new) > 1:
        new[1].data.reshape(-1)[:k_old] = old[1].data.reshape(-1)
    return k_old


def color_d(net, source, source_layer='conv1_1', target_layer='conv1_1_bgrd'):
    """NYUD color-D: the 4-channel first layer keeps the BGR filters and gets, for depth,
    their mean over the three colour channels; the bias is copied."""
    weights, bias = source.params[source_layer][0].data, source.params[source_layer][1].data
    target = net.params[target_layer]
    expected = (weights.shape[0], 4) + weights.shape[2:]
    if _shape(target[0]) != expected:
        raise SurgeryError(f'color_d: "{target_layer}" has shape {_shape(target[0])}, '
                           f'expected {expected} (the BGR filters of "{source_layer}" '
                           f'{weights.shape} plus a depth channel)')
    target[0].data[:, :3] = weights
    target[0].data[:, 3] = weights.mean(axis=1)
    target[1].data[...] = bias


def transfer(net, weights, verbose=True):
    """Start a stage from the previous stage's snapshot: copy_from by name (FCN-32s into
    FCN-16s, FCN-16s into FCN-8s). New layers keep their zero initialisation; the report
    lists them."""
    from backend import files
    saved = set(files.weight_names(weights))
    net.copy_from(str(weights))
    report = Report()
    for name, blobs in net.params.items():
        action = COPIED if name in saved else LEFT
        report += [Row(name if action == COPIED else '', name, i, action, (), _shape(b))
                   for i, b in enumerate(blobs)]
    if verbose:
        print(report)
    return report


def params_of(caffemodel):
    """A caffemodel's parameters with a Net's `params` surface ({layer: [blob.data]}), read
    without building a net: transplant from a file straight into a live net."""
    from backend import files
    params = collections.OrderedDict(
        (name, [types.SimpleNamespace(data=array) for array in arrays])
        for name, arrays in files.weights(caffemodel).items())
    return types.SimpleNamespace(params=params)
