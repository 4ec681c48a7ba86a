"""Where the training pipeline leaves its results, and what a model still needs to get them.

    <out>/<model>/<model>.caffemodel            final weights of solve.loop
    <out>/<model>/snapshot/train_iter_N.*      snapshots
    <out>/<model>/train.log, scores.csv        log and one row per scoring round

<out> is --out / --out-root, else $FCN_OUT, else out/ in this checkout (solve.loop's
stage_dir, final_weights and default_out name these places; this module reads them).
"""
import csv
import importlib
import pathlib

import numpy as np

from backend.files import weight_names
from data_layers.paths import DatasetMissingError, check_dataset, dataset_dir
from nets.datasets import DATASETS
from nets.models import MODELS
from solve import loop, stages
from weights import manifest as mf

SCORE_COLUMNS = ('pixel_accuracy', 'mean_accuracy', 'mean_iu', 'fw_iu')


class ResultsError(ValueError):
    """A results file exists but cannot be read as the pipeline writes it."""


def out_root(path=None):
    """`path`, else the loop's default: $FCN_OUT, else <checkout>/out."""
    return pathlib.Path(path) if path else loop.default_out()


def stage_dir(model_id, root=None):
    return loop.stage_dir(out_root(root), model_id)


def trained_weights(model_id, root=None):
    """The final caffemodel the loop writes for `model_id` (whether or not it exists)."""
    return loop.final_weights(out_root(root), model_id)


def released_weights(model_id):
    """(path, None) of the model's released caffemodel if present; else (None, why):
    the manifest's how-to, or why no release exists."""
    try:
        return mf.require(model_id), None
    except (mf.WeightsMissingError, mf.WeightsMismatchError, mf.UnknownWeightsError) as e:
        return None, str(e)


def default_weights(model_id, root=None):
    """The released caffemodel, else the pipeline's final one; FileNotFoundError saying
    how to get either."""
    released, why = released_weights(model_id)
    if released:
        return released
    trained = trained_weights(model_id, root)
    if trained.is_file():
        return trained
    target = 'demo' if model_id.startswith('demo-') else model_id  # make demo trains them
    raise FileNotFoundError(
        f'no weights for {model_id}. Released: {why.rstrip(".")}. Trained: {trained} does '
        f'not exist; train it (make {target}), set FCN_OUT to the output root that holds '
        f'it, or pass --weights.')


def read_scores(path):
    """Rows of a scores.csv as dicts of floats (iteration as int; empty cells None)."""
    with open(path, newline='') as f:
        reader = csv.DictReader(f)
        missing = {'iteration', *SCORE_COLUMNS} - set(reader.fieldnames or ())
        if missing:
            raise ResultsError(f'{path}: header {reader.fieldnames} lacks '
                               f'{sorted(missing)}; expected iteration,loss,'
                               f'{",".join(SCORE_COLUMNS)}')
        return [_parse_row(row, path, n) for n, row in enumerate(reader, 2)]


def _parse_row(row, path, line):
    parsed = {}
    for key, text in row.items():
        if key in ('head', 'task'):  # a multi-head scorer may name the head it scored
            parsed[key] = text
            continue
        try:
            parsed[key] = None if text in ('', None) else float(text)
        except ValueError:
            raise ResultsError(f'{path}, line {line}: column {key} is {text!r}, not a '
                               f'number') from None
    parsed['iteration'] = int(parsed['iteration'])
    return parsed


def last_scores(model_id, root=None):
    """{head: last row} of the model's scores.csv ('' is the only head of a one-head
    file), or None when the file is absent or has no rows."""
    path = stage_dir(model_id, root) / 'scores.csv'
    if not path.is_file():
        return None
    last = {}
    for row in read_scores(path):
        last[row.get('head') or row.get('task') or ''] = row
    return last or None


def eval_datasets(dataset):
    """data_layers.paths names of the folders the dataset's test (val) net reads: those of
    its `requires` that the val layer class reads (VOC: voc, not the training set sbdd)."""
    spec = DATASETS[dataset]
    layer = getattr(importlib.import_module(spec['module']), spec['val'][0])
    read = {layer.dataset, *(name for name, _ in layer.files.values())}
    return [name for name in spec['requires'] if name in read] or list(spec['requires'])


def missing_datasets(names):
    """{name: how-to message} for the datasets not installed."""
    missing = {}
    for name in names:
        try:
            check_dataset(name)
        except DatasetMissingError as e:
            missing[name] = str(e)
    return missing


def training_needs(model_id, root=None):
    """{'dataset X' | 'weights Y' | 'stage Z': how-to} of what training `model_id` lacks:
    its datasets and its initialisation (a manifest entry or an earlier stage's output)."""
    missing = missing_datasets(DATASETS[MODELS[model_id].dataset]['requires'])
    needs = {f'dataset {name}': message for name, message in missing.items()}
    for init in stages.parents(model_id):
        if init in MODELS:
            path = trained_weights(init, root)
            if not path.is_file():
                needs[f'stage {init}'] = (f'{model_id} starts from {init}, whose final weights '
                                          f'{path} do not exist: train {init} first '
                                          f'(make {init}).')
            continue
        needs.update(_weights_need(init))
    return needs


def _weights_need(name):
    try:
        mf.require(name)
    except (mf.WeightsMissingError, mf.WeightsMismatchError, mf.UnknownWeightsError) as e:
        return {f'weights {name}': str(e)}
    return {}


class WeightsError(ValueError):
    """Weights that do not fill the net they are loaded into, or hold NaN or Inf."""


def check_weights(net, weights):
    """Every layer with parameters got them from `weights`: Caffe's copy_from silently
    leaves the others at their fillers (a truncated file, another model's), which would
    segment everything as background."""
    given = set(weight_names(weights))
    empty = [name for name in net.params if name not in given]
    if empty:
        shown = ', '.join(empty[:8]) + (f' and {len(empty) - 8} more' if len(empty) > 8
                                        else '')
        raise WeightsError(f'{weights} has no weights for {len(empty)} of the net\'s '
                         f'{len(net.params)} layers with parameters ({shown}): it is '
                         f'truncated or of another model. Pass the caffemodel trained for '
                         f'this net.')
    for name, blobs in net.params.items():
        for index, blob in enumerate(blobs):
            bad = int(np.count_nonzero(~np.isfinite(blob.data)))
            if bad:
                raise WeightsError(f'{weights}: param {index} of layer "{name}" holds {bad} NaN '
                                 f'or infinite value(s) of {blob.data.size}: every output would '
                                 f'be NaN. The training diverged or the file is damaged; pass '
                                 f'the weights of an earlier snapshot.')
