"""Numbers this toolkit measures for the paper's tables: scores, structure, forward time.

    scores      last row of <out>/<model>/scores.csv (the loop's; SIFT Flow's geometric
                accuracy from the geo lines of train.log), or --evaluate: a fresh
                solve.score.evaluate of trained or released weights through val.prototxt
    structure   Table 1's columns from nets.analysis: parametric depth to score_fr,
                learnable parameters (lr_mult != 0) of the deploy net, receptive field and
                stride of the unit the ImageNet classifier's last layer reads
    timing      median wall time of deploy-net forwards on a square image, after a warm-up

All scores are returned in percent, as the paper prints them.
"""
import dataclasses
import gc
import json
import os
import platform
import statistics
import tempfile
import time

import atomic_files
import backend
from backend import caffe, files
from nets import analysis
from nets.classifiers import CLASSIFIERS
from nets.generate import NETS
from nets.models import MODELS
from solve import curves, loop, results, score

METRICS = results.SCORE_COLUMNS  # pixel_accuracy, mean_accuracy, mean_iu, fw_iu


@dataclasses.dataclass
class Measured:
    """values: {metric: number}; label: where they come from; needs: {what: how-to} when
    nothing could be measured."""
    values: dict = dataclasses.field(default_factory=dict)
    label: str = ''
    needs: dict = dataclasses.field(default_factory=dict)


def from_scores(model_id, root=None):
    """The last scoring round of the model's scores.csv (SIFT Flow: its geo head's pixel
    accuracy is Table 5's geometric accuracy), or what training the model still needs."""
    last = results.last_scores(model_id, root)
    if not last:
        needs = results.training_needs(model_id, root) or {
            'training': f'{model_id} has everything it needs but no scores.csv under '
                        f'{results.stage_dir(model_id, root)} yet: make {model_id}'}
        released, _ = results.released_weights(model_id)
        if released:
            needs['or --evaluate'] = (f'the released {released.name} is present: `python -m '
                                      f'solve.tables --evaluate --weights-from released` '
                                      f'scores it on the test split (needs the datasets)')
        return Measured(needs=needs)
    main = last.get('sem') or last.get('') or next(iter(last.values()))
    values = {k: 100 * main[k] for k in METRICS if main.get(k) is not None}
    if 'geo' in last and last['geo'].get('pixel_accuracy') is not None:
        values['geom_accuracy'] = 100 * last['geo']['pixel_accuracy']
    elif any(head.label == 'geo' for head in MODELS[model_id].heads):
        values.update(_geo_from_log(model_id, root, main['iteration']))
    return Measured(values, f'trained{_fast_math_note(model_id, root)}, scores.csv '
                            f'iteration {main["iteration"]}')


def _fast_math_note(model_id, root):
    """' WITH FAST MATH (not Caffe's arithmetic)' when run.json says the run opted in."""
    run = results.stage_dir(model_id, root) / 'run.json'
    if run.is_file() and json.loads(run.read_text()).get('fast_math'):
        return ' WITH FAST MATH (not Caffe\'s arithmetic)'
    return ''


def _geo_from_log(model_id, root, iteration):
    """SIFT Flow's geometric accuracy at `iteration` from train.log, where the second
    'overall accuracy' line of a round is the geo head's (solve.loop scores sem, then geo)."""
    log = results.stage_dir(model_id, root) / 'train.log'
    if not log.is_file():
        return {}
    series = dict(curves.parse_log(log).scores.get((1, 'overall accuracy'), []))
    return {'geom_accuracy': 100 * series[iteration]} if iteration in series else {}


def pick_weights(model_id, use, root=None):
    """(path, label) of the weights --evaluate scores, or (None, {what: how-to})."""
    trained = results.trained_weights(model_id, root)
    if use in ('auto', 'trained') and trained.is_file():
        return trained, 'trained weights'
    released, why = results.released_weights(model_id)
    if use in ('auto', 'released') and released:
        return released, 'released caffemodel'
    needs = {}
    if use != 'released':
        needs[f'stage {model_id}'] = f'{trained} does not exist: make {model_id}'
    if use != 'trained':
        needs[f'release {model_id}'] = why
    return None, needs


