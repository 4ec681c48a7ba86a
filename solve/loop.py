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
import time
from typing import NamedTuple

import atomic_files
import backend
from backend import caffe, caffe_pb2, files
from data_layers import paths
from nets.datasets import DATASETS
from nets.generate import NETS
from nets.models import MODELS
from solve import resume_state, score, stage_lock, stages
from solve.console import progress_bar
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
    spec = DATASETS[MODELS[model_id].dataset]
    messages = []
    for name in spec['requires']:
        try:
            paths.check_dataset(name)
        except paths.DatasetMissingError as e:
            messages.append(str(e))
    return messages or [m for phase in ('train', 'val') for m in _missing_split(spec, phase)]


def _missing_split(spec, phase):
    import importlib
    layer_name, split = spec[phase]
    layer = getattr(importlib.import_module(spec['module']), layer_name)
    dataset = spec['extra'].get('dataset', layer.dataset)
    path = paths.split_list(dataset, layer.split_file.format(split=split))
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
    get_solver takes a file name only). Caffe does not make the snapshot folder; this does.

    The loop owns the snapshot schedule: it snapshots at each round's end, after scoring and
    after the resume state (.fcnstate) the snapshot needs. The reference's `snapshot:` (4000,
    NYUD 2000: its round length) is cleared, or Caffe's Step would write the same iteration
    first, before the resume state, and the loop again after scoring."""
    param = files.read_prototxt(NETS / model_id / 'solver.prototxt', caffe_pb2.SolverParameter)
    param.train_net = str(NETS / model_id / param.train_net)
    param.test_net[:] = [str(NETS / model_id / n) for n in param.test_net]
    param.snapshot_prefix = str(folder / 'snapshot' / 'train')
    param.ClearField('snapshot')
    (folder / 'snapshot').mkdir(exist_ok=True)
    files.write_prototxt(param, folder / 'solver.prototxt')
    return caffe.get_solver(str(folder / 'solver.prototxt')), param


def latest_state(folder):
    """The newest solverstate under folder/snapshot, or None (other files are ignored)."""
    states = snapshots(folder)
    return states[-1][1] if states else None


def snapshots(folder):
    """[(iteration, solverstate path)] under folder/snapshot, oldest first."""
    found = []
    for path in (folder / 'snapshot').glob('train_iter_*.solverstate*'):
        match = re.fullmatch(r'train_iter_(\d+)\.solverstate(\.h5)?', path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


class ScheduleError(ValueError):
    """A schedule that does not fit the stage's folder or the snapshot resumed."""


class Schedule(NamedTuple):
    """`iterations` in all, scored and snapshotted every `step` (and at the end)."""
    iterations: int
    step: int

    @classmethod
    def of(cls, model_id, iterations=None, step=None):
        """The recipe's rounds x step, or `iterations` every `step` (default: the recipe's,
        at most `iterations`); the last round is shorter where `step` does not divide."""
        recipe = MODELS[model_id]
        total = iterations or recipe.rounds * recipe.step
        return cls(total, min(step or recipe.step, total))


def model_id_of(recipe_or_model_id):
    """The id under which a recipe is in nets/models.py's MODELS (its nets' folder)."""
    if isinstance(recipe_or_model_id, str):
        return recipe_or_model_id
    found = [k for k, recipe in MODELS.items() if recipe is recipe_or_model_id]
    if not found:
        raise ValueError('the recipe is not in nets/models.py\'s MODELS, so it has no nets; '
                         'add it there and run `make nets`')
    return found[0]


def run_stage(recipe_or_model_id, init, out_root, schedule=None, resume=None, progress=True,
              keep=None):
    """Train a model (its Recipe or id) from the weights `init` (a path, or a tuple for
    fusion) under `schedule` (a Schedule; None: the recipe's), keeping the newest `keep`
    snapshots (None: all). Returns the final caffemodel's path, the next stage's init.
    The one way to train a stage: solve.cli and solve.demo call it."""
    model_id = model_id_of(recipe_or_model_id)
    iterations, step = schedule or Schedule.of(model_id)
    folder = stage_dir(out_root, model_id)
    folder.mkdir(parents=True, exist_ok=True)
    refuse_links_out(folder, model_id)
    check_datasets(model_id)
    root = caffe.solver_rank() == 0  # in data-parallel runs, rank 0 alone scores and writes
    with stage_lock.holding(folder) if root else contextlib.nullcontext():
        if root:
            sweep(folder)
        _train_locked(model_id, init, out_root, iterations, step, resume, progress, keep,
                      folder, root)
    return final_weights(out_root, model_id)


