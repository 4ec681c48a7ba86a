"""Learning curves from a training log: the loss and the four scores against the iteration.

Reads the lines the training loop writes to <out>/<model>/train.log:

    I1123 17:20:57.123456 1234 solver.py] Iteration 20 (2.1 iter/s, 9.5s/20 iters), loss = 3.04
    >>> 2026-11-23 17:21:00.123 Iteration 4000 mean IU 0.634

(the first as Caffe's solver displays it, smoothed over average_loss iterations; the second
as fcn's seg_tests prints each of loss, overall accuracy, mean accuracy, mean IU, fwavacc).
When one round scores several heads (SIFT Flow's sem, then geo), the k-th line of a metric
at one iteration belongs to the k-th test; a resumed run's lines replace those the earlier
run logged after the point it resumed from. The PNG has two panels: training loss on a log
scale, and pixel accuracy, mean accuracy, mean IU and f.w. IU in percent.
"""
import argparse
import collections
import dataclasses
import io
import pathlib
import re
import sys

from backend.files import atomic_write
from solve.console import HelpFormatter, nonempty_path

NUMBER = r'([-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+|nan|inf))'
TRAIN_LOSS = re.compile(r'Iteration (\d+)(?: \([^)]*\))?, loss = ' + NUMBER)
SCORE = re.compile(r'>>> .*?Iteration (\d+) (loss|overall accuracy|mean accuracy|mean IU|'
                   r'fwavacc) ' + NUMBER + r'\s*$')
METRICS = {'overall accuracy': 'pixel acc.', 'mean accuracy': 'mean acc.',
           'mean IU': 'mean IU', 'fwavacc': 'f.w. IU'}
EXAMPLES = """examples:
  python -m solve.curves out/voc-fcn32s                  # writes out/voc-fcn32s/curves.png
  python -m solve.curves out/voc-fcn32s/train.log --out fcn32s.png
"""


@dataclasses.dataclass
class Curves:
    """train_loss: [(iteration, loss)]; scores: {(test, metric): [(iteration, value)]}
    with metric in fcn's words (loss, overall accuracy, ...) and test counted from 0."""
    train_loss: list
    scores: dict

    @property
    def rounds(self):
        return sorted({it for series in self.scores.values() for it, _ in series})


def parse_log(path):
    """The curves in the train.log at `path`. A run resumed into the same log (training
    lines going back to iteration i) supersedes what the earlier run logged after i: its
    loss from i on and its scores after i, so a redone round is counted once."""
    train_loss, scores = [], collections.defaultdict(list)
    seen = collections.Counter()  # (iteration, metric) -> lines so far: the test index
    with open(path, encoding='utf-8', errors='replace') as f:
        for line in f:
            match = SCORE.search(line)
            if match:
                iteration, metric, value = int(match[1]), match[2], float(match[3])
                test = seen[iteration, metric]
                seen[iteration, metric] += 1
                scores[test, metric].append((iteration, value))
                continue
            match = TRAIN_LOSS.search(line)
            if match:
                iteration = int(match[1])
                if train_loss and iteration <= train_loss[-1][0]:
                    train_loss, scores, seen = _restart(train_loss, scores, iteration)
                train_loss.append((iteration, float(match[2])))
    return Curves(train_loss, {k: v for k, v in scores.items() if v})


def _restart(train_loss, scores, iteration):
    """What stands of an earlier run when a resumed one logs `iteration` again."""
    kept = collections.defaultdict(list)
    for key, series in scores.items():
        kept[key] = [(i, v) for i, v in series if i <= iteration]
    seen = collections.Counter()
    for (test, metric), series in kept.items():
        for i, _ in series:
            seen[i, metric] = max(seen[i, metric], test + 1)
    return [(i, v) for i, v in train_loss if i < iteration], kept, seen


