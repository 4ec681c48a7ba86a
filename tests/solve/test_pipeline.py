"""The staged pipeline end to end on tiny generated data: classifier from scratch, surgery into
FCN-32s, FCN-16s from it; a run killed after a snapshot resumes; finished stages are skipped;
`make demo`'s driver prints the Table-2 form and writes the overlay and curves."""
import csv
import os
import pathlib
import subprocess
import sys

import numpy as np
from PIL import Image

from solve import cli, demo

ROOT = pathlib.Path(__file__).resolve().parents[2]
QUICK = ['--iterations', '4', '--step', '2', '--no-progress']

# The same command in a child process that dies (os._exit: no cleanup, as a kill) right after
# FCN-32s's first snapshot: the state an interrupted stage leaves behind.
KILLED_AFTER_FIRST_SNAPSHOT = '''
import os, sys
from caffe_torch import solver
snapshot = solver.Solver.snapshot

def snapshot_then_die(self):
    snapshot(self)
    if 'demo-fcn32s' in self.param.snapshot_prefix:
        os._exit(3)

solver.Solver.snapshot = snapshot_then_die
from solve import cli
sys.exit(cli.main(cli.get_args_parser('demo-fcn16s').parse_args(sys.argv[1:]), 'demo-fcn16s'))
'''


def _main(argv, model_id):
    return cli.main(cli.get_args_parser(model_id).parse_args(argv), model_id)


def scores(out, model_id):
    with open(out / model_id / 'scores.csv') as f:
        return [(int(r['iteration']), r['head']) for r in csv.DictReader(f)]


def files(out):
    """Every file under out with its modification time and size."""
    return {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in out.rglob('*') if p.is_file()}


def test_killed_stage_resumes_and_finished_stages_are_skipped(tiny_demo):
    out = tiny_demo / 'out'
    killed = subprocess.run([sys.executable, '-c', KILLED_AFTER_FIRST_SNAPSHOT, '--out',
                             str(out)] + QUICK, cwd=ROOT, env=dict(os.environ),
                            capture_output=True, text=True, timeout=600)
    assert killed.returncode == 3, killed.stderr[-3000:]
    classifier = out / 'demo-classifier' / 'demo-classifier.caffemodel'
    assert classifier.is_file() and scores(out, 'demo-classifier') == [(2, 'class'),
                                                                       (4, 'class')]
    assert (out / 'demo-fcn32s' / 'snapshot' / 'train_iter_2.solverstate').is_file()
    assert not (out / 'demo-fcn32s' / 'demo-fcn32s.caffemodel').exists()
    assert not list(out.rglob('.*')), 'a write was left half-done (atomic_write temp file)'
    before = classifier.stat().st_mtime_ns

    assert _main(['--out', str(out)] + QUICK, 'demo-fcn16s') == 0
    assert classifier.stat().st_mtime_ns == before  # done: skipped
    log = (out / 'demo-fcn32s' / 'train.log').read_text()
    assert 'transplanted the classifier' in log
    assert ' copied, 2 reshaped, ' in log  # the fc6 and fc7 weights
    assert 'resuming demo-fcn32s from' in log and 'train_iter_2.solverstate' in log
    assert scores(out, 'demo-fcn32s') == [(2, 'score'), (4, 'score')]  # round 2 only, once
    assert scores(out, 'demo-fcn16s') == [(2, 'score'), (4, 'score')]
    for stage in ('demo-fcn32s', 'demo-fcn16s'):
        assert (out / stage / f'{stage}.caffemodel').is_file()
        assert (out / stage / 'curves.png').is_file()

    written = files(out)
    assert _main(['--out', str(out)] + QUICK, 'demo-fcn16s') == 0
    assert files(out) == written  # every stage done: nothing runs, nothing is rewritten
    assert _main(['--out', str(out), '--iterations', '6', '--no-progress'], 'demo-fcn16s') == 2
    assert files(out) == written  # another schedule is refused, not skipped or mixed


