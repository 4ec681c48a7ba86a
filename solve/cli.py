"""Train a model and every stage it starts from: `python solve/voc_fcn8s.py` or
`make voc-fcn8s`, the same as `python -m solve.cli voc-fcn8s`.

Stages run in order (see solve/stages.py); a stage whose final caffemodel exists is skipped,
one that was interrupted resumes from its newest snapshot. Everything the chain needs
(datasets, ImageNet weights) is checked before any work starts.
"""
import argparse
import json
import os
import sys
from dataclasses import dataclass
from typing import Optional

import atomic_files
from solve import loop, stages
from solve.console import GPUError, nonempty_path, positive_int, use_gpu

EPILOG = '''examples:
  python solve/voc_fcn8s.py                        # convert VGG16, then 32s, 16s, 8s
  python solve/voc_fcn8s.py --only --init out/voc-fcn16s/voc-fcn16s.caffemodel
  python solve/voc_fcn32s.py --gpu 0 --iterations 8000 --out /scratch/fcn
  python solve/voc_fcn32s.py --resume out/voc-fcn32s/snapshot/train_iter_4000.solverstate
'''


def get_args_parser(model_id=None):
    parser = argparse.ArgumentParser(
        description=f'Train {model_id or "a model"} as the FCN reference does.',
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    if model_id is None:
        from nets.models import MODELS
        parser.add_argument('model', choices=sorted(MODELS), help='model id')
    parser.add_argument('--gpu', type=int, default=None,
                        help='GPU id (default: CPU)')
    parser.add_argument('--init', type=nonempty_path,
                        help='initial weights of this model (implies --only)')
    parser.add_argument('--only', action='store_true',
                        help='train this stage only, not the stages before it')
    parser.add_argument('--iterations', type=positive_int,
                        help='iterations per stage (default: the recipe\'s rounds x step)')
    parser.add_argument('--step', type=positive_int,
                        help='iterations per round: the test split is scored and a snapshot '
                             'taken after each (default: the recipe\'s)')
    parser.add_argument('--out', type=nonempty_path, default=None,
                        help='output folder (default: $FCN_OUT or out/ in the checkout)')
    parser.add_argument('--resume', help='solverstate to resume this model from')
    parser.add_argument('--fast-math', action='store_true',
                        help='TF32 / reduced-precision matmuls: faster, NOT Caffe\'s '
                             'arithmetic; the run is labelled so (see README)')
    parser.add_argument('--keep-snapshots', type=positive_int, metavar='N',
                        help='keep only the newest N snapshots of each stage (default: all; '
                             'a VGG16 snapshot is about 1 GB)')
    parser.add_argument('--no-progress', action='store_true', help='no progress bars')
    return parser


@dataclass(frozen=True)
class Options:
    """The command's flags for running stages, typed: main reads them from the command
    line, solve.demo builds them. `init` implies only this stage; `resume` is for the
    model asked for, not the stages before it."""
    out: object
    init: Optional[str] = None
    only: bool = False
    iterations: Optional[int] = None
    step: Optional[int] = None
    resume: Optional[str] = None
    progress: bool = True
    keep_snapshots: Optional[int] = None

    @classmethod
    def from_args(cls, args):
        init = None if args.init is None else str(args.init)
        return cls(out=args.out or loop.default_out(), init=init, only=args.only,
                   iterations=args.iterations, step=args.step, resume=args.resume,
                   progress=not args.no_progress, keep_snapshots=args.keep_snapshots)


def schedule(model_id, iterations, step=None):
    """(iterations, step) for a stage: loop.Schedule.of, the recipe's unless given."""
    return loop.Schedule.of(model_id, iterations, step)


def plan(model_id, options):
    """The stages to run, after checking everything they need exists and that no stage
    begun under another schedule would be skipped or continued."""
    names = [model_id] if options.only or options.init else stages.chain(model_id)
    todo = [n for n in names if not _done(n, options.out)]
    problem = options.init and atomic_files.file_problem(options.init)
    missing = [f'--init {options.init}: {problem}'] if problem else []
    for name in todo:
        missing += (_missing(lambda: _check_stage(name)) if name in stages.CONVERTED
                    else loop.missing_datasets(name))
    if todo and todo[0] not in stages.CONVERTED and not options.init:
        for parent in stages.parents(todo[0]):
            missing += _missing(lambda: _require_output(parent, options.out))
    if missing:
        raise FileNotFoundError('nothing was run; first provide:\n  - ' +
                                '\n  - '.join(dict.fromkeys(missing)))
    clashes = [c for n in names if n not in stages.CONVERTED for c in _schedule_clash(n, options)]
    if clashes:
        raise ScheduleError('nothing was run:\n  - ' + '\n  - '.join(clashes))
    return todo


ScheduleError = loop.ScheduleError


class BackendOptionError(ValueError):
    """An option the chosen backend does not have."""


def _schedule_clash(name, options):
    """A message if <out>/<name>/run.json records another schedule or init than this run's."""
    record = loop.stage_dir(options.out, name) / 'run.json'
    if not record.is_file():
        return []
    try:
        run = json.loads(record.read_text())
        recorded = (run.get('iterations') or run['rounds'] * run['step'], run['step'])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return [f'{record} is damaged (not the JSON a stage writes); remove it, or the whole '
                f'folder to retrain']
    iterations, step = schedule(name, options.iterations, options.step)
    if recorded != (iterations, step):
        return [f'{record.parent} holds a run of {recorded[0]} iterations scored every '
                f'{recorded[1]}, not {iterations} every {step} as asked; pass the same '
                f'--iterations/--step, or another --out, or remove the folder to retrain']
    init = loop.describe_init(_initial_weights(name, options))
    if 'init' in run and run['init'] != init:
        return [f'{record.parent} holds a run started from {_paths(run["init"])}, not from '
                f'{_paths(init)}; pass the same --init, or another --out, or remove the '
                f'folder to retrain']
    return []


def _paths(init):
    return ' + '.join(init) if init else 'its fillers'


def _check_stage(name):
    from weights import manifest
    from weights.convert import CONVERSIONS
    manifest.require(CONVERSIONS[stages.CONVERTED[name]].source)


def _missing(check):
    try:
        check()
    except FileNotFoundError as e:
        return [str(e)]
    return []


def _done(name, out):
    if name in stages.CONVERTED:
        from weights import manifest
        return (manifest.weights_dir() / f'{name}.caffemodel').exists()
    return loop.is_done(out, name)


def _require_output(name, out):
    if not _done(name, out):
        where = loop.final_weights(out, name) if name not in stages.CONVERTED else name
        raise FileNotFoundError(f'{where} is missing: it is the initialisation of the next '
                                f'stage. Run the whole chain (without --only), or pass '
                                f'--init with the weights to start from.')


def _initial_weights(name, options):
    if options.init:
        return options.init
    inputs = []
    for parent in stages.parents(name):
        if parent in stages.CONVERTED:
            from weights import manifest
            inputs.append(str(manifest.weights_dir() / f'{parent}.caffemodel'))
        else:
            inputs.append(str(loop.final_weights(options.out, parent)))
    if not inputs:
        return None  # trained from its fillers
    return inputs[0] if len(inputs) == 1 else tuple(inputs)


class ConversionError(ValueError):
    """Converting an ImageNet classifier into an FCN initialisation failed."""


def run_stages(model_id, options):
    """Run the stages `plan` picks for `model_id` under `options` (Options); returns the
    final caffemodel of `model_id`."""
    for name in plan(model_id, options):
        if name in stages.CONVERTED:
            _convert(name)
            continue
        loop.run_stage(name, _initial_weights(name, options), options.out,
                       schedule(name, options.iterations, options.step),
                       resume=options.resume if name == model_id else None,
                       progress=options.progress, keep=options.keep_snapshots)
    return loop.final_weights(options.out, model_id)


def _convert(name):
    from weights.convert import convert_named
    try:
        convert_named(stages.CONVERTED[name])
    except ValueError as e:
        raise ConversionError(f'converting the ImageNet weights for {name} failed: {e}. '
                              f'Check the classifier caffemodel (python -m weights.download) '
                              f'or run `python -m weights.convert` alone to see its report.'
                              ) from e


def _engine_options(fast_math):
    """Fast math and torchrun's data parallelism are the engine's; pycaffe refuses them."""
    import backend
    if not backend.is_engine:
        if fast_math:
            raise BackendOptionError('--fast-math is an option of the caffe_torch engine; '
                                     'pycaffe computes in float32 only. Drop it, or unset '
                                     'FCN_BACKEND.')
        if int(os.environ.get('WORLD_SIZE', '1')) > 1:
            raise BackendOptionError('data-parallel training under torchrun needs the '
                                     'caffe_torch engine; with pycaffe train on one GPU, or '
                                     'unset FCN_BACKEND.')
        return
    backend.caffe.set_fast_math(fast_math)
    backend.extra('parallel').init_from_env()


def main(args, model_id=None):
    return execute(model_id or args.model, Options.from_args(args), args.gpu, args.fast_math)


def execute(model_id, options, gpu=None, fast_math=False):
    """Run `model_id`'s stages under `options` (Options) on `gpu` (None: the CPU); the exit
    status: 0, 2 with the error's line on stderr, 130 when interrupted."""
    import backend
    from backend.files import FormatError
    from data_layers.base import BadDataError, DataLayerSetupError
    from surgery import SurgeryError
    from weights.manifest import ManifestError, UnknownWeightsError
    try:
        if gpu is not None:  # under torchrun, each process takes its local rank's GPU
            use_gpu(gpu + int(os.environ.get('LOCAL_RANK', '0')))
        _engine_options(fast_math)
        run_stages(model_id, options)
    except KeyboardInterrupt:
        print('interrupted; rerun the same command to resume from the newest snapshot',
              file=sys.stderr)
        return 130
    except (OSError, ManifestError, UnknownWeightsError, ScheduleError, GPUError,
            BackendOptionError, ConversionError, FormatError, BadDataError,
            DataLayerSetupError,
            SurgeryError, stages.InitWeightsError, *backend.input_errors()) as e:
        print(f'error: {str(e).strip(chr(39))}', file=sys.stderr)
        return 2
    return 0


def run(model_id):
    """The entry point of solve/<model>.py."""
    sys.exit(main(get_args_parser(model_id).parse_args(), model_id))


if __name__ == '__main__':
    sys.exit(main(get_args_parser().parse_args()))
