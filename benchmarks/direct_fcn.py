"""FCN-32s/16s/8s written directly in PyTorch: the baseline the engine is timed against.

Same arithmetic as the Caffe nets: ceil-mode max pooling, element-wise dropout, bias-free
frozen transposed convolutions, crops by slicing (offsets 19 / 5, 27 / 5, 9, 31), summed
(unnormalized) cross-entropy ignoring 255.
"""
import torch
from torch import nn
from torch.nn import functional as F

VGG16_BLOCKS = [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]
CONV_NAMES = [f'conv{b}_{i}' for b, (_, n) in enumerate(VGG16_BLOCKS, 1)
              for i in range(1, n + 1)]
HEADS = {32: {'upscore': (64, 32)}, 16: {'upscore2': (4, 2), 'upscore16': (32, 16)},
         8: {'upscore2': (4, 2), 'upscore_pool4': (4, 2), 'upscore8': (16, 8)}}
CROP = {32: 19, 16: 27, 8: 31}


class DirectFCN(nn.Module):
    def __init__(self, stride=8, classes=21):
        super().__init__()
        self.stride = stride
        convs, channels = [], 3
        for width, count in VGG16_BLOCKS:
            for _ in range(count):
                convs.append(nn.Conv2d(channels, width, 3, padding=1))
                channels = width
        convs[0].padding = (100, 100)
        self.convs = nn.ModuleList(convs)
        self.fc6, self.fc7 = nn.Conv2d(512, 4096, 7), nn.Conv2d(4096, 4096, 1)
        self.score_fr = nn.Conv2d(4096, classes, 1)
        if stride <= 16:
            self.score_pool4 = nn.Conv2d(512, classes, 1)
        if stride == 8:
            self.score_pool3 = nn.Conv2d(256, classes, 1)
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
        if self.stride == 32:
            return _crop(self.upscore(h), 19, x)
        up = self.upscore2(h)
        h = up + _crop(self.score_pool4(pools[3]), 5, up)
        if self.stride == 16:
            return _crop(self.upscore16(h), 27, x)
        up = self.upscore_pool4(h)
        h = up + _crop(self.score_pool3(pools[2]), 9, up)
        return _crop(self.upscore8(h), 31, x)

    def loss(self, x, label):
        return F.cross_entropy(self(x), label[:, 0], ignore_index=255, reduction='sum')

    @classmethod
    def from_arrays(cls, arrays, stride):
        """Weights from {'<caffe layer>/<i>': array} (Caffe and PyTorch share layouts)."""
        model = cls(stride)
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
