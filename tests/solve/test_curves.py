"""solve.curves: train.log parsing and the two-panel PNG."""
import numpy as np
import pytest
from PIL import Image

from solve import curves

METRICS = ('loss', 'overall accuracy', 'mean accuracy', 'mean IU', 'fwavacc')


def write_log(path, iterations=200, every=20, rounds=(100, 200), heads=1, seed=0):
    """A train.log as the loop writes it: glog display lines and seg_tests score lines."""
    rng = np.random.default_rng(seed)
    losses, lines = {}, ['I1123 17:20:00.000001 1234 solver.py] Solving voc-fcn32s']
    for it in range(every, iterations + 1, every):
        losses[it] = float(rng.uniform(1e4, 1e5))
        lines.append(f'I1123 17:20:57.123456 1234 solver.py] Iteration {it} (2.1 iter/s, '
                     f'9.5s/{every} iters), loss = {losses[it]!r}')
        lines.append(f'I1123 17:20:57.123457 1234 solver.py]     Train net output #0: '
                     f'loss = {losses[it]!r} (* 1 = {losses[it]!r} loss)')
        if it in rounds:
            for head in range(heads):
                for k, name in enumerate(METRICS):
                    value = it / 1000 + head / 10 + k / 100
                    lines.append(f'I1123 17:21:00.000000 1234 score.py] >>> 2026-11-23 '
                                 f'17:21:00.123 Iteration {it} {name} {value}')
    path.write_text('\n'.join(lines) + '\n')
    return losses


def test_parse_loss_and_scores(tmp_path):
    """Each display line gives one loss point; each round gives the five scored values."""
    losses = write_log(tmp_path / 'train.log')
    parsed = curves.parse_log(tmp_path / 'train.log')
    assert parsed.train_loss == sorted(losses.items())
    assert parsed.rounds == [100, 200]
    assert parsed.scores[0, 'mean IU'] == [(100, pytest.approx(0.13)),
                                           (200, pytest.approx(0.23))]
    assert {metric for _, metric in parsed.scores} == set(METRICS)


def test_second_head_is_a_second_test(tmp_path):
    """A round scoring two heads (SIFT Flow) files the second set as test 1."""
    write_log(tmp_path / 'train.log', heads=2)
    parsed = curves.parse_log(tmp_path / 'train.log')
    assert parsed.scores[1, 'overall accuracy'] == [(100, pytest.approx(0.21)),
                                                    (200, pytest.approx(0.31))]


def test_a_resumed_run_replaces_the_redone_round(tmp_path):
    """Killed after scoring 200 but before its snapshot, the run resumes from 100 into the
    same log: the second 200 replaces the first, not a second test; loss is not doubled."""
    first = tmp_path / 'first.log'
    write_log(first, iterations=200, rounds=(100, 200), seed=1)
    redo = tmp_path / 'redo.log'
    redone = write_log(redo, iterations=300, rounds=(100, 200, 300), seed=2)
    kept = [line for line in redo.read_text().splitlines()
            if 'Iteration' not in line or int(line.split('Iteration ')[1].split()[0]) > 100]
    log = tmp_path / 'train.log'
    log.write_text(first.read_text() + '\n'.join(kept) + '\n')
    parsed = curves.parse_log(log)
    assert {test for test, _ in parsed.scores} == {0}
    assert [it for it, _ in parsed.scores[0, 'mean IU']] == [100, 200, 300]
    iterations = [it for it, _ in parsed.train_loss]
    assert iterations == sorted(set(iterations)) == list(range(20, 301, 20))
    assert dict(parsed.train_loss)[120] == redone[120]  # the resumed run's, from 120 on


def test_plain_caffe_lines_and_nan(tmp_path):
    """Caffe's older 'Iteration N, loss = X' lines parse, and nan scores are kept."""
    (tmp_path / 'train.log').write_text(
        'I0101 00:00:00.0 1 solver.cpp:228] Iteration 40, loss = 2.5e+05\n'
        '>>> 2026-01-01 00:00:00.0 Iteration 40 mean IU nan\n')
    parsed = curves.parse_log(tmp_path / 'train.log')
    assert parsed.train_loss == [(40, 2.5e5)]
    assert np.isnan(parsed.scores[0, 'mean IU'][0][1])


def test_plot_writes_a_png_atomically(tmp_path):
    """plot_curves writes a readable PNG and leaves no temporary file behind."""
    write_log(tmp_path / 'train.log', heads=2)
    curves.plot_curves(tmp_path / 'train.log', tmp_path / 'curves.png')
    with Image.open(tmp_path / 'curves.png') as png:
        assert png.format == 'PNG' and png.size[0] > png.size[1] > 100
    assert sorted(p.name for p in tmp_path.iterdir()) == ['curves.png', 'train.log']


def test_plot_of_an_empty_log(tmp_path):
    """A log with no training lines yet still gives a PNG (panels say there is no data)."""
    (tmp_path / 'train.log').write_text('')
    parsed = curves.plot_curves(tmp_path / 'train.log', tmp_path / 'curves.png')
    assert parsed.train_loss == [] and parsed.scores == {}
    assert (tmp_path / 'curves.png').stat().st_size > 0


def test_cli_on_a_stage_folder(tmp_path, capsys):
    """Given a stage folder, the CLI writes curves.png beside its train.log."""
    write_log(tmp_path / 'train.log')
    args = curves.get_args_parser().parse_args([str(tmp_path)])
    assert curves.main(args) == 0
    assert (tmp_path / 'curves.png').is_file()
    assert 'last mean IU 23.00 at 200' in capsys.readouterr().out


def test_catch_missing_log(tmp_path, capsys):
    """A folder without train.log exits 2 and says what writes it."""
    args = curves.get_args_parser().parse_args([str(tmp_path)])
    assert curves.main(args) == 2
    err = capsys.readouterr().err
    assert 'train.log' in err and 'Traceback' not in err
