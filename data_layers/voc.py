"""PASCAL VOC and SBD segmentation data layers (fcn's voc_layers.py), tops data and label.

    layer { name: "data" type: "Python" top: "data" top: "label"
      python_param { module: "data_layers.voc" layer: "SBDDSegDataLayer"
                     param_str: "{'split': 'train', 'randomize': True, 'seed': 1337}" } }

param_str keys: split (required), randomize (required), seed (int; required when randomize),
mean (BGR, default VOC_MEAN); VOCLayoutSegDataLayer also dataset (required: the
data_layers.paths name of a folder in VOC's layout, e.g. 'demo_voc') and scale (default 1,
applied after the mean, as Caffe's transform_param scale). Order and shapes: see
data_layers.base.

Tops: data 1 x 3 x H x W float (BGR minus mean); label 1 x 1 x H x W, classes 0-20
(0 = background) and 255 = void (VOC's object boundaries and unlabelled pixels).
"""
import numpy as np

from data_layers.base import (REQUIRED, BadDataError, Key, SegDataLayer, dataset_key, is_mean,
                              scale_key)

# The ILSVRC BGR mean of the VGG nets the FCNs start from (fcn's voc-fcn*/net.py).
VOC_MEAN = (104.00699, 116.66877, 122.67892)
VOC_CLASSES = 21


class _VOCFamily(SegDataLayer):
    classes = {'label': VOC_CLASSES}
    mean = VOC_MEAN
    mean_dtype = np.float64  # fcn's voc_layers.py: np.array(params['mean']), float64
    param_keys = {'mean': Key(VOC_MEAN, is_mean, 'three numbers, the BGR mean')}
    example = ("{'split': 'train', 'randomize': True, 'seed': 1337, "
               "'mean': (104.00699, 116.66877, 122.67892)}")


class VOCSegDataLayer(_VOCFamily):
    """PASCAL VOC 2011 (dataset 'voc'): the net's test split is seg11valid.

    Files: ImageSets/Segmentation/{split}.txt, JPEGImages/{id}.jpg, and
    SegmentationClass/{id}.png, a palette PNG whose indices are the labels, kept as they are.
    """
    dataset = 'voc'
    split_file = 'ImageSets/Segmentation/{split}.txt'
    files = {'data': ('voc', 'JPEGImages/{id}.jpg'),
             'label': ('voc', 'SegmentationClass/{id}.png')}

    def load_label(self, sample_id):
        """1 x H x W uint8: the palette indices of the PNG (not its colours)."""
        indices = self.read_image('label', sample_id)  # mode P/L: one index per pixel
        if indices.ndim != 2:
            raise BadDataError(
                f'{self.where}: the label PNG {self.file("label", sample_id)} (id '
                f'"{sample_id}") reads as shape {indices.shape}; expected palette indices (a '
                f'mode P or L PNG, as VOC ships them), not a colour image')
        return self.as_uint8(indices, 'label', sample_id)[np.newaxis]


class VOCLayoutSegDataLayer(VOCSegDataLayer):
    """Another dataset in VOC's layout, named by the required `dataset` key, such as the
    demo's scenes ('demo_voc'); files, tops and labels as VOCSegDataLayer. A class of its
    own, so that VOCSegDataLayer's param_str keys stay the reference's."""
    param_keys = {**VOCSegDataLayer.param_keys, 'dataset': dataset_key(REQUIRED),
                  'scale': scale_key()}
    example = "{'split': 'train', 'randomize': True, 'seed': 1337, 'dataset': 'demo_voc'}"


class SBDDSegDataLayer(_VOCFamily):
    """The Semantic Boundaries Dataset (dataset 'sbdd'): the nets' training split train.

    Files: {split}.txt, img/{id}.jpg, and cls/{id}.mat holding the MATLAB struct GTcls whose
    field Segmentation is the H x W class map (uint8, same classes as VOC).
    """
    dataset = 'sbdd'
    files = {'data': ('sbdd', 'img/{id}.jpg'), 'label': ('sbdd', 'cls/{id}.mat')}

    def load_label(self, sample_id):
        """1 x H x W uint8: GTcls.Segmentation, i.e. mat['GTcls'][0]['Segmentation'][0]."""
        gt = self.read_mat('label', sample_id, 'GTcls')
        if gt.dtype.names is None or 'Segmentation' not in gt.dtype.names or gt.size != 1:
            raise BadDataError(
                f'{self.where}: GTcls in {self.file("label", sample_id)} (id "{sample_id}") is '
                f'not a 1x1 struct with a Segmentation field (fields: {gt.dtype.names})')
        segmentation = gt['Segmentation'].flat[0]
        return self.as_uint8(segmentation, 'label', sample_id)[np.newaxis]
