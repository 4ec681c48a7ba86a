"""solve.tables: the published tables beside measured numbers, in Markdown and CSV."""
import csv
import io
import json

import pytest

import dataset_fixtures as fx
from backend import caffe
from caffe_torch import coord_map, layers as L, params as P, NetSpec
from solve import measure, score, tables

HEADER = 'iteration,loss,pixel_accuracy,mean_accuracy,mean_iu,fw_iu\n'


@pytest.fixture
def env(newcomer):
    """The newcomer's machine; returns its output root."""
    return newcomer / 'out'


def write_scores(out, model, rows):
    (out / model).mkdir(parents=True, exist_ok=True)
    (out / model / 'scores.csv').write_text(HEADER + ''.join(f'{r}\n' for r in rows))


def run(argv, capsys):
    code = tables.main(tables.get_args_parser().parse_args(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def table_lines(markdown, table_id):
    """The '|' lines of one table of the Markdown output."""
    block = markdown.split(f'## Table {table_id}.')[1].split('\n## ')[0]
    return [line for line in block.splitlines() if line.startswith('|')]


def test_paper_numbers_are_the_published_ones():
    """paper_tables.json holds Tables 1-6 with the fact sheet's headline numbers."""
    paper = tables.load_paper()
    assert [t['id'] for t in paper['tables']] == ['1', '2', '3', '4', '5', '6']
    values = {(t['id'], r['net'], e['label']): e['values'] for t in paper['tables']
              for r in t['rows'] for e in r['published']}
    assert values['2', 'FCN-8s', 'paper (CVPR 2015)'] == {
        'pixel_accuracy': 90.3, 'mean_accuracy': 75.9, 'mean_iu': 62.7, 'fw_iu': 83.2}
    assert values['2', 'FCN-8s', 'released model']['mean_iu'] == 65.5126
    assert values['1', 'FCN-VGG16', 'paper (CVPR 2015)']['forward_ms'] == 210
    assert values['4', 'FCN-16s RGB-HHA', 'paper (CVPR 2015)']['mean_iu'] == 34.0
    assert values['5', 'FCN-16s (two-headed)', 'paper (CVPR 2015)']['geom_accuracy'] == 94.3
    assert values['3', 'FCN-8s', 'paper (PAMI 2016), heavy']['voc2012_test_mean_iu'] == 67.2


def test_unverified_values_are_marked():
    """Values the fact sheet calls UNVERIFIED carry the flag and print with a dagger."""
    paper = tables.load_paper()
    flagged = {(t['id'], r['net'], name) for t in paper['tables'] for r in t['rows']
               for e in r['published'] for name in e.get('unverified', ())}
    assert ('6', 'FCN-8s', 'mean_iu') in flagged
    assert ('3', 'FCN-8s', 'voc2011_test_mean_iu') in flagged
    assert ('3', 'FCN-8s', 'voc2012_test_mean_iu') not in flagged
    line = tables.Line('FCN-8s', None, 'paper', {'mean_iu': 39.1}, unverified=('mean_iu',))
    assert tables.cell('mean_iu', 39.1, line) == '39.1†'


def test_catch_undeclared_column(tmp_path):
    """A published value under a column its table does not declare is refused."""
    paper = json.loads(tables.PAPER.read_text())
    paper['tables'][1]['rows'][0]['published'][0]['values']['geom_accuracy'] = 1.0
    (tmp_path / 'paper.json').write_text(json.dumps(paper))
    with pytest.raises(tables.PaperTablesError, match='undeclared columns'):
        tables.load_paper(tmp_path / 'paper.json')


def test_rows_with_scores(env, capsys):
    """The last row of a stage's scores.csv becomes 'ours', in percent, beside the paper."""
    write_scores(env, 'voc-fcn32s', ['4000,9e4,0.88,0.70,0.55,0.80',
                                     '8000,8e4,0.9049,0.7649,0.6363,0.8346'])
    code, out, _ = run(['--tables', '2'], capsys)
    assert code == 0
    ours = [line for line in table_lines(out, 2) if 'ours (voc-fcn32s)' in line][0]
    assert '| 90.49 | 76.49 | 63.63 | 83.46 |' in ours
    assert 'scores.csv iteration 8000' in ours


def test_fast_math_runs_are_labelled(env, capsys):
    """A stage trained with --fast-math is marked as not Caffe's arithmetic."""
    write_scores(env, 'voc-fcn32s', ['8000,8e4,0.9,0.76,0.63,0.83'])
    (env / 'voc-fcn32s' / 'run.json').write_text('{"fast_math": true}')
    _, out, _ = run(['--tables', '2'], capsys)
    ours = [line for line in table_lines(out, 2) if 'ours (voc-fcn32s)' in line][0]
    assert "WITH FAST MATH (not Caffe's arithmetic)" in ours


def test_rows_absent_name_what_is_missing(env, capsys):
    """Without data, weights or earlier stages, each row says what it needs, with notes."""
    code, out, _ = run(['--tables', '2,4'], capsys)
    assert code == 0
    lines = table_lines(out, 2)
    fcn32s = [line for line in lines if 'ours (voc-fcn32s)' in line][0]
    assert 'not run: needs dataset sbdd [' in fcn32s and 'weights vgg16-fcn [' in fcn32s
    fcn16s = [line for line in lines if 'ours (voc-fcn16s)' in line][0]
    assert 'stage voc-fcn32s [' in fcn16s
    fixed = [line for line in lines if line.startswith('|  | ours |')][0]
    assert 'not run: no recipe' in fixed
    notes = out.split('## What is missing, and how to get it')[1]
    assert 'FCN_SBDD_DIR' in notes and 'python -m weights.convert vgg16' in notes
    assert 'make voc-fcn32s' in notes
    assert 'dataset nyud [' in ''.join(table_lines(out, 4))


def test_markdown_shape(env, capsys):
    """Every line of every table has the header's number of cells."""
    code, out, _ = run(['--tables', '2,3,4,5,6', '--no-timing'], capsys)
    assert code == 0
    for table_id in (2, 3, 4, 5, 6):
        lines = table_lines(out, table_id)
        assert lines[0].startswith('| net | numbers |') and lines[1].startswith('|:--|')
        assert len({line.count('|') for line in lines}) == 1, table_id


def test_csv_shape(env, capsys):
    """CSV has one record per number, all with the header's fields; a line with nothing
    measured has one record carrying the how-to."""
    write_scores(env, 'voc-fcn8s', ['100000,1,0.912,0.776,0.655,0.845'])
    code, out, _ = run(['--tables', '2,6', '--format', 'csv'], capsys)
    assert code == 0
    records = list(csv.reader(io.StringIO(out)))
    assert tuple(records[0]) == tables.CSV_HEADER
    assert {len(r) for r in records} == {len(tables.CSV_HEADER)}
    rows = [dict(zip(records[0], r)) for r in records[1:]]
    fcn8s = {r['metric']: r for r in rows if r['numbers'] == 'ours (voc-fcn8s)'}
    assert float(fcn8s['mean_iu']['value']) == pytest.approx(65.5)
    assert fcn8s['mean_iu']['cell'] == '65.50'
    missing = [r for r in rows if r['numbers'] == 'ours (pascalcontext-fcn32s)']
    assert len(missing) == 1 and missing[0]['metric'] == ''
    assert 'needs dataset voc2010: dataset "voc2010" not found' in missing[0]['source_or_status']
    pami = [r for r in rows if r['numbers'] == 'paper (PAMI 2016)']
    assert pami[0]['unverified'] == 'yes'


def test_output_file(env, tmp_path, capsys):
    """--output writes the file instead of printing."""
    code, out, _ = run(['--tables', '6', '--output', str(tmp_path / 't.md')], capsys)
    assert code == 0 and out == ''
    assert '## Table 6. PASCAL-Context' in (tmp_path / 't.md').read_text()


def test_siftflow_geometric_accuracy_from_the_log(env, capsys):
    """SIFT Flow's geom. acc. is the second (geo) overall accuracy of the round in train.log."""
    write_scores(env, 'siftflow-fcn16s', ['2000,1,0.85,0.51,0.39,0.76'])
    (env / 'siftflow-fcn16s' / 'train.log').write_text(
        '>>> 2026-01-01 Iteration 2000 overall accuracy 0.85\n'
        '>>> 2026-01-01 Iteration 2000 overall accuracy 0.943\n')
    code, out, _ = run(['--tables', '5'], capsys)
    ours = [line for line in table_lines(out, 5) if 'ours (siftflow-fcn16s)' in line][0]
    assert '| 85.00 | 51.00 | 39.00 | 76.00 | 94.30 |' in ours


def test_catch_broken_scores_csv(env, capsys):
    """A scores.csv with a non-number exits 2 naming the file and column."""
    write_scores(env, 'voc-fcn32s', ['4000,1,high,0.7,0.5,0.8'])
    code, _, err = run(['--tables', '2'], capsys)
    assert code == 2
    assert 'scores.csv, line 2: column pixel_accuracy' in err and 'Traceback' not in err


@pytest.mark.slow
def test_table1_structure(env, capsys):
    """Table 1's structural columns, from our nets, are the paper's for all three FCNs."""
    code, out, _ = run(['--tables', '1', '--no-timing'], capsys)
    assert code == 0
    lines = table_lines(out, 1)
    for model, cells in [('voc-fcn32s', '| 16 | 134M | 404 | 32 |'),
                         ('voc-fcn-alexnet', '| 8 | 57M | 355 | 32 |'),
                         ('voc-fcn-googlenet', '| 22 | 6M | 907 | 32 |')]:
        ours = [line for line in lines if f'ours ({model})' in line][0]
        assert f'| – {cells}' in ours, ours


def test_timing_is_labelled_with_the_machine(env, capsys, monkeypatch):
    """Timed columns are filled and the table names the device and torch version."""
    monkeypatch.setattr(measure, 'forward_ms', lambda model, size, repeat: 123.4)
    code, out, _ = run(['--tables', '3', '--repeat', '1'], capsys)
    ours = [line for line in table_lines(out, 3) if 'ours (voc-fcn8s)' in line][0]
    assert '| 123 ms |' in ours and 'needs the VOC evaluation server' in ours
    assert '- Timed here on: ' in out and 'torch ' in out


def tiny_val_net(path):
    """A small FCN-shaped val net on the VOC seg11valid data layer, scored like the real one."""
    n = NetSpec()
    n.data, n.label = L.Python(module='data_layers.voc', layer='VOCSegDataLayer', ntop=2,
                               param_str="{'split': 'seg11valid', 'randomize': False}")
    n.conv1 = L.Convolution(n.data, num_output=4, kernel_size=3, pad=1,
                            weight_filler=dict(type='gaussian', std=0.1))
    n.pool1 = L.Pooling(n.conv1, pool=P.Pooling.MAX, kernel_size=2, stride=2)
    n.score_fr = L.Convolution(n.pool1, num_output=21, kernel_size=1,
                               weight_filler=dict(type='gaussian', std=1))
    n.upscore = L.Deconvolution(n.score_fr, convolution_param=dict(
        num_output=21, kernel_size=4, stride=2, bias_term=False,
        weight_filler=dict(type='gaussian', std=1)))
    n.score = coord_map.crop(n.upscore, n.data)
    n.loss = L.SoftmaxWithLoss(n.score, n.label, loss_param=dict(ignore_label=255,
                                                                 normalize=False))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(str(n.to_proto()))


def test_evaluate_trained_weights(env, tmp_path, capsys, monkeypatch):
    """--evaluate scores the trained weights through val.prototxt, as solve.score does."""
    fx.set_dataset_env(monkeypatch, voc=fx.make_voc(tmp_path / 'voc', sizes=(11, 13)))
    monkeypatch.setattr(measure, 'NETS', tmp_path / 'nets')
    val = tmp_path / 'nets' / 'voc-fcn32s' / 'val.prototxt'
    tiny_val_net(val)
    caffe.set_random_seed(2)
    net = caffe.Net(str(val), caffe.TEST)
    (env / 'voc-fcn32s').mkdir(parents=True)
    net.save(str(env / 'voc-fcn32s' / 'voc-fcn32s.caffemodel'))
    expected, _, _ = score.evaluate(net, 3, progress=False)
    code, out, _ = run(['--tables', '2', '--evaluate', '--limit', '3'], capsys)
    assert code == 0
    ours = [line for line in table_lines(out, 2) if 'ours (voc-fcn32s)' in line][0]
    assert f'| {100 * expected.mean_iu:.2f} |' in ours
    assert 'trained weights, evaluated here, first 3 of 736 images' in ours


def test_evaluate_a_snapshot_given_by_weights(env, tmp_path, capsys, monkeypatch):
    """--weights MODEL=CAFFEMODEL scores that file (a snapshot of a stage still training)
    without --evaluate; a missing file is named."""
    fx.set_dataset_env(monkeypatch, voc=fx.make_voc(tmp_path / 'voc', sizes=(9, 10)))
    monkeypatch.setattr(measure, 'NETS', tmp_path / 'nets')
    tiny_val_net(tmp_path / 'nets' / 'voc-fcn16s' / 'val.prototxt')
    caffe.set_random_seed(3)
    net = caffe.Net(str(tmp_path / 'nets' / 'voc-fcn16s' / 'val.prototxt'), caffe.TEST)
    snapshot = env / 'voc-fcn16s' / 'snapshot' / 'train_iter_8.caffemodel'
    snapshot.parent.mkdir(parents=True)
    net.save(str(snapshot))
    expected, _, _ = score.evaluate(net, 2, progress=False)
    code, out, _ = run(['--tables', '2', '--limit', '2', '--weights',
                        f'voc-fcn16s={snapshot}', '--weights',
                        f'voc-fcn8s={tmp_path / "none.caffemodel"}'], capsys)
    assert code == 0
    lines = table_lines(out, 2)
    ours = [line for line in lines if 'ours (voc-fcn16s)' in line][0]
    assert f'| {100 * expected.mean_iu:.2f} |' in ours and 'train_iter_8.caffemodel' in ours
    eight = [line for line in lines if 'ours (voc-fcn8s)' in line][0]
    assert 'needs weights none.caffemodel [' in eight
    with pytest.raises(SystemExit):
        tables.get_args_parser().parse_args(['--weights', 'no-such-model=x.caffemodel'])


def test_released_weights_point_to_evaluate(env, capsys):
    """Without scores but with a release on disk, the row says --evaluate would score it."""
    from weights import manifest as mf
    entry = next(e for e in mf.load().entries.values() if e.get('model') == 'voc-fcn8s')
    path = mf.path_of(entry['name'])
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, 'wb') as f:
        f.truncate(entry.get('size') or 1)  # sparse: only the size is checked here
    code, out, _ = run(['--tables', '2'], capsys)
    ours = [line for line in table_lines(out, 2) if 'ours (voc-fcn8s)' in line][0]
    assert 'or --evaluate [' in ours
    assert '--evaluate --weights-from released` scores it' in out


def test_csv_timings_name_the_machine(env, capsys, monkeypatch):
    monkeypatch.setattr(measure, 'forward_ms', lambda model, size, repeat: 123.4)
    code, out, _ = run(['--tables', '3', '--repeat', '1', '--format', 'csv'], capsys)
    rows = list(csv.DictReader(io.StringIO(out)))
    timed = [r for r in rows if r['metric'] == 'inference' and r['numbers'].startswith('ours')]
    assert timed and all('timed on CPU' in r['source_or_status'] or 'timed on GPU' in
                         r['source_or_status'] for r in timed)
    published = [r for r in rows if r['metric'] == 'inference' and r['numbers'].startswith(
        'paper')]
    assert published and not any('timed on' in r['source_or_status'] for r in published)


def test_evaluate_names_the_test_data_only(env, capsys):
    """--evaluate without data asks for the test split's dataset (voc), not the training
    set, and for trained or released weights."""
    code, out, _ = run(['--tables', '2', '--evaluate'], capsys)
    ours = [line for line in table_lines(out, 2) if 'ours (voc-fcn8s)' in line][0]
    assert 'dataset voc [' in ours and 'sbdd' not in ours
    assert 'stage voc-fcn8s [' in ours and 'release voc-fcn8s [' in ours


def test_help_needs_no_data(capsys):
    """--help works without data, weights or a GPU, and shows an example."""
    with pytest.raises(SystemExit) as exit_:
        tables.get_args_parser().parse_args(['--help'])
    assert exit_.value.code == 0
    assert 'python -m solve.tables --format csv' in capsys.readouterr().out
