"""The paper's tables beside this toolkit's numbers (make tables).

Each table lists, per net, the published numbers (solve/paper_tables.json, with their
sources; values the fact sheet could not confirm carry a dagger) and a line "ours":

    scores      by default the last row of <out>/<model>/scores.csv written by the training
                loop; with --evaluate, a fresh evaluation on the test split of the trained
                weights, else the released caffemodel (--weights-from picks); with
                --weights MODEL=CAFFEMODEL, of that file (a snapshot, say)
    structure   Table 1's depth, parameters, receptive field and stride, from nets.analysis
    timing      Table 1's forward time (and Table 3's inference time): median 500x500
                forwards on this machine, named under the table (--no-timing skips it)

What cannot be measured says "not run: needs X [n]", where note [n] at the end tells how to
get X (dataset, weights or an earlier training stage). Percent throughout, like the paper.
"""
import argparse
import csv
import dataclasses
import io
import json
import pathlib
import sys

import backend
from backend.files import FormatError, atomic_write
from solve.infer import InferError
from solve import measure, results
from solve.console import GPUError, HelpFormatter, nonempty_path, positive_int, use_gpu

PAPER = pathlib.Path(__file__).with_name('paper_tables.json')
INTEGER = ('conv_layers', 'receptive_field', 'max_stride')
CSV_HEADER = ('table', 'net', 'model', 'numbers', 'metric', 'value', 'cell', 'unverified',
              'source_or_status')
EXAMPLES = """examples:
  python -m solve.tables                          # Markdown, scores from out/*/scores.csv
  python -m solve.tables --format csv --output tables.csv
  python -m solve.tables --evaluate --tables 2 --weights-from released --gpu 0
  python -m solve.tables --tables 1 --no-timing   # structure only, in seconds
  python -m solve.tables --tables 2 --weights voc-fcn8s=out/voc-fcn8s/snapshot/train_iter_8000.caffemodel
"""


class PaperTablesError(ValueError):
    """paper_tables.json breaks its own declarations."""


@dataclasses.dataclass
class Line:
    """One line of a table: published numbers, or ours (status says what and what not)."""
    net: str
    model: str | None
    numbers: str
    values: dict
    source: str = ''
    unverified: tuple = ()
    decimals: int = 1
    needs: dict = dataclasses.field(default_factory=dict)


def load_paper(path=PAPER):
    """The published tables, checked: every value's column is declared and every
    'unverified' name is a value of its entry."""
    data = json.loads(pathlib.Path(path).read_text(encoding='utf-8'))
    for table in data['tables']:
        unknown = set(table['columns']) - set(data['columns'])
        for row in table['rows']:
            for entry in row['published']:
                unknown |= set(entry['values']) - set(table['columns'])
                if not set(entry.get('unverified', ())) <= set(entry['values']):
                    raise PaperTablesError(f'{path}: table {table["id"]}, {row["net"]}: '
                                           f'"unverified" names a value the entry lacks')
        if unknown:
            raise PaperTablesError(f'{path}: table {table["id"]} uses undeclared columns '
                                   f'{sorted(unknown)}; declare them under "columns"')
    return data


class Measurements:
    """Runs the measurements, each model once, with the command-line options."""

    def __init__(self, opts):
        self.opts = opts
        self._structure, self._timing, self._scores = {}, {}, {}

    def scores(self, model):
        """--weights MODEL=PATH scores that file; --evaluate the trained or released
        weights; else the training loop's scores.csv."""
        o = self.opts
        if model not in self._scores:
            given = dict(getattr(o, 'weights', None) or ())
            if model in given:
                self._scores[model] = measure.evaluate(model, root=o.out_root, limit=o.limit,
                                                       weights=given[model])
            elif o.evaluate:
                self._scores[model] = measure.evaluate(model, o.weights_from, o.out_root,
                                                       o.limit)
            else:
                self._scores[model] = measure.from_scores(model, o.out_root)
        return self._scores[model]

    def structure(self, model, classifier):
        if model not in self._structure:
            self._structure[model] = measure.structure(model, classifier)
        return self._structure[model]

    def forward_ms(self, model):
        if model not in self._timing:
            print(f'timing {model}: {self.opts.repeat} forwards of {self.opts.size}x'
                  f'{self.opts.size}', file=sys.stderr)
            self._timing[model] = measure.forward_ms(model, self.opts.size, self.opts.repeat)
        return self._timing[model]


