"""SIFT Flow data layer (fcn's siftflow_layers.py): one image, semantic and geometric labels.

    layer { name: "data" type: "Python" top: "data" top: "sem" top: "geo"
      python_param { module: "data_layers.siftflow" layer: "SIFTFlowSegDataLayer"
                     param_str: "{'split': 'trainval', 'randomize': True, 'seed': 1337}" } }

param_str keys: split (required), randomize (required), seed (int; required when randomize).
Order and shapes: see data_layers.base.

Tops (files relative to dataset 'siftflow', under the folder CATEGORY in each of Images/,
SemanticLabels/ and GeoLabels/; {split}.txt at the root lists ids such as coast_arnat59):
  data  1 x 3 x H x W  {id}.jpg as BGR minus SIFTFLOW_MEAN (256 x 256 in the dataset)
  sem   1 x 1 x H x W  SemanticLabels .mat variable 'S' (0 = void, 1-33), cast to uint8 and
                       minus 1: classes 0-32, void 255
  geo   1 x 1 x H x W  GeoLabels .mat variable 'S' (-1 = void, 1-3): -1 first set to 0, then
                       as sem: 0 sky, 1 horizontal, 2 vertical, void 255
"""
import numpy as np

from data_layers.base import SegDataLayer

SIFTFLOW_MEAN = (114.578, 115.294, 108.353)  # BGR, the reference's dataset mean
CATEGORY = 'spatial_envelope_256x256_static_8outdoorcategories'
SEM_CLASSES, GEO_CLASSES = 33, 3


class SIFTFlowSegDataLayer(SegDataLayer):
    """SIFT Flow (dataset 'siftflow'): tops data, sem, geo (the two-task FCN of the paper)."""
    dataset = 'siftflow'
    files = {'data': ('siftflow', f'Images/{CATEGORY}/{{id}}.jpg'),
             'sem': ('siftflow', f'SemanticLabels/{CATEGORY}/{{id}}.mat'),
             'geo': ('siftflow', f'GeoLabels/{CATEGORY}/{{id}}.mat')}
    top_names = ('data', 'sem', 'geo')
    classes = {'sem': SEM_CLASSES, 'geo': GEO_CLASSES}
    mean = SIFTFLOW_MEAN
    example = "{'split': 'trainval', 'randomize': True, 'seed': 1337}"
    remap = ('; SIFT Flow labels are the stored S minus 1 (geometric: -1 counts as 0), so the '
             'stored value is this + 1')

    def load_tops(self, sample_id):
        return {'data': self.load_image(sample_id), 'sem': self.load_sem(sample_id),
                'geo': self.load_geo(sample_id)}

    def load_sem(self, sample_id):
        """1 x H x W uint8: S - 1, void 0 -> 255."""
        raw = self.read_mat('sem', sample_id, 'S')
        return (self.as_uint8(raw, 'sem', sample_id) - np.uint8(1))[np.newaxis]

    def load_geo(self, sample_id):
        """1 x H x W uint8: S with -1 -> 0, then minus 1 (void -> 255)."""
        raw = np.array(self.read_mat('geo', sample_id, 'S'))
        raw[raw == -1] = 0
        return (self.as_uint8(raw, 'geo', sample_id) - np.uint8(1))[np.newaxis]
