"""Structural facts of a net computed from its graph: Table 1's columns.

    receptive field and stride of a blob (one spatial axis; the nets are square),
    depth in convolution/inner-product layers on the longest path to a blob,
    learnable parameters (blobs of layers whose lr_mult is not 0).

Table 1 gives the receptive field of the unit the ImageNet classifier's last layer sees:
404 (VGG16) and 355 (AlexNet) at fc7, 907 for GoogLeNet at its 7x7 average pooling. With
shapes, an InnerProduct over a spatial blob counts as a window the size of that blob, as
the convolutionalized fc6 is; FCN-GoogLeNet drops the average pooling, so its own score
units see 715 pixels.
"""

PARAMETRIC = ('Convolution', 'InnerProduct')
STOPS = ('Deconvolution', 'Crop')   # upsampling ends the walk: fields are of the coarse grid


def _first(values, default):
    return values[0] if len(values) else default


def _window(layer, shapes):
    """(kernel extent, stride) of a windowed layer, or None for pass-through ones."""
    if layer.type == 'Convolution':
        p = layer.convolution_param
        kernel = p.kernel_h or _first(p.kernel_size, 1)
        return (kernel - 1) * _first(p.dilation, 1) + 1, p.stride_h or _first(p.stride, 1)
    if layer.type == 'Pooling':
        p = layer.pooling_param
        if p.global_pooling and shapes:
            return shapes[layer.bottom[0]][-1], 1
        return (p.kernel_h or p.kernel_size), (p.stride_h or p.stride)
    if layer.type == 'InnerProduct' and shapes and len(shapes[layer.bottom[0]]) == 4:
        return shapes[layer.bottom[0]][-1], 1
    return None


def receptive_fields(param, shapes=None):
    """{blob: (receptive field, stride)} for the blobs below any upsampling.

    `shapes` ({blob: shape}, e.g. from a built Net) lets InnerProduct and global pooling
    count as whole-blob windows."""
    fields = {}
    for layer in param.layer:
        if not layer.bottom:
            fields.update({top: (1, 1) for top in layer.top})
            continue
        known = [fields[b] for b in layer.bottom if b in fields]
        if not known or layer.type in STOPS:
            continue
        rf, stride = max(known)
        window = _window(layer, shapes)
        if window:
            extent, step = window
            rf, stride = rf + (extent - 1) * stride, stride * step
        fields.update({top: (rf, stride) for top in layer.top})
    return fields


def depth(param, blob):
    """Parametric layers (Convolution, InnerProduct) on the longest path to `blob`."""
    depths = {}
    for layer in param.layer:
        below = max((depths.get(b, 0) for b in layer.bottom), default=0)
        depths.update({top: below + (layer.type in PARAMETRIC) for top in layer.top})
    return depths[blob]


def learnable_parameters(net):
    """Values in the parameter blobs of a built Net whose lr_mult is not 0 (shared once):
    the frozen bilinear deconvolutions and at-once scales are not counted."""
    return sum(blob.count for blob, lr in zip(net.learnable_params, net.params_lr) if lr)


def classifier_input(param):
    """The blob the classifier's last (1000-way) layer reads."""
    products = [layer for layer in param.layer if layer.type == 'InnerProduct']
    if not products:
        raise ValueError(f'net "{param.name}" has no InnerProduct layer')
    return products[-1].bottom[0]
