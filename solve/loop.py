"""Training one model: the reference's solve.py, once, for every model of nets/models.py.

    solver  = SGD from nets/<model>/solver.prototxt (paths made absolute)
    weights = the model's initialisation: copy_from by name (stage transfer), or
              transplant per stream (NYUD late fusion), or the color-D first-layer surgery
    interp  every frozen Deconvolution (bilinear)
    repeat `rounds` times: solver.step(`step`); score the test split (seg_tests); snapshot
    (a classifier trained from scratch, the demo's, has no init and is scored per image)
    save <out>/<model>/<model>.caffemodel, the next stage's initialisation

Everything a stage writes lives in <out>/<model>/: snapshot/train_iter_N.*, train.log
(Caffe-style lines), scores.csv, curves.png and the final caffemodel. A stage whose final
caffemodel exists is done; one with snapshots resumes from the newest.
"""
import contextlib
import csv
import io
import logging
import os
import pathlib
import re

import backend
from backend import caffe, caffe_pb2, files
from data_layers import paths
from nets.datasets import DATASETS
from nets.generate import NETS
from nets.models import MODELS
from solve import score, stages
from solve.console import ProgressBar
from solve.logs import train_log

log = logging.getLogger('fcn.solve')
SCORE_FIELDS = ['iteration', 'head', 'loss', 'pixel_accuracy', 'mean_accuracy', 'mean_iu',
                'fw_iu']


def stage_dir(out_root, model_id):
    return pathlib.Path(out_root) / model_id


def final_weights(out_root, model_id):
    """The predictable name of a stage's result, which later stages start from."""
    return stage_dir(out_root, model_id) / f'{model_id}.caffemodel'


def missing_datasets(model_id):
    """How-to messages for each dataset the model reads that is not there, and for each
    split list its train and test layers read that its folder lacks."""
    spec = DATASETS[MODELS[model_id]['dataset']]
    messages = []
    for name in spec['requires']:
        try:
            paths.dataset_dir(name)
        except paths.DatasetMissingError as e:
            messages.append(str(e))
    return messages or [m for phase in ('train', 'val') for m in _missing_split(spec, phase)]


def _missing_split(spec, phase):
    import importlib
    layer_name, split = spec[phase]
    layer = getattr(importlib.import_module(spec['module']), layer_name)
    dataset = spec['extra'].get('dataset', layer.dataset)
    path = paths.dataset_dir(dataset) / layer.split_file.format(split=split)
    if path.is_file():
        return []
    return [f'the {phase} split list: {paths.incomplete_message(dataset, path)}']


def check_datasets(model_id):
    """Stop before any work when a dataset the model reads is missing."""
    missing = missing_datasets(model_id)
    if missing:
        raise paths.DatasetMissingError('\n'.join(missing))


def build_solver(model_id, folder):
    """The model's solver: nets/<model>/solver.prototxt with its nets' paths made absolute
    and snapshots in folder/snapshot/, written to folder/solver.prototxt (pycaffe's
    get_solver takes a file name only). Caffe does not make the snapshot folder; this does."""
    param = files.read_prototxt(NETS / model_id / 'solver.prototxt', caffe_pb2.SolverParameter)
    param.train_net = str(NETS / model_id / param.train_net)
    param.test_net[:] = [str(NETS / model_id / n) for n in param.test_net]
    param.snapshot_prefix = str(folder / 'snapshot' / 'train')
    (folder / 'snapshot').mkdir(exist_ok=True)
    files.write_prototxt(param, folder / 'solver.prototxt')
    return caffe.get_solver(str(folder / 'solver.prototxt')), param


def latest_state(folder):
    """The newest solverstate under folder/snapshot, or None."""
    states = list((folder / 'snapshot').glob('train_iter_*.solverstate*'))
    number = lambda p: int(re.search(r'_iter_(\d+)\.', p.name).group(1))  # noqa: E731
    return max(states, key=number) if states else None


def train(model_id, init, out_root, rounds=None, step=None, resume=None, progress=True):
    """Train `model_id` from the weights `init` (a path, or a tuple for fusion); returns the
    final caffemodel's path."""
    spec = MODELS[model_id]
    rounds, step = rounds or spec['rounds'], step or spec['step']
    folder = stage_dir(out_root, model_id)
    folder.mkdir(parents=True, exist_ok=True)
    check_datasets(model_id)
    root = caffe.solver_rank() == 0  # in data-parallel runs, rank 0 alone scores and writes
    with train_log(folder / 'train.log') if root else contextlib.nullcontext():
        _train(model_id, init, folder, rounds, step, resume, progress, root)
        if root:
            _save_final(folder, final_weights(out_root, model_id))
            log.info('%s done: %s', model_id, final_weights(out_root, model_id))
    return final_weights(out_root, model_id)