def published_lines(row):
    return [Line(row['net'], row.get('model'), entry['label'], dict(entry['values']),
                 entry['source'], tuple(entry.get('unverified', ())), entry.get('decimals', 1))
            for entry in row['published']]


def ours_line(table, row, run):
    """What this toolkit measured for the row's model, and what it lacks for the rest."""
    model = row.get('model')
    line = Line(row['net'], model, f'ours ({model})' if model else 'ours', {}, decimals=2)
    if model is None:
        line.source = f'not run: {row.get("no_model", "no model in this toolkit")}'
        return line
    done = []
    if 'scores' in table['measured']:
        got = run.scores(model)
        line.values.update(got.values)
        line.needs.update(got.needs)
        done += [got.label] if got.values else []
    if 'structure' in table['measured']:
        line.values.update(run.structure(model, row['classifier']))
        done.append('structure from nets/analysis.py')
    if 'timing' in table['measured'] and run.opts.timing:
        key = 'forward_ms' if 'forward_ms' in table['columns'] else 'inference'
        line.values[key] = run.forward_ms(model)
        done.append('timed here')
    if 'server' in table:
        line.needs['the VOC evaluation server'] = f'test-set scores need {table["server"]}'
    line.source = '; '.join(done)
    return line


def build(paper, opts, run=None):
    """[(table, [Line])] for the tables --tables names, in the paper's order."""
    run = run or Measurements(opts)
    built = []
    for table in paper['tables']:
        if opts.tables and table['id'] not in opts.tables:
            continue
        lines = []
        for row in table['rows']:
            lines += published_lines(row)
            if not row.get('baseline'):
                lines.append(ours_line(table, row, run))
        built.append((table, lines))
    return built


def cell(key, value, line):
    if value is None:
        return '–'
    if isinstance(value, str):
        text = value
    elif key == 'parameters':
        text = f'{value / 1e6:.0f}M'
    elif key in INTEGER:
        text = str(int(value))
    elif key in ('forward_ms', 'inference'):
        text = f'{value:.0f}' + (' ms' if key == 'inference' else '')
    else:
        text = f'{value:.{line.decimals}f}'
    return text + ('†' if key in line.unverified else '')


class Notes:
    """Numbered how-to notes for what is missing, each message once."""

    def __init__(self):
        self.messages = {}

    def ref(self, what, message):
        number = self.messages.setdefault(message, (len(self.messages) + 1, what))[0]
        return f'{what} [{number}]'

    def markdown(self):
        return [f'[{n}] {what}: {message}' for message, (n, what) in self.messages.items()]


def status(line, notes):
    if not line.needs:
        return line.source
    missing = ', '.join(notes.ref(what, msg) for what, msg in line.needs.items())
    return '; '.join(filter(None, [line.source, f'not run: needs {missing}']))


def markdown(paper, built, device=None):
    notes, out = Notes(), ['# FCN: the paper\'s tables and this toolkit\'s numbers', '']
    for table, lines in built:
        labels = [paper['columns'][c] for c in table['columns']]
        out += [f'## Table {table["id"]}. {table["title"]}', '',
                '| net | numbers | ' + ' | '.join(labels) + ' | source / status |',
                '|:--|:--|' + '--:|' * len(labels) + ':--|']
        previous = None
        for line in lines:
            cells = [cell(c, line.values.get(c), line) for c in table['columns']]
            name = '' if line.net == previous else line.net
            previous = line.net
            out.append(f'| {name} | {line.numbers} | ' + ' | '.join(cells) +
                       f' | {status(line, notes)} |')
        out.append('')
        out += [f'- {note}' for note in table.get('notes', [])]
        if device and 'timing' in table['measured']:
            out.append(f'- Timed here on: {device}.')
        out.append('')
    out += ['† UNVERIFIED in the fact sheet: not confirmed from a primary source.', '',
            'Sources: ' + '; '.join(f'{k} = {v}' for k, v in paper['sources'].items()), '']
    if notes.messages:
        out += ['## What is missing, and how to get it', ''] + notes.markdown() + ['']
    return '\n'.join(out)