def evaluate(model_id, use='auto', root=None, limit=None, weights=None):
    """Score weights on the model's test split with its val.prototxt (percent): `weights`
    (a caffemodel, e.g. a snapshot) if given, else those `use` picks."""
    recipe = MODELS[model_id]
    needs = results.missing_datasets(results.eval_datasets(recipe.dataset))
    needs = {f'dataset {k}': v for k, v in needs.items()}
    if weights is not None:
        problem = atomic_files.file_problem(weights)
        weights, why = ((None, {f'weights {weights.name}': f'{weights} {problem}'}) if problem
                        else (weights, f'weights {weights}'))
    else:
        weights, why = pick_weights(model_id, use, root)
    if weights is None:
        needs.update(why)
    if needs:
        return Measured(needs=needs)
    count = min(limit or recipe.test_iter, recipe.test_iter)
    values = {}
    for head in loop.heads(model_id):
        # a fresh net per head, so that each pass starts at the split's first image
        net = caffe.Net(str(NETS / model_id / 'val.prototxt'), caffe.TEST, weights=str(weights))
        results.check_weights(net, weights)
        metrics, _, _ = score.evaluate(net, count, head.score, head.label, head.loss,
                                       present_only=head.present_only)
        del net
        gc.collect()
        if head.label == 'geo':
            values['geom_accuracy'] = 100 * metrics.pixel_accuracy
        else:
            values.update({k: 100 * getattr(metrics, k) for k in METRICS})
    limited = (f', first {count} of {recipe.test_iter} images' if count < recipe.test_iter
               else '')
    return Measured(values, f'{why}, evaluated here{limited}')


def structure(model_id, classifier):
    """Table 1's conv layers, parameters, receptive field and max stride for one FCN."""
    deploy = NETS / model_id / 'deploy.prototxt'
    net = caffe.Net(str(deploy), caffe.TEST)
    values = {'conv_layers': analysis.depth(files.read_prototxt(deploy), 'score_fr'),
              'parameters': analysis.learnable_parameters(net)}
    del net
    param = CLASSIFIERS[classifier]()
    with tempfile.TemporaryDirectory() as folder:  # pycaffe's Net takes files only
        files.write_prototxt(param, os.path.join(folder, 'classifier.prototxt'))
        classifier_net = caffe.Net(os.path.join(folder, 'classifier.prototxt'), caffe.TEST)
    shapes = {name: tuple(blob.shape) for name, blob in classifier_net.blobs.items()}
    del classifier_net
    gc.collect()
    field, stride = analysis.receptive_fields(param, shapes)[analysis.classifier_input(param)]
    values.update(receptive_field=field, max_stride=stride)
    return values


def forward_ms(model_id, size=500, repeat=3):
    """Median milliseconds of `repeat` forwards of the deploy net on a size x size input
    (random weights: the time does not depend on them), after one warm-up forward."""
    net = caffe.Net(str(NETS / model_id / 'deploy.prototxt'), caffe.TEST)
    for name in net.inputs:
        net.blobs[name].reshape(1, net.blobs[name].shape[1], size, size)
        net.blobs[name].data[...] = 0
    times = []
    for i in range(repeat + 1):
        start = time.perf_counter()
        net.forward()
        _synchronize(net)
        times.append(1000 * (time.perf_counter() - start))
    del net
    gc.collect()
    return statistics.median(times[1:])


def _synchronize(net):
    """Wait for the forward's GPU work: torch's queue on the engine; on pycaffe, reading the
    outputs, which copies them to the host once the GPU is done."""
    if not backend.is_engine:
        for name in net.outputs:
            net.blobs[name].data
        return
    import torch
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def device_label(gpu=None):
    """What the timings ran on: the GPU or CPU model, thread count and torch version (on
    pycaffe, whose Python has no torch: the --gpu id or the CPU, and Caffe's version)."""
    if not backend.is_engine:
        where = f'GPU {gpu}' if gpu is not None else f'CPU {_cpu_name()}'
        return f'{where}, pycaffe {getattr(caffe, "__version__", "")}'.rstrip()
    import torch
    mode = backend.extra('mode')
    if mode and mode.mode() == 'gpu':
        where = f'GPU {torch.cuda.get_device_name(mode.device())}'
    else:
        where = f'CPU {_cpu_name()}, {torch.get_num_threads()} threads'
    return f'{where}, torch {torch.__version__}'


def _cpu_name():
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