def _train(model_id, init, folder, rounds, step, resume, progress, root):
    solver, param = build_solver(model_id, folder)
    resume = resume or latest_state(folder)
    if resume:
        log.info('resuming %s from %s', model_id, resume)
        solver.restore(str(resume))
    else:
        stages.initialise(model_id, solver.net, init)
    stages.bilinear(solver.net, param.train_net)
    if backend.extra('parallel'):
        backend.extra('parallel').DataParallel(solver)
    if root:
        _record_run(folder, model_id, rounds, step)
    _train_rounds(model_id, solver, folder, rounds, step, progress and root, root)
    if root:
        solver.net.save(str(folder / 'final.caffemodel'))


def _save_final(folder, target):
    """The stage's result under its predictable name, in one step: a stage counts as done
    once this name exists."""
    os.replace(folder / 'final.caffemodel', target)


class _RoundProgress:
    """A progress bar per round, advanced by the solver's on_start callback."""

    def __init__(self):
        self.bar, self.count = None, 0

    def begin(self, label, total):
        self.bar, self.count = ProgressBar(total, 'it', label), 0

    def tick(self):
        self.count += 1
        self.bar.update(self.count)


def _train_rounds(model_id, solver, folder, rounds, step, progress, root=True):
    bar = _RoundProgress()
    if progress:
        solver.add_callback(bar.tick, lambda: None)
    for done in range(solver.iter // step, rounds):
        bar.begin(f'{model_id} round {done + 1}/{rounds}', step)
        solver.step(step)
        if not root:
            continue
        results = seg_tests(model_id, solver, progress)
        _append_scores(folder / 'scores.csv', solver.iter, results)
        solver.snapshot()
        _plot(folder)


def heads(model_id):
    """(head, score blob, label blob, loss blob) of each output a model is scored on; a
    classifier's 'pixel' metrics are over images (pixel accuracy is top-1 accuracy)."""
    if MODELS[model_id].get('task') == 'classification':
        return [('class', 'fc8', 'label', 'loss')]
    if MODELS[model_id]['dataset'] == 'siftflow':
        return [('sem', 'score_sem', 'sem', 'loss'), ('geo', 'score_geo', 'geo', 'loss_geo')]
    return [('score', 'score', 'label', 'loss')]


def seg_tests(model_id, solver, progress=True):
    """Score the test net on the whole test split, each head on its labels; SIFT Flow's
    semantic head over the classes present in the test set, as the paper does."""
    spec, results = MODELS[model_id], []
    for head, score_blob, label_blob, loss_blob in heads(model_id):
        metrics = score.seg_tests(solver, spec['test_iter'], score_blob, label_blob,
                                  loss_blob=loss_blob, progress=progress,
                                  present_only=head == 'sem')
        results.append((head, metrics))
    return results


def _record_run(folder, model_id, rounds, step):
    """run.json: what produced this stage's numbers (tables label fast-math runs)."""
    import json
    import torch
    mode = backend.extra('mode')
    run = {'model': model_id, 'rounds': rounds, 'step': step, 'backend': backend.NAME,
           'mode': mode.mode() if mode else 'unknown (pycaffe)',
           'ranks': caffe.solver_count(), 'fast_math': bool(mode and mode.fast_math()),
           'torch': torch.__version__}
    files.atomic_write(folder / 'run.json', json.dumps(run, indent=1).encode())


def _append_scores(path, iteration, results):
    """Add this round's rows to scores.csv, dropping rows of this or later iterations that a
    run interrupted between scoring and snapshot left (the round is redone on resume)."""
    rows = []
    if path.exists():
        with open(path, newline='') as f:
            rows = [r for r in csv.reader(f)][1:]
        rows = [r for r in rows if int(r[0]) < iteration]
    rows += [[iteration, head, m.loss, m.pixel_accuracy, m.mean_accuracy, m.mean_iu, m.fw_iu]
             for head, m in results]
    text = io.StringIO(newline='')
    csv.writer(text).writerows([SCORE_FIELDS] + rows)
    files.atomic_write(path, text.getvalue().encode())


def _plot(folder):
    from solve.curves import plot_curves
    plot_curves(folder / 'train.log', folder / 'curves.png')


def default_out():
    return pathlib.Path(os.environ.get('FCN_OUT') or NETS.parent / 'out')
