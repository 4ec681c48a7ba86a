"""Where the datasets live: the one place the toolkit looks them up.

    FCN_DATA             root of all datasets (default: the `data/` folder of this checkout)
    FCN_<NAME>_DIR       one dataset's folder, overriding the default below

    name             default folder(s) under $FCN_DATA    what its root holds
    voc              pascal/VOC2012, pascal/VOC2011       JPEGImages/, SegmentationClass/,
                                                          ImageSets/Segmentation/<split>.txt
    sbdd             sbdd/dataset                         img/, cls/, <split>.txt
    nyud             nyud                                 data/images, data/depth, data/hha,
                                                          segmentation/, <split>.txt
    siftflow         sift-flow                            Images/, SemanticLabels/, GeoLabels/
    pascal_context   pascal-context                       trainval/, labels.txt, 59_labels.txt
    voc2010          pascal/VOC2010                       JPEGImages/, ImageSets/Main/<split>.txt
    demo_voc         demo/voc                             the demo's scenes in VOC's layout
    demo_classes     demo/classes                         the demo's classification set:
                                                          <class>/*.jpg, <split>.txt of
                                                          "<path> <label>" lines, labels.txt

The downloaded datasets are those of data_layers/datasets.json (its folders and "marks"), and
`python -m data_layers.fetch NAME` puts each at its default. A folder may also hold the
dataset the way its archive unpacks (VOCdevkit/VOC2012, TrainVal/VOCdevkit/VOC2011,
benchmark_RELEASE/dataset, ...): the root is found by what it holds, a few levels down, so
FCN_VOC_DIR=/where/the/tar/was/unpacked is enough. A split list the reference ships (such as
seg11valid.txt) is read from the project's copy (data_layers/lists/) when the dataset's folder
lacks it. Prototxts name a dataset, never a path, so the same generated nets run on every
machine. The demo's datasets are not downloaded: `make demo` generates them
(solve/demo_data.py).
"""
import os
import pathlib

from data_layers import catalog

ROOT = pathlib.Path(__file__).resolve().parent.parent
FETCH = 'python -m data_layers.fetch'
GENERATED = {
    'demo_voc': ('demo/voc', '`make demo` generates it (solve.demo_data.make_segmentation_set: '
                             'synthetic scenes in the PASCAL VOC layout)'),
    'demo_classes': ('demo/classes', '`make demo` generates it (solve.demo_data.'
                                     'make_classification_set: an ImageNet-style set of '
                                     'synthetic shapes)'),
}
DEFAULTS = {**{e['dataset']: tuple(x['folder'] for x in catalog.project().for_dataset(
                   e['dataset'])) for e in catalog.project().entries.values()},
            **{name: (folder,) for name, (folder, _) in GENERATED.items()}}


class DatasetMissingError(FileNotFoundError):
    """A dataset folder or file is not where the toolkit looks for it."""


def data_root():
    return pathlib.Path(os.environ.get('FCN_DATA') or ROOT / 'data')


def env_var(name):
    return f'FCN_{name.upper()}_DIR'


def dataset_dir(name, must_exist=True):
    """The root of dataset `name`: under FCN_<NAME>_DIR if set, else under the first of its
    default folders that exists; found by its marks (see above). A folder that exists but
    holds no complete root is returned as it is, so later messages name what it lacks."""
    if name not in DEFAULTS:
        raise KeyError(f'unknown dataset "{name}"; known: {", ".join(sorted(DEFAULTS))}')
    override = os.environ.get(env_var(name))
    candidates = ([pathlib.Path(override)] if override
                  else [data_root() / folder for folder in DEFAULTS[name]])
    existing = [c for c in candidates if c.is_dir()]
    marks = catalog.marks_of(name)
    for folder in existing if marks else ():
        roots = catalog.find_root(folder, marks)
        if roots:
            return roots[0]
    if existing:
        return existing[0]
    if must_exist:
        raise DatasetMissingError(missing_message(name, candidates))
    return candidates[0]


def check_dataset(name):
    """The root of dataset `name` after checking that it holds its marks (its images and
    labels folders): DatasetMissingError saying how to get it when absent or incomplete."""
    root = dataset_dir(name)
    marks = catalog.marks_of(name) or ()
    lacking = [f'{root}/{m}' for m in marks if not catalog.holds_marks(root, [m])]
    if lacking:
        raise DatasetMissingError(incomplete_message(name, ' and '.join(lacking)))
    return root


def split_list(name, relative):
    """The split list at `relative` in dataset `name`'s root; where the root lacks it and the
    project ships the reference's list for that place (seg11valid.txt, SIFT Flow's and
    NYUD's lists), the shipped copy. A list in the dataset's folder wins: it is the user's."""
    path = dataset_dir(name) / relative
    if not path.is_file():
        shipped = catalog.shipped_list(name, relative)
        if shipped is not None:
            return shipped
    return path


def how_to_get(name):
    """The command that installs dataset `name`, or how it comes to be."""
    if name in GENERATED:
        return GENERATED[name][1]
    entries = catalog.project().for_dataset(name)
    names = ' or '.join(f'`{FETCH} {e["name"]}`' for e in entries)
    return f'{names} downloads, verifies and unpacks it ({entries[0]["title"]})'


def missing_message(name, paths):
    """What is missing, where it was looked for, and how to get it."""
    paths = paths if isinstance(paths, (list, tuple)) else [paths]
    where = ' or '.join(str(p) for p in paths)
    return (f'dataset "{name}" not found at {where}. {how_to_get(name)[0].upper()}'
            f'{how_to_get(name)[1:]}; or point {env_var(name)} (or FCN_DATA, the root of all '
            f'datasets) at where it is (the folder its archive was unpacked into will do).')


def reinstall(name):
    """How to get dataset `name` whole again."""
    if name in GENERATED:
        return f'remove the folder; {how_to_get(name)}'
    return (f'`{FETCH} {catalog.fetch_names(name)[0]} --force` downloads, verifies and '
            f'installs it afresh')


def incomplete_message(name, missing):
    """A file the dataset should hold is not in its folder: how to make it whole."""
    get = reinstall(name)
    verb = 'are' if ' and ' in str(missing) else 'is'
    return (f'{missing} {verb} missing, so dataset "{name}" at {dataset_dir(name, False)} is '
            f'incomplete: {get}; or point {env_var(name)} at a complete copy.')
