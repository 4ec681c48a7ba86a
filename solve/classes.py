"""Class names of each dataset's label maps, indexed by label value: the one place they live.

The counts come from data_layers (VOC_CLASSES, NYUD_CLASSES, SEM_CLASSES, GEO_CLASSES,
CONTEXT_CLASSES), whose label remappings give these orders:

    voc            background + the 20 VOC classes, alphabetical (VOC devkit order)
    nyud           the 40 classes of Gupta et al. (CVPR 2013), label = stored value - 1
    siftflow sem   the 33 SIFT Flow classes, alphabetical (its classes.mat), stored - 1
    siftflow geo   sky, horizontal, vertical
    pascalcontext  background + the 59_labels.txt lines of the dataset, read when it is there
    demo_voc       background + the demo's five shapes (solve.demo_data.CLASSES)
    demo_classes   the five shapes (its labels.txt order)
    others         'class k'
"""
import numpy as np

from data_layers import nyud, pascalcontext, siftflow, voc
from data_layers.paths import dataset_dir
from nets.datasets import DATASETS
from solve import demo_data

VOC = ('background', 'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat',
       'chair', 'cow', 'diningtable', 'dog', 'horse', 'motorbike', 'person', 'pottedplant',
       'sheep', 'sofa', 'train', 'tvmonitor')
NYUD = ('wall', 'floor', 'cabinet', 'bed', 'chair', 'sofa', 'table', 'door', 'window',
        'bookshelf', 'picture', 'counter', 'blinds', 'desk', 'shelves', 'curtain', 'dresser',
        'pillow', 'mirror', 'floor mat', 'clothes', 'ceiling', 'books', 'refrigerator',
        'television', 'paper', 'towel', 'shower curtain', 'box', 'whiteboard', 'person',
        'night stand', 'toilet', 'sink', 'lamp', 'bathtub', 'bag', 'otherstructure',
        'otherfurniture', 'otherprop')
SIFTFLOW_SEM = ('awning', 'balcony', 'bird', 'boat', 'bridge', 'building', 'bus', 'car', 'cow',
                'crosswalk', 'desert', 'door', 'fence', 'field', 'grass', 'moon', 'mountain',
                'person', 'plant', 'pole', 'river', 'road', 'rock', 'sand', 'sea', 'sidewalk',
                'sign', 'sky', 'staircase', 'streetlight', 'sun', 'tree', 'window')
SIFTFLOW_GEO = ('sky', 'horizontal', 'vertical')

assert len(VOC) == voc.VOC_CLASSES and len(NYUD) == nyud.NYUD_CLASSES
assert (len(SIFTFLOW_SEM), len(SIFTFLOW_GEO)) == (siftflow.SEM_CLASSES, siftflow.GEO_CLASSES)


NAMED = {'voc': VOC, 'nyud': NYUD, 'demo_voc': demo_data.CLASSES,
         'demo_classes': demo_data.SHAPES}


def pascalcontext_names():
    """background + the task's 59 names from the dataset's 59_labels.txt, or 'class k'
    placeholders when the dataset is not installed (the order is the file's)."""
    path = dataset_dir('pascal_context', must_exist=False) / '59_labels.txt'
    names = []
    if path.is_file():
        names = [line.split(':', 1)[1].strip() for line in path.read_text().splitlines()
                 if ':' in line]
    if len(names) != pascalcontext.CONTEXT_CLASSES - 1:
        names = [f'class {k}' for k in range(1, pascalcontext.CONTEXT_CLASSES)]
    return ('background', *names)


BACKGROUND = {'voc', 'pascalcontext', 'demo_voc'}   # label 0 is background, not a class


def has_background(dataset):
    """Whether label 0 of `dataset` is background (VOC's convention), which overlays leave
    uncoloured; NYUD's 0 is wall, SIFT Flow's 0 awning (sem) and sky (geo)."""
    return dataset in BACKGROUND


def class_names(dataset, head=None):
    """Names by label value for `dataset` (a nets.datasets key); SIFT Flow's `head` is
    'sem' or 'geo' (an output blob name such as score_geo works too)."""
    if dataset == 'siftflow':
        return SIFTFLOW_GEO if head and head.endswith('geo') else SIFTFLOW_SEM
    if dataset == 'pascalcontext':
        return pascalcontext_names()
    if dataset in NAMED:
        return NAMED[dataset]
    count = max(np.atleast_1d(DATASETS[dataset]['classes']))
    return tuple(f'class {k}' for k in range(count))
