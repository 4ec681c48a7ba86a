"""Where the datasets live: the one place the toolkit looks them up.

    FCN_DATA             root of all datasets (default: the `data/` folder of this checkout)
    FCN_<NAME>_DIR       one dataset's folder, overriding the default below

    name             default folder                      what it holds
    voc              $FCN_DATA/pascal/VOC2011            JPEGImages/, SegmentationClass/,
                                                         ImageSets/Segmentation/<split>.txt
    sbdd             $FCN_DATA/sbdd/dataset              img/, cls/, <split>.txt
    nyud             $FCN_DATA/nyud                      data/images, data/depth, data/hha,
                                                         segmentation/, <split>.txt
    siftflow         $FCN_DATA/sift-flow                 Images/, SemanticLabels/, GeoLabels/,
                                                         <split>.txt
    pascal_context   $FCN_DATA/pascal-context            labels.txt, 59_labels.txt, trainval/
    voc2010          $FCN_DATA/pascal/VOC2010            JPEGImages/, ImageSets/Main/<split>.txt
    demo_voc         $FCN_DATA/demo/voc                  the demo's scenes in VOC's layout
    demo_classes     $FCN_DATA/demo/classes              the demo's classification set:
                                                         <class>/*.jpg, <split>.txt of
                                                         "<path> <label>" lines, labels.txt

(The environment variable of `pascal_context` is FCN_PASCAL_CONTEXT_DIR.) Prototxts name a
dataset, never a path, so the same generated nets run on every machine. The demo's datasets
are not downloaded: `make demo` generates them (solve/demo_data.py).
"""
import os
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent

DEFAULTS = {
    'voc': 'pascal/VOC2011',
    'sbdd': 'sbdd/dataset',
    'nyud': 'nyud',
    'siftflow': 'sift-flow',
    'pascal_context': 'pascal-context',
    'voc2010': 'pascal/VOC2010',
    'demo_voc': 'demo/voc',
    'demo_classes': 'demo/classes',
}

HOW_TO_GET = {
    'voc': 'PASCAL VOC 2011 (VOCtrainval_25-May-2011.tar from the PASCAL VOC site); '
           'seg11valid.txt (736 ids) goes in ImageSets/Segmentation/',
    'sbdd': 'the Semantic Boundaries Dataset (benchmark.tgz, Hariharan et al. 2011); use its '
            'dataset/ folder with img/, cls/, train.txt',
    'nyud': 'NYUDv2 as prepared for FCN (nyud.tar.gz: data/images, data/depth, data/hha, '
            'segmentation/ with the 40-class labels of Gupta et al., and the split lists)',
    'siftflow': 'SIFT Flow (SiftFlowDataset.zip, Liu et al.): Images/, SemanticLabels/, '
                'GeoLabels/ and the trainval.txt / test.txt lists',
    'pascal_context': 'PASCAL-Context (trainval.tar.gz of .mat label maps, labels.txt and '
                      '59_labels.txt)',
    'voc2010': 'PASCAL VOC 2010 (VOCtrainval_03-May-2010.tar), for PASCAL-Context images',
    'demo_voc': '`make demo` generates it (solve.demo_data.make_segmentation_set: synthetic '
                'scenes in the PASCAL VOC layout)',
    'demo_classes': '`make demo` generates it (solve.demo_data.make_classification_set: an '
                    'ImageNet-style set of synthetic shapes)',
}
GENERATED = {'demo_voc', 'demo_classes'}   # written by the toolkit, not downloaded


class DatasetMissingError(FileNotFoundError):
    """A dataset folder or file is not where the toolkit looks for it."""


def data_root():
    return pathlib.Path(os.environ.get('FCN_DATA') or ROOT / 'data')


def env_var(name):
    return f'FCN_{name.upper()}_DIR'


def dataset_dir(name, must_exist=True):
    """The folder of dataset `name`, from FCN_<NAME>_DIR or $FCN_DATA/<default>."""
    if name not in DEFAULTS:
        raise KeyError(f'unknown dataset "{name}"; known: {", ".join(sorted(DEFAULTS))}')
    override = os.environ.get(env_var(name))
    folder = pathlib.Path(override) if override else data_root() / DEFAULTS[name]
    if must_exist and not folder.is_dir():
        raise DatasetMissingError(missing_message(name, folder))
    return folder


def missing_message(name, path):
    """What is missing, where it was looked for, and how to get it."""
    get = (HOW_TO_GET[name] if name in GENERATED
           else f'Download {HOW_TO_GET[name]}, and put it there')
    return (f'dataset "{name}" not found at {path}. {get}, or point {env_var(name)} (or '
            f'FCN_DATA, the root of all datasets) at where it is.')


def incomplete_message(name, missing):
    """A file the dataset should hold is not in its folder: how to make it whole."""
    get = (f'remove the folder; {HOW_TO_GET[name]}' if name in GENERATED
           else f'restore it from {HOW_TO_GET[name]}')
    return (f'{missing} is missing, so dataset "{name}" at {dataset_dir(name, False)} is '
            f'incomplete: {get}; or point {env_var(name)} at a complete copy.')