def test_surgery_carries_the_classifier_into_fcn32s(tiny_demo):
    """FCN-32s starts from the classifier: conv weights copied, fc6/fc7 reshaped to kernels,
    score_fr and the frozen deconvolution left to their fillers and bilinear weights."""
    from backend import caffe
    from solve import loop, stages
    out = tiny_demo / 'out'
    assert _main(['--out', str(out), '--only'] + QUICK, 'demo-classifier') == 0
    classifier = caffe.Net(str(ROOT / 'nets' / 'demo-classifier' / 'deploy.prototxt'),
                           caffe.TEST, weights=str(loop.final_weights(out, 'demo-classifier')))
    (out / 'fcn').mkdir()
    solver, param = loop.build_solver('demo-fcn32s', out / 'fcn')
    stages.initialise('demo-fcn32s', solver.net, str(loop.final_weights(out,
                                                                          'demo-classifier')))
    stages.bilinear(solver.net, param.train_net)
    fcn = solver.net.params
    np.testing.assert_array_equal(fcn['conv3_2'][0].data, classifier.params['conv3_2'][0].data)
    for name in ('fc6', 'fc7'):
        np.testing.assert_array_equal(fcn[name][0].data.reshape(fcn[name][0].data.shape[0], -1),
                                      classifier.params[name][0].data)
    kernel = fcn['upscore'][0].data
    assert np.allclose(kernel[0, 0], kernel[1, 1]) and not kernel[0, 1].any()


def test_demo_prints_the_table_and_writes_overlay_and_curves(tiny_demo, capsys):
    """`make demo`'s driver on the tiny sets: the Table-2 rows are the stages' last scores;
    FCN-32s starts from the shipped classifier."""
    out = tiny_demo / 'demo'
    assert demo.main(demo.get_args_parser().parse_args(
        ['--out', str(out), '--seed', '3', '--iterations', '4', '--no-progress'])) == 0
    printed = capsys.readouterr().out
    rows = [line for line in printed.splitlines() if line.startswith('| FCN-')]
    assert [r.split('|')[1].strip() for r in rows] == ['FCN-32s', 'FCN-16s', 'FCN-8s']
    for row, stage in zip(rows, demo.STAGES):
        last = [float(v) for v in row.split('|')[2:6]]
        want = demo.last_scores(out, stage)
        assert last == [round(100 * float(want[m]), 1) for m in demo.METRICS]
    assert f'The shipped classifier: {demo.SHIPPED_ACCURACY:.1f}% held out' in printed
    first = (tiny_demo / 'data' / 'demo' / 'voc' / 'ImageSets' / 'Segmentation' /
             'val.txt').read_text().split()[0]
    with Image.open(out / 'demo-example' / f'{first}_overlay.png') as overlay:
        assert overlay.format == 'PNG' and overlay.size == (64, 64)
    for stage in demo.STAGES:
        assert (out / stage / 'curves.png').is_file()
    assert not (out / 'demo-classifier').exists()  # FCN-32s started from the shipped one
    run = (out / 'demo-fcn32s' / 'run.json').read_text()
    assert str(demo.SHIPPED) in run


def test_demo_refuses_data_of_another_seed(tiny_demo, capsys):
    """Sets drawn with another seed are not silently reused: nothing runs."""
    out = tiny_demo / 'demo'
    assert demo.main(demo.get_args_parser().parse_args(['--out', str(out)])) == 2
    err = capsys.readouterr().err
    assert 'holds a set drawn with --seed 3, not --seed 0' in err and 'FCN_DATA' in err
    assert not out.exists()


def test_scores_of_a_redone_round_replace_the_old_ones(tmp_path):
    """A run killed between scoring and snapshot redoes the round: its rows are not doubled."""
    from solve import loop, score
    path = tmp_path / 'scores.csv'
    metrics = [score.SegMetrics(*[k / 10] * 4, *[np.zeros(1)] * 3, ('x',), loss=k)
               for k in range(4)]
    for iteration, m in ((2, metrics[0]), (4, metrics[1]), (4, metrics[2]), (6, metrics[3])):
        loop._append_scores(path, iteration, [('score', m)])
    with open(path) as f:
        rows = list(csv.DictReader(f))
    assert [(r['iteration'], r['loss']) for r in rows] == [('2', '0'), ('4', '2'), ('6', '3')]


