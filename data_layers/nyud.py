"""NYUDv2 data layer (fcn's nyud_layers.py): any of color, depth, HHA and label, in any order.

    layer { name: "data" type: "Python" top: "color" top: "hha" top: "label"
      python_param { module: "data_layers.nyud" layer: "NYUDSegDataLayer"
        param_str: "{'split': 'trainval', 'tops': ['color', 'hha', 'label'],
                     'randomize': True, 'seed': 1337}" } }

param_str keys: split (required), tops (required: list from color, depth, hha, label, one
top blob per entry, in that order), randomize (required), seed (int; required when
randomize). Order and shapes: see data_layers.base.

Tops (files relative to dataset 'nyud', whose {split}.txt lists ids such as 5001):
  color  1 x 3 x H x W  data/images/img_{id}.png, BGR minus COLOR_MEAN
  depth  1 x 1 x H x W  data/depth/img_{id}.png, natural log of the stored value minus
                        LOG_DEPTH_MEAN (values must be > 0)
  hha    1 x 3 x H x W  data/hha/img_{id}.png (Gupta et al.'s HHA encoding) minus HHA_MEAN,
                        channels in file order: the reference does not swap them
  label  1 x 1 x H x W  segmentation/img_{id}.mat, variable 'segmentation': the 40-class task
                        of Gupta et al. (0 = void, 1-40), cast to uint8 and minus 1, so
                        classes are 0-39 and void wraps to 255
"""
import numpy as np

from data_layers.base import REQUIRED, BadDataError, Key, SegDataLayer

# Dataset means from the reference (nyud_layers.py): BGR colour, HHA in file order, log depth.
COLOR_MEAN = (116.190, 97.203, 92.318)
HHA_MEAN = (132.431, 94.076, 118.477)
LOG_DEPTH_MEAN = 7.844
NYUD_CLASSES = 40
TOPS = ('color', 'depth', 'hha', 'label')


def is_tops(value):
    return (isinstance(value, (list, tuple)) and len(value) > 0
            and all(isinstance(v, str) and v in TOPS for v in value)
            and len(set(value)) == len(value))


class NYUDSegDataLayer(SegDataLayer):
    """NYUDv2 (dataset 'nyud'): RGB, depth and HHA inputs with the 40-class labels."""
    dataset = 'nyud'
    files = {'color': ('nyud', 'data/images/img_{id}.png'),
             'depth': ('nyud', 'data/depth/img_{id}.png'),
             'hha': ('nyud', 'data/hha/img_{id}.png'),
             'label': ('nyud', 'segmentation/img_{id}.mat')}
    classes = {'label': NYUD_CLASSES}
    mean = COLOR_MEAN
    param_keys = {'tops': Key(REQUIRED, is_tops, 'a non-empty list of distinct names from '
                              'color, depth, hha, label')}
    example = ("{'split': 'trainval', 'tops': ['color', 'label'], 'randomize': True, "
               "'seed': 1337}")
    remap = '; NYUD labels are the stored value minus 1, so the stored value is this + 1'

    def load_tops(self, sample_id):
        loaders = {'color': self.load_image, 'depth': self.load_depth,
                   'hha': self.load_hha, 'label': self.load_label}
        return {name: loaders[name](sample_id) for name in self.tops}

    def load_image(self, sample_id):
        return self.bgr_minus_mean(self.read_rgb('color', sample_id), self.mean_bgr)

    def load_depth(self, sample_id):
        """1 x H x W float32: log(depth) - LOG_DEPTH_MEAN."""
        depth = self.read_image('depth', sample_id)
        if depth.ndim != 2:
            raise BadDataError(f'{self.where}: the depth image {self.file("depth", sample_id)}'
                               f' (id "{sample_id}") has shape {depth.shape}; expected one '
                               f'channel (a 16-bit PNG)')
        if (depth <= 0).any():
            raise BadDataError(f'{self.where}: the depth image {self.file("depth", sample_id)}'
                               f' (id "{sample_id}") has {int((depth <= 0).sum())} pixel(s) '
                               f'<= 0, whose log is undefined; use the filled depth maps')
        return (np.log(depth) - np.float32(LOG_DEPTH_MEAN))[np.newaxis]

    def load_hha(self, sample_id):
        """3 x H x W float32: HHA minus HHA_MEAN, no channel swap (as the reference)."""
        hha = self.read_rgb('hha', sample_id)
        return (hha - np.array(HHA_MEAN, dtype=np.float32)).transpose(2, 0, 1)

    def load_label(self, sample_id):
        """1 x H x W uint8: segmentation - 1, void 0 -> 255."""
        raw = self.read_mat('label', sample_id, 'segmentation')
        return (self.as_uint8(raw, 'label', sample_id) - np.uint8(1))[np.newaxis]