def csv_text(paper, built, device=None):
    """One record per number (table, net, numbers, metric); a line with nothing measured
    gets one record whose last field says what it needs and how to get it. Timings name
    the `device` they ran on."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator='\n')
    writer.writerow(CSV_HEADER)
    for table, lines in built:
        for line in lines:
            how = '; '.join(f'needs {what}: {msg}' for what, msg in line.needs.items())
            text = '; '.join(filter(None, [line.source, how]))
            keys = [c for c in table['columns'] if c in line.values] or ['']
            for key in keys:
                value = line.values.get(key, '')
                exact = round(value, 6) if isinstance(value, float) else value
                timed = line.numbers.startswith('ours') and device and key in ('forward_ms',
                                                                              'inference')
                writer.writerow([table['id'], line.net, line.model or '', line.numbers, key,
                                 exact, cell(key, value, line) if key else '',
                                 'yes' if key in line.unverified else '',
                                 f'{text}; timed on {device}' if timed else text])
    return buffer.getvalue()


def model_weights(text):
    """argparse type: MODEL=CAFFEMODEL -> (model, path)."""
    from nets.models import MODELS
    model, sep, path = text.partition('=')
    if not sep or model not in MODELS or not path:
        raise argparse.ArgumentTypeError(
            f'expected MODEL=CAFFEMODEL with a model of nets/models.py, e.g. voc-fcn32s='
            f'out/voc-fcn32s/snapshot/train_iter_4000.caffemodel; got {text!r}')
    return model, pathlib.Path(path)


def parse_tables(text):
    ids = [t.strip() for t in text.split(',') if t.strip()]
    bad = [t for t in ids if t not in ('1', '2', '3', '4', '5', '6')]
    if bad:
        raise argparse.ArgumentTypeError(f'unknown table {bad[0]}; the tables are 1-6')
    return ids


def get_args_parser():
    parser = argparse.ArgumentParser(
        prog='python -m solve.tables', description=__doc__.split('\n\n')[0], epilog=EXAMPLES,
        formatter_class=HelpFormatter)
    parser.add_argument('--out-root', type=nonempty_path, default=None,
                        help='training output root; None: $FCN_OUT, else out/ in this checkout')
    parser.add_argument('--evaluate', action='store_true',
                        help='score weights on the test split now (needs the datasets) '
                             'instead of reading scores.csv')
    parser.add_argument('--weights-from', choices=('auto', 'trained', 'released'),
                        default='auto', help='with --evaluate: auto = trained if present, '
                                             'else the released caffemodel')
    parser.add_argument('--weights', type=model_weights, action='append', default=[],
                        metavar='MODEL=CAFFEMODEL',
                        help='score this file for MODEL (a snapshot, say) on the test split; '
                             'repeatable')
    parser.add_argument('--limit', type=positive_int, default=None, metavar='N',
                        help='with --evaluate: score only the first N test images (the '
                             'status says so); None: the whole split')
    parser.add_argument('--tables', type=parse_tables, default=None, metavar='IDS',
                        help='comma-separated table numbers, e.g. 1,2; None: all')
    parser.add_argument('--format', choices=('markdown', 'csv'), default='markdown',
                        help='Markdown tables, or CSV with one record per number')
    parser.add_argument('--output', type=pathlib.Path, default=None,
                        help='file to write; None: standard output')
    parser.add_argument('--no-timing', dest='timing', action='store_false',
                        help='skip the forward-time measurements (Tables 1 and 3)')
    parser.add_argument('--repeat', type=positive_int, default=3,
                        help='timed forwards per net')
    parser.add_argument('--size', type=positive_int, default=500,
                        help='timed input side, pixels')
    parser.add_argument('--gpu', type=int, default=None, metavar='N',
                        help='CUDA device for timing and --evaluate; None: the CPU')
    parser.add_argument('--paper', type=pathlib.Path, default=PAPER,
                        help='the published tables (JSON)')
    return parser


def main(args):
    try:
        if args.gpu is not None:
            use_gpu(args.gpu)
        paper = load_paper(args.paper)
        built = build(paper, args)
        device = (f'{measure.device_label(args.gpu)}; median of {args.repeat} forwards of '
                  f'{args.size}x{args.size} after a warm-up') if args.timing else None
        text = (csv_text(paper, built, device) if args.format == 'csv' else
                markdown(paper, built, device))
        if args.output:
            atomic_write(args.output, text.encode('utf-8'))
            print(f'wrote {args.output}', file=sys.stderr)
        else:
            sys.stdout.write(text)
    except (OSError, json.JSONDecodeError, PaperTablesError, results.ResultsError,
            FormatError, InferError, results.WeightsError, GPUError,
            *backend.input_errors()) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main(get_args_parser().parse_args()))