def test_check_names_each_failure(tmp_path):
    """--check passes the README's table, and names a falling mean IU and a score off it."""
    def write(stage, values):
        folder = tmp_path / stage
        folder.mkdir(exist_ok=True)
        with open(folder / 'scores.csv', 'w', newline='') as f:
            writer = csv.writer(f)
            writer.writerow(['iteration', 'head'] + list(demo.METRICS))
            writer.writerow([600, 'score'] + [v / 100 for v in values])
    for stage, values in demo.EXPECTED.items():
        write(stage, values)
    assert demo.check(tmp_path) == []
    pixel, mean, _, fw = demo.EXPECTED['demo-fcn8s']
    fallen = demo.EXPECTED['demo-fcn16s'][2] - 1.0   # below FCN-16s, and off by more than 3
    write('demo-fcn8s', (pixel, mean, fallen, fw))
    problems = demo.check(tmp_path)
    assert len(problems) == 2
    assert problems[0].startswith(f'demo-fcn8s mean_iu: {fallen:.1f}, expected '
                                  f'{demo.EXPECTED["demo-fcn8s"][2]:.1f}')
    assert problems[1] == ('mean IU does not rise from FCN-32s to FCN-16s to FCN-8s: ' +
                           ', '.join(f'{demo.EXPECTED[s][2]:.1f}' for s in demo.STAGES[:2]) +
                           f', {fallen:.1f}')


def test_readme_states_the_expected_table():
    """The README's demo table is demo.EXPECTED, row for row."""
    readme = (ROOT / 'README.md').read_text()
    for stage, values in demo.EXPECTED.items():
        row = f'| FCN-{stage.split("fcn")[1]} | ' + ' | '.join(f'{v:.1f}' for v in values)
        assert row in readme, row


def test_round_bars_on_a_terminal_keep_log_lines_whole(tiny_demo, capsys, monkeypatch):
    """On a terminal each round has a tqdm bar named after the stage and round, and the log
    lines printed meanwhile start lines of their own, not the tail of a bar's frame."""
    import logging
    from solve import console
    monkeypatch.setattr(console, 'stderr_is_terminal', lambda: True)
    from caffe_torch import logs
    for name in ('fcn', 'caffe_torch'):  # handlers on this test's stderr, not stale ones
        monkeypatch.setattr(logging.getLogger(name), 'handlers', [])
    logs.install()
    assert _main(['--out', str(tiny_demo / 'out'), '--iterations', '4', '--step', '2'],
                 'demo-classifier') == 0
    err = capsys.readouterr().err
    assert 'demo-classifier round 1/2' in err and 'demo-classifier round 2/2' in err
    assert 'it/s' in err or 's/it' in err
    logged = [line.rsplit('\r', 1)[-1] for line in err.split('\n') if '.py] ' in line]
    assert any('Iteration 0' in line for line in logged)  # logged while a bar is up
    assert logged and all(line[0] in 'IWE' and line[1:5].isdigit() for line in logged)


def test_demo_from_scratch_trains_the_classifier_first(tiny_demo, capsys):
    """--classifier scratch runs the whole chain: the classifier stage from its fillers,
    FCN-32s from its result, and the printed accuracy is that stage's last score."""
    out = tiny_demo / 'scratch'
    assert demo.main(demo.get_args_parser().parse_args(
        ['--out', str(out), '--seed', '3', '--iterations', '2', '--no-progress',
         '--classifier', 'scratch'])) == 0
    accuracy = 100 * float(demo.last_scores(out, 'demo-classifier')['pixel_accuracy'])
    assert f'The classifier trained here: {accuracy:.1f}% held out.' in capsys.readouterr().out
    run = (out / 'demo-fcn32s' / 'run.json').read_text()
    assert str(out / 'demo-classifier' / 'demo-classifier.caffemodel') in run
