"""FCN-32s/16s/8s written directly in PyTorch: the baseline the engine is timed against.

Same arithmetic as the Caffe nets: ceil-mode max pooling, element-wise dropout, bias-free
frozen transposed convolutions, crops by slicing, summed (unnormalized) cross-entropy
ignoring 255. VGG16 (the paper's nets) by default; `Shape.DEMO` is the demo's VGG16 with
conv widths / 8, fc6 4x4 of width 256 and 6 classes (nets/demo-fcn*s).
"""
from collections import namedtuple

import torch
from torch import nn
from torch.nn import functional as F

VGG16_BLOCKS = [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]
CONV_NAMES = [f'conv{b}_{i}' for b, (_, n) in enumerate(VGG16_BLOCKS, 1)
              for i in range(1, n + 1)]
HEADS = {32: {'upscore': (64, 32)}, 16: {'upscore2': (4, 2), 'upscore16': (32, 16)},
         8: {'upscore2': (4, 2), 'upscore_pool4': (4, 2), 'upscore8': (16, 8)}}


class Shape(namedtuple('Shape', 'divisor fc_kernel fc_width pad classes crops')):
    """A VGG16-structured FCN's sizes; `crops[stride]` = (pool4, pool3, final) offsets as
    the nets' Crop layers have them (derived by coord_map there, written out here)."""


Shape.VGG16 = Shape(1, 7, 4096, 100, 21, {32: (None, None, 19), 16: (5, None, 27),
                                            8: (5, 9, 31)})
Shape.DEMO = Shape(8, 4, 256, 68, 6, {32: (None, None, 35), 16: (2, None, 43),
                                       8: (2, 3, 47)})


class DirectFCN(nn.Module):
    def __init__(self, stride=8, shape=Shape.VGG16):
        super().__init__()
        self.stride, self.crops = stride, shape.crops[stride]
        classes = shape.classes
        convs, channels = [], 3
        for width, count in VGG16_BLOCKS:
            for _ in range(count):
                convs.append(nn.Conv2d(channels, width // shape.divisor, 3, padding=1))
                channels = width // shape.divisor
        convs[0].padding = (shape.pad, shape.pad)
        self.convs = nn.ModuleList(convs)
        self.fc6 = nn.Conv2d(channels, shape.fc_width, shape.fc_kernel)
        self.fc7 = nn.Conv2d(shape.fc_width, shape.fc_width, 1)
        self.score_fr = nn.Conv2d(shape.fc_width, classes, 1)
        if stride <= 16:
            self.score_pool4 = nn.Conv2d(512 // shape.divisor, classes, 1)
        if stride == 8:
            self.score_pool3 = nn.Conv2d(256 // shape.divisor, classes, 1)
        for name, (ks, s) in HEADS[stride].items():
            setattr(self, name, nn.ConvTranspose2d(classes, classes, ks, s, bias=False))
            getattr(self, name).weight.requires_grad_(False)

    def forward(self, x):
        h, pools, i = x, [], 0
        for _, count in VGG16_BLOCKS:
            for _ in range(count):
                h = F.relu(self.convs[i](h))
                i += 1
            h = F.max_pool2d(h, 2, 2, ceil_mode=True)
            pools.append(h)
        h = F.dropout(F.relu(self.fc6(h)), 0.5, self.training)
        h = F.dropout(F.relu(self.fc7(h)), 0.5, self.training)
        h = self.score_fr(h)
        at_pool4, at_pool3, final = self.crops
        if self.stride == 32:
            return _crop(self.upscore(h), final, x)
        up = self.upscore2(h)
        h = up + _crop(self.score_pool4(pools[3]), at_pool4, up)
        if self.stride == 16:
            return _crop(self.upscore16(h), final, x)
        up = self.upscore_pool4(h)
        h = up + _crop(self.score_pool3(pools[2]), at_pool3, up)
        return _crop(self.upscore8(h), final, x)

    def loss(self, x, label):
        return F.cross_entropy(self(x), label[:, 0], ignore_index=255, reduction='sum')

    @classmethod
    def from_arrays(cls, arrays, stride, shape=Shape.VGG16):
        """Weights from {'<caffe layer>/<i>': array} (Caffe and PyTorch share layouts)."""
        model = cls(stride, shape)
        modules = dict(zip(CONV_NAMES, model.convs))
        modules.update((name, module) for name, module in model.named_children()
                       if name != 'convs')
        with torch.no_grad():
            for name, module in modules.items():
                module.weight.copy_(torch.from_numpy(arrays[f'{name}/0']))
                if module.bias is not None:
                    module.bias.copy_(torch.from_numpy(arrays[f'{name}/1']))
        return model


def _crop(h, offset, like):
    return h[:, :, offset:offset + like.shape[2], offset:offset + like.shape[3]]