def figure(curves, title):
    """A matplotlib Figure of the two panels (no pyplot: no global backend is touched)."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError('solve.curves draws with matplotlib: pip install matplotlib') \
            from None
    fig = Figure(figsize=(11, 4.2), layout='constrained')
    loss_ax, score_ax = fig.subplots(1, 2)
    positive = [(i, v) for i, v in curves.train_loss if v > 0]
    if positive:
        loss_ax.plot(*zip(*positive), lw=1, color='tab:blue',
                     marker='o' if len(positive) < 3 else None, ms=3)
        loss_ax.set_yscale('log')
    _empty_note(loss_ax, positive, 'no "Iteration N ..., loss = X" lines yet')
    loss_ax.set(title='training loss', xlabel='iteration', ylabel='loss (log scale)')
    order = list(METRICS)
    shown = sorted((key for key in curves.scores if key[1] in METRICS),
                   key=lambda key: (key[0], order.index(key[1])))
    for test, metric in shown:
        iterations, values = zip(*curves.scores[test, metric])
        score_ax.plot(iterations, [100 * v for v in values], marker='o', ms=3,
                      ls='--' if test else '-',
                      label=METRICS[metric] + (f' (test {test + 1})' if test else ''))
    drawn = bool(shown)
    _empty_note(score_ax, drawn, 'no scoring rounds yet')
    if drawn:
        score_ax.legend(fontsize='small')
    score_ax.set(title='test scores', xlabel='iteration', ylabel='%')
    for ax in (loss_ax, score_ax):
        ax.grid(True, alpha=0.3)
    fig.suptitle(title)
    return fig


def _empty_note(ax, data, text):
    if not data:
        ax.text(0.5, 0.5, text, ha='center', va='center', transform=ax.transAxes,
                color='gray')


def plot_curves(log_path, png_path):
    """Parse `log_path` and write the PNG atomically (a viewer never sees half a file);
    returns the Curves. The loop calls this after each scoring round."""
    log_path = pathlib.Path(log_path)
    curves = parse_log(log_path)
    buffer = io.BytesIO()
    figure(curves, log_path.parent.name or str(log_path)).savefig(buffer, format='png',
                                                                   dpi=100)
    atomic_write(png_path, buffer.getvalue())
    return curves


def resolve(path, out):
    """(train.log, PNG path) from a log file or a stage folder and an optional --out."""
    path = pathlib.Path(path)
    log = path / 'train.log' if path.is_dir() else path
    if not log.is_file():
        raise FileNotFoundError(f'no training log at {log}: the training loop writes '
                                f'<out>/<model>/train.log (e.g. make voc-fcn32s)')
    return log, pathlib.Path(out) if out else log.parent / 'curves.png'


def get_args_parser():
    parser = argparse.ArgumentParser(
        prog='python -m solve.curves', description=__doc__.split('\n\n')[0], epilog=EXAMPLES,
        formatter_class=HelpFormatter)
    parser.add_argument('log', metavar='LOG_OR_STAGE_FOLDER',
                        help='a train.log, or the <out>/<model> folder holding one')
    parser.add_argument('--out', type=nonempty_path, default=None,
                        help='PNG to write; None: curves.png beside the log')
    return parser


def main(args):
    try:
        log, png = resolve(args.log, args.out)
        parsed = parse_log(log)
        if not parsed.train_loss and not parsed.rounds:
            raise ValueError(f'{log} holds no "Iteration N, loss = X" or score lines: not a '
                             f'Caffe training log, or one of a run that has not logged yet. '
                             f'Pass a stage folder or its train.log.')
        curves = plot_curves(log, png)
    except (OSError, ImportError, ValueError) as e:  # OSError: no log, an unwritable --out
        print(f'error: {e}', file=sys.stderr)
        return 2
    last = curves.scores.get((0, 'mean IU'), [])
    summary = f', last mean IU {100 * last[-1][1]:.2f} at {last[-1][0]}' if last else ''
    print(f'{png}: {len(curves.train_loss)} loss points, {len(curves.rounds)} scoring '
          f'round(s){summary}')
    return 0


if __name__ == '__main__':
    sys.exit(main(get_args_parser().parse_args()))
