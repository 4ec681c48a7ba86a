"""PASCAL-Context data layer (fcn's pascalcontext_layers.py): the 59-class task plus background.

    layer { name: "data" type: "Python" top: "data" top: "label"
      python_param { module: "data_layers.pascalcontext" layer: "PASCALContextSegDataLayer"
                     param_str: "{'split': 'train', 'randomize': True, 'seed': 1337}" } }

param_str keys: split (required), randomize (required), seed (int; required when randomize).
Order and shapes: see data_layers.base.

Files: images and split lists from dataset 'voc2010' (ImageSets/Main/{split}.txt,
JPEGImages/{id}.jpg); labels from dataset 'pascal_context': trainval/{id}.mat, variable
'LabelMap' of full-list ids (1-based lines of labels.txt, 459 classes).

Tops: data 1 x 3 x H x W (BGR minus CONTEXT_MEAN); label 1 x 1 x H x W in 0-59. The task's
classes are the "id: name" lines of 59_labels.txt (spaces removed; diningtable, bedcloth and
clothes renamed to the full list's table, bedclothes and cloth). Class k of that list (from
1) is written where LabelMap equals its full-list id; every other pixel is 0, background,
a class the net is trained on (60-way output). No pixel is 255.
"""
import functools

import numpy as np

from data_layers.base import BadDataError, SegDataLayer
from data_layers.paths import DatasetMissingError, missing_message

CONTEXT_MEAN = (104.007, 116.669, 122.679)  # BGR, as the reference
CONTEXT_CLASSES = 60  # background + 59
# 59_labels.txt spelling -> labels.txt spelling (the reference's renames)
RENAMES = {'diningtable': 'table', 'bedcloth': 'bedclothes', 'clothes': 'cloth'}


class PASCALContextSegDataLayer(SegDataLayer):
    """PASCAL-Context (datasets 'voc2010' and 'pascal_context'): 59 classes + background."""
    dataset = 'voc2010'
    split_file = 'ImageSets/Main/{split}.txt'
    files = {'data': ('voc2010', 'JPEGImages/{id}.jpg'),
             'label': ('pascal_context', 'trainval/{id}.mat')}
    classes = {'label': CONTEXT_CLASSES}
    mean = CONTEXT_MEAN

    def read_names(self, filename):
        """The names of an "id: name" list in the pascal_context folder, spaces removed."""
        folder = self.folder('pascal_context')
        path = folder / filename
        if not path.is_file():
            raise DatasetMissingError(
                f'{self.where}: {path} is missing (PASCAL-Context has labels.txt and '
                f'59_labels.txt beside trainval/). {missing_message("pascal_context", folder)}')
        names = []
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip():
                if ':' not in line:
                    raise BadDataError(f'{self.where}: line {number} of {path} is {line!r}; '
                                       f'expected "id: name"')
                names.append(line.split(':', 1)[1].replace(' ', ''))
        return names

    @functools.cached_property
    def lookup(self):
        """uint8 table: full-list id (LabelMap value) -> task label (0 = background)."""
        full, task = self.read_names('labels.txt'), self.read_names('59_labels.txt')
        if len(task) != CONTEXT_CLASSES - 1:
            raise BadDataError(f'{self.where}: 59_labels.txt lists {len(task)} classes; '
                               f'expected {CONTEXT_CLASSES - 1}')
        table = np.zeros(len(full) + 1, dtype=np.uint8)
        for position, name in enumerate(task):
            name = RENAMES.get(name, name)
            if name not in full:
                raise BadDataError(f'{self.where}: class "{name}" of 59_labels.txt is not in '
                                   f'labels.txt, so its LabelMap id is unknown')
            table[full.index(name) + 1] = position + 1
        return table

    def load_label(self, sample_id):
        """1 x H x W uint8: LabelMap through `lookup`."""
        raw = np.asarray(self.read_mat('label', sample_id, 'LabelMap'))
        path = self.file('label', sample_id)
        if raw.ndim != 2:
            raise BadDataError(f'{self.where}: LabelMap in {path} (id "{sample_id}") has shape '
                               f'{raw.shape}; expected H x W')
        outside = raw[(raw < 0) | (raw >= len(self.lookup))]
        if outside.size:
            raise BadDataError(f'{self.where}: LabelMap value {outside.flat[0]} in {path} (id '
                               f'"{sample_id}") is not an id of labels.txt (1-'
                               f'{len(self.lookup) - 1}, or 0)')
        return self.lookup[raw.astype(np.int64)][np.newaxis]
