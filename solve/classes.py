"""Class names of each dataset's label maps, indexed by label value: the one place they live.

The names are the reference's class lists, which the project ships (data_layers/lists/);
their counts must be data_layers' (VOC_CLASSES, NYUD_CLASSES, SEM_CLASSES, GEO_CLASSES,
CONTEXT_CLASSES), whose label remappings give these orders:

    voc            background + the 20 VOC classes, alphabetical (VOC devkit order)
    nyud           the 40 classes of Gupta et al. (CVPR 2013), label = stored value - 1
    siftflow sem   the 33 SIFT Flow classes, alphabetical (its classes.mat), stored - 1
    siftflow geo   sky, horizontal, vertical
    pascalcontext  background + the 59_labels.txt lines of the dataset where it is installed,
                   else the reference's classes-59.txt
    demo_voc       background + the demo's five shapes (solve.demo_data.CLASSES)
    demo_classes   the five shapes (its labels.txt order)
    others         'class k'
"""
import numpy as np

from data_layers import catalog, nyud, pascalcontext, siftflow, voc
from data_layers.paths import dataset_dir
from nets.datasets import DATASETS
from solve import demo_data


def _names(relative):
    """The lines of a list the project ships (data_layers/lists/), up to its first blank
    line (below it, the reference's notes)."""
    text = (catalog.LISTS / relative).read_text(encoding='utf-8')
    return tuple(text.split('\n\n')[0].splitlines())


def _numbered(relative, heading):
    """The names of a "NN name" block under `heading` in a shipped list."""
    block = (catalog.LISTS / relative).read_text(encoding='utf-8').split(heading, 1)[1]
    lines = [line for line in block.splitlines() if line.strip()]
    numbered = [line.split(None, 1) for line in lines[1:]]
    names = []
    for number, name in numbered:
        if not number.isdigit() or int(number) != len(names) + 1:
            break
        names.append(name)
    return tuple(names)


VOC = _names('pascal/classes.txt')
NYUD = _names('nyud/classes.txt')
SIFTFLOW_SEM = _numbered('sift-flow/classes.txt', 'Semantic:')
SIFTFLOW_GEO = _numbered('sift-flow/classes.txt', 'Geometric:')
CONTEXT = tuple(line.split(':', 1)[1].strip() for line in
                _names('pascal-context/classes-59.txt'))

assert len(VOC) == voc.VOC_CLASSES and len(NYUD) == nyud.NYUD_CLASSES
assert (len(SIFTFLOW_SEM), len(SIFTFLOW_GEO)) == (siftflow.SEM_CLASSES, siftflow.GEO_CLASSES)
assert len(CONTEXT) == pascalcontext.CONTEXT_CLASSES

NAMED = {'voc': VOC, 'nyud': NYUD, 'demo_voc': demo_data.CLASSES,
         'demo_classes': demo_data.SHAPES}


def pascalcontext_names():
    """background + the task's 59 names from the dataset's 59_labels.txt (the order the
    data layer labels in), else from the reference's classes-59.txt, which the project
    ships."""
    path = dataset_dir('pascal_context', must_exist=False) / '59_labels.txt'
    names = []
    if path.is_file():
        names = [line.split(':', 1)[1].strip() for line in path.read_text().splitlines()
                 if ':' in line]
    if len(names) != pascalcontext.CONTEXT_CLASSES - 1:
        return CONTEXT
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