def _train_locked(model_id, init, out_root, iterations, step, resume, progress, keep, folder,
                  root):
    with train_log(folder / 'train.log') if root else contextlib.nullcontext():
        solver, param = build_solver(model_id, folder)
        _start(model_id, solver, param, init, resume or latest_state(folder), iterations)
        if root:
            _record_run(folder, model_id, iterations, step, init)
        _train_rounds(model_id, solver, folder, iterations, step, progress and root, root, keep,
                      param.random_seed)
        if root:
            solver.net.save(str(folder / 'final.caffemodel'))
            _save_final(folder, final_weights(out_root, model_id))
            log.info('%s done: %s', model_id, final_weights(out_root, model_id))


STAGE_FILES = ('train.log', 'scores.csv', 'run.json', 'curves.png', 'solver.prototxt',
               stage_lock.NAME, 'final.caffemodel', 'snapshot')


def refuse_links_out(folder, model_id):
    """No write of the stage may land outside its folder through a planted symbolic link
    (Caffe writes snapshots in place, following links; train.log is appended to)."""
    for name in STAGE_FILES + (f'{model_id}.caffemodel',):
        atomic_files.inside(folder / name, folder)


def is_done(out_root, model_id):
    """Whether the stage's final caffemodel is there, whole: the size run.json recorded
    when it was written (a damaged copy is an error, not a finished stage)."""
    final = final_weights(out_root, model_id)
    if not final.exists():
        return False
    import json
    try:
        recorded = json.loads((final.parent / 'run.json').read_text()).get('final_bytes')
    except (OSError, ValueError, AttributeError):
        recorded = None
    if recorded is not None and final.stat().st_size != recorded:
        raise files.FormatError(
            f'{final} is {final.stat().st_size} bytes, but the stage wrote {recorded}: the '
            f'file is damaged (an interrupted copy?). Delete it to train the stage again '
            f'from its snapshots, or put the original back.')
    return True


def _start(model_id, solver, param, init, resume, iterations):
    """Weights from a snapshot (with the resume state beside it) or from `init`."""
    if resume:
        log.info('resuming %s from %s', model_id, resume)
        resume_state.check_snapshot(solver, resume, model_id)
        _restore(solver, resume)
        resume_state.restore(solver, resume)
        if solver.iter > iterations:
            raise ScheduleError(f'{resume} is of iteration {solver.iter}, past the '
                                f'{iterations} iterations asked for; pass --iterations '
                                f'{solver.iter} or more, or resume an earlier snapshot')
    else:
        stages.initialise(model_id, solver.net, init)
    stages.bilinear(solver.net, param.train_net)
    backend.keep_blobs(solver.net, [], for_backward=True)  # the solver reads outputs only
    if backend.extra('parallel'):
        backend.extra('parallel').DataParallel(solver)


def _restore(solver, state):
    """solver.restore, with a cut-short binary solverstate refused before real Caffe, which
    aborts on one (it writes snapshots in place, so a kill can leave one)."""
    try:
        if os.path.isfile(state) and not resume_state.is_whole(state):
            raise ValueError('the file ends before its last field, current_step')
        solver.restore(str(state))
    except (ValueError, KeyError, *backend.input_errors()) as e:
        raise files.FormatError(
            f'cannot resume from {state}: {e}\nThe snapshot is damaged (a write cut short?): '
            f'move it and its .caffemodel out of the snapshot folder to resume from the one '
            f'before, or give this run another --out to train the stage afresh.') from None


def _save_final(folder, target):
    """The stage's result under its predictable name, in one step: a stage counts as done
    once this name exists (and has the size run.json records)."""
    import json
    record = json.loads((folder / 'run.json').read_text())
    record['final_bytes'] = (folder / 'final.caffemodel').stat().st_size
    files.atomic_write(folder / 'run.json', json.dumps(record, indent=1).encode())
    os.replace(folder / 'final.caffemodel', target)


def sweep(folder):
    """Remove the temporary files that interrupted writes left in a stage's folder."""
    for where in (folder, folder / 'snapshot'):
        atomic_files.sweep(where, lambda path: log.info(
            'removing %s, left by an interrupted write', path))


