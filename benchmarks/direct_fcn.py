"""FCN-8s written directly in PyTorch: the baseline the engine is timed against.

Same arithmetic as the Caffe net: ceil-mode max pooling, element-wise dropout, bias-free
transposed convolutions, crops by slicing, summed (unnormalized) cross-entropy ignoring 255.
"""
import torch
from torch import nn
from torch.nn import functional as F

from benchmarks.fcn8s_spec import VGG_BLOCKS

CONV_NAMES = [f'conv{b}_{i}' for b, (_, n) in enumerate(VGG_BLOCKS, 1) for i in range(1, n + 1)]
HEAD_NAMES = ['fc6', 'fc7', 'score_fr', 'score_pool4', 'score_pool3', 'upscore2',
              'upscore_pool4', 'upscore8']


class DirectFCN8s(nn.Module):
    def __init__(self, classes=21):
        super().__init__()
        convs, channels = [], 3
        for width, count in VGG_BLOCKS:
            for _ in range(count):
                convs.append(nn.Conv2d(channels, width, 3, padding=1))
                channels = width
        convs[0].padding = (100, 100)
        self.convs = nn.ModuleList(convs)
        self.fc6, self.fc7 = nn.Conv2d(512, 4096, 7), nn.Conv2d(4096, 4096, 1)
        self.score_fr = nn.Conv2d(4096, classes, 1)
        self.score_pool4, self.score_pool3 = nn.Conv2d(512, classes, 1), nn.Conv2d(256, classes, 1)
        self.upscore2 = nn.ConvTranspose2d(classes, classes, 4, 2, bias=False)
        self.upscore_pool4 = nn.ConvTranspose2d(classes, classes, 4, 2, bias=False)
        self.upscore8 = nn.ConvTranspose2d(classes, classes, 16, 8, bias=False)
        for up in (self.upscore2, self.upscore_pool4, self.upscore8):
            up.weight.requires_grad_(False)

    def forward(self, x):
        h, pools, i = x, [], 0
        for _, count in VGG_BLOCKS:
            for _ in range(count):
                h = F.relu(self.convs[i](h))
                i += 1
            h = F.max_pool2d(h, 2, 2, ceil_mode=True)
            pools.append(h)
        h = F.dropout(F.relu(self.fc6(h)), 0.5, self.training)
        h = F.dropout(F.relu(self.fc7(h)), 0.5, self.training)
        up2 = self.upscore2(self.score_fr(h))
        h = up2 + _crop(self.score_pool4(pools[3]), 5, up2)
        up4 = self.upscore_pool4(h)
        h = up4 + _crop(self.score_pool3(pools[2]), 9, up4)
        return _crop(self.upscore8(h), 31, x)

    def loss(self, x, label):
        return F.cross_entropy(self(x), label[:, 0], ignore_index=255, reduction='sum')

    @classmethod
    def from_arrays(cls, arrays):
        """Weights from {'<caffe layer>/<i>': array} (Caffe and PyTorch share layouts)."""
        model = cls()
        modules = dict(zip(CONV_NAMES, model.convs))
        modules.update((name, getattr(model, name)) for name in HEAD_NAMES)
        with torch.no_grad():
            for name, module in modules.items():
                module.weight.copy_(torch.from_numpy(arrays[f'{name}/0']))
                if module.bias is not None:
                    module.bias.copy_(torch.from_numpy(arrays[f'{name}/1']))
        return model


def _crop(h, offset, like):
    return h[:, :, offset:offset + like.shape[2], offset:offset + like.shape[3]]