def _train_rounds(model_id, solver, folder, iterations, step, progress, root=True, keep=None,
                  seed=-1):
    """Rounds end at multiples of `step` and at `iterations`: score, resume state, snapshot.
    `seed` is the solver's random_seed (see resume_state.reseed)."""
    bar = [None]  # the round's bar, advanced by the solver's on_start callback
    if progress:
        solver.add_callback(lambda: bar[0].update(1), lambda: None)
    with _bars_between_log_lines() if progress else contextlib.nullcontext():
        while solver.iter < iterations:
            count = min(step - solver.iter % step, iterations - solver.iter)
            began = time.perf_counter()
            with progress_bar(count, 'it', f'{model_id} round {-(-(solver.iter + count) // step)}'
                              f'/{-(-iterations // step)}', enabled=progress) as bar[0]:
                resume_state.reseed(seed, solver.iter)
                solver.step(count)
            if root:
                _end_round(model_id, solver, folder, progress, keep)
            if root and solver.iter < iterations and time.perf_counter() - began > PLOT_EVERY:
                _plot(folder)
    if root:  # also when a rerun resumes at the last snapshot: a kill may have cut the plot
        _plot(folder)


PLOT_EVERY = 60  # s: curves.png is redrawn after rounds this long (a plot takes about 1 s)


def _end_round(model_id, solver, folder, progress, keep):
    results = seg_tests(model_id, solver, progress)
    _append_scores(folder / 'scores.csv', solver.iter, results)
    stem = folder / 'snapshot' / f'train_iter_{solver.iter}'
    for suffix in ('.fcnstate', '.caffemodel', '.solverstate', '.caffemodel.h5',
                   '.solverstate.h5'):
        atomic_files.inside(f'{stem}{suffix}', folder)
    resume_state.save(solver, f'{stem}.fcnstate')
    solver.snapshot()
    if keep:
        prune(folder, keep)


def _bars_between_log_lines():
    """The engine's and the toolkit's log lines printed above a bar, not through it."""
    from tqdm.contrib.logging import logging_redirect_tqdm
    return logging_redirect_tqdm([logging.getLogger('fcn'), logging.getLogger('caffe_torch')])


def prune(folder, keep):
    """Delete all but the newest `keep` snapshots (weights, state and resume state)."""
    for iteration, state in snapshots(folder)[:-keep]:
        stem = folder / 'snapshot' / f'train_iter_{iteration}'
        for suffix in ('.caffemodel', '.caffemodel.h5', '.solverstate', '.solverstate.h5',
                       '.fcnstate'):
            pathlib.Path(f'{stem}{suffix}').unlink(missing_ok=True)


def heads(model_id):
    """The outputs a model is scored on (nets.recipe.Head: head, score, label, loss blobs);
    a classifier's 'pixel' metrics are over images (pixel accuracy is top-1 accuracy)."""
    return MODELS[model_id].heads


def seg_tests(model_id, solver, progress=True):
    """Score the test net on the whole test split, each head on its labels; SIFT Flow's
    semantic head over the classes present in the test set, as the paper does."""
    results = []
    for head in heads(model_id):
        metrics = score.seg_tests(solver, MODELS[model_id].test_iter, head.score, head.label,
                                  loss_blob=head.loss, progress=progress,
                                  present_only=head.present_only)
        results.append((head.head, metrics))
    return results


def _record_run(folder, model_id, iterations, step, init):
    """run.json: what produced this stage's numbers (tables label fast-math runs; a rerun
    with another schedule or init is refused)."""
    import json
    mode = backend.extra('mode')
    run = {'model': model_id, 'iterations': iterations, 'step': step,
           'rounds': -(-iterations // step), 'init': describe_init(init),
           'backend': backend.NAME, 'mode': mode.mode() if mode else 'unknown (pycaffe)',
           'ranks': caffe.solver_count(), 'fast_math': bool(mode and mode.fast_math()),
           **_backend_version()}
    files.atomic_write(folder / 'run.json', json.dumps(run, indent=1).encode())


def _backend_version():
    """{'torch': its version} on the engine; {'caffe': pycaffe's __version__} on pycaffe,
    whose Python has no torch."""
    if backend.is_engine:
        import torch
        return {'torch': torch.__version__}
    return {'caffe': getattr(caffe, '__version__', 'unknown')}


def describe_init(init):
    """The absolute paths of a stage's initial weights (None: its fillers)."""
    if init is None:
        return None
    paths = init if isinstance(init, (list, tuple)) else [init]
    return [os.path.abspath(p) for p in paths]


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
