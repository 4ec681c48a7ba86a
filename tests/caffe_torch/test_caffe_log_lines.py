"""The engine's log lines in BVLC Caffe's words and order (net.cpp, layer_factory.hpp,
solver.cpp, sgd_solver.cpp at 9b89154), and Caffe's tools/extra/parse_log.py reading an
engine training log into the columns it gives for Caffe's own."""
import datetime
import logging
import math
import re
from collections import OrderedDict

import pytest
from google.protobuf import text_format

import caffe_torch as caffe
from caffe_torch import logs
from caffe_torch.proto import caffe_pb2

NET = """name: 'tiny'
layer { name: 'data' type: 'Input' top: 'data' top: 'label'
  input_param { shape { dim: 2 dim: 3 dim: 4 dim: 4 } shape { dim: 2 } } }
layer { name: 'conv' type: 'Convolution' bottom: 'data' top: 'conv'
  convolution_param { num_output: 2 kernel_size: 3 weight_filler { type: 'xavier' } } }
layer { name: 'relu' type: 'ReLU' bottom: 'conv' top: 'conv' }
layer { name: 'fc' type: 'InnerProduct' bottom: 'conv' top: 'fc'
  inner_product_param { num_output: 3 weight_filler { type: 'xavier' } } }
layer { name: 'loss' type: 'SoftmaxWithLoss' bottom: 'fc' bottom: 'label' top: 'loss' }
layer { name: 'accuracy' type: 'Accuracy' bottom: 'fc' bottom: 'label' top: 'accuracy'
  include { phase: TEST } }
"""

# Net::Init for NET in TRAIN, after its "Initializing net from parameters" line: Caffe's
# lines one for one (the Split layer InsertSplits adds for 'label' is absent in TRAIN).
TRAIN_SET_UP = [
    'Creating layer data', 'Creating Layer data', 'data -> data', 'data -> label',
    'Setting up data', 'Top shape: 2 3 4 4 (96)', 'Top shape: 2 (2)',
    'Memory required for data: 392',
    'Creating layer conv', 'Creating Layer conv', 'conv <- data', 'conv -> conv',
    'Setting up conv', 'Top shape: 2 2 2 2 (16)', 'Memory required for data: 456',
    'Creating layer relu', 'Creating Layer relu', 'relu <- conv', 'relu -> conv (in-place)',
    'Setting up relu', 'Top shape: 2 2 2 2 (16)', 'Memory required for data: 520',
    'Creating layer fc', 'Creating Layer fc', 'fc <- conv', 'fc -> fc', 'Setting up fc',
    'Top shape: 2 3 (6)', 'Memory required for data: 544',
    'Creating layer loss', 'Creating Layer loss', 'loss <- fc', 'loss <- label',
    'loss -> loss', 'Setting up loss', 'Top shape: (1)', '    with loss weight 1',
    'Memory required for data: 548',
    'loss needs backward computation.', 'fc needs backward computation.',
    'relu needs backward computation.', 'conv needs backward computation.',
    'data does not need backward computation.',
    'This network produces output loss', 'Network initialization done.']


def net_messages(caplog):
    return [r.getMessage() for r in caplog.records if r.name == 'caffe_torch.net']


def write_net(tmp_path, text=NET):
    path = tmp_path / 'net.prototxt'
    path.write_text(text)
    return str(path)


def test_net_set_up_lines(tmp_path, caplog):
    """Net construction logs Caffe's Net::Init lines, in its order and words."""
    caplog.set_level(logging.INFO, logger='caffe_torch')
    caffe.Net(write_net(tmp_path), caffe.TRAIN)
    lines = net_messages(caplog)
    filtered = text_format.Parse(NET, caffe_pb2.NetParameter())
    del filtered.layer[-1]  # the TEST-only accuracy layer
    filtered.state.phase, filtered.state.level = caffe.TRAIN, 0
    assert lines[0] == 'Initializing net from parameters: \n' + str(filtered).rstrip('\n')
    assert lines[1:] == TRAIN_SET_UP
    assert all(r.filename == 'net.py' for r in caplog.records if r.name == 'caffe_torch.net')


def test_net_set_up_lines_with_splits_and_outputs(tmp_path, caplog):
    """In TEST, the Split layers InsertSplits adds are created and set up like any other,
    outputs are listed in name order, and layers without a loss need no backward."""
    caplog.set_level(logging.INFO, logger='caffe_torch')
    caffe.Net(write_net(tmp_path), caffe.TEST)
    lines = net_messages(caplog)
    assert lines[lines.index('Creating Layer label_data_1_split'):][:8] == [
        'Creating Layer label_data_1_split', 'label_data_1_split <- label',
        'label_data_1_split -> label_data_1_split_0',
        'label_data_1_split -> label_data_1_split_1', 'Setting up label_data_1_split',
        'Top shape: 2 (2)', 'Top shape: 2 (2)', 'Memory required for data: 408']
    assert lines[-3:] == ['This network produces output accuracy',
                          'This network produces output loss', 'Network initialization done.']
    assert 'accuracy does not need backward computation.' in lines
    assert 'loss needs backward computation.' in lines


SOLVER = """net: 'net.prototxt' test_iter: 1 test_interval: 2 base_lr: 0.01
lr_policy: 'fixed' display: 1 max_iter: 3 snapshot: 2 snapshot_prefix: 'snap/tiny'
random_seed: 1
"""


def solver_messages(caplog):
    return [r.getMessage() for r in caplog.records if r.name == 'caffe_torch.solver']


@pytest.fixture
def solving(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'snap').mkdir()
    write_net(tmp_path)
    (tmp_path / 'solver.prototxt').write_text(SOLVER)


def test_solver_set_up_lines(solving, caplog):
    """Solver::Init's lines: its parameters, where each net comes from, scaffolding done."""
    caplog.set_level(logging.INFO, logger='caffe_torch')
    caffe.SGDSolver('solver.prototxt')
    lines = solver_messages(caplog)
    param = text_format.Parse(SOLVER, caffe_pb2.SolverParameter())
    assert lines == ['Initializing solver from parameters: \n' + str(param).rstrip('\n'),
                     'Creating training net from net file: net.prototxt',
                     'Creating test net (#0) specified by net file: net.prototxt',
                     'Solver scaffolding done.']
    every = [r.getMessage().split('\n')[0] for r in caplog.records]
    assert every.index('Creating training net from net file: net.prototxt') < \
        every.index('Initializing net from parameters: ') < \
        every.index('Creating test net (#0) specified by net file: net.prototxt')


@pytest.mark.parametrize('fmt, kind, ext', [('BINARYPROTO', 'binary proto file', ''),
                                            ('HDF5', 'HDF5 file', '.h5')])
def test_snapshot_lines(solving, caplog, fmt, kind, ext):
    """A snapshot logs two lines, the weights' then the state's, as Caffe's Snapshot."""
    with open('solver.prototxt', 'a') as f:
        f.write(f'snapshot_format: {fmt}\n')
    solver = caffe.SGDSolver('solver.prototxt')
    caplog.set_level(logging.INFO, logger='caffe_torch')
    solver.step(2)
    snapshots = [m for m in solver_messages(caplog) if m.startswith('Snapshotting')]
    assert snapshots == [f'Snapshotting to {kind} snap/tiny_iter_2.caffemodel{ext}',
                         f'Snapshotting solver state to {kind} snap/tiny_iter_2.solverstate'
                         f'{ext}']


def test_restore_line(solving, caplog):
    """Restoring a binary solverstate logs SGDSolver's "restoring history"."""
    solver = caffe.SGDSolver('solver.prototxt')
    solver.step(2)
    caplog.set_level(logging.INFO, logger='caffe_torch')
    caffe.SGDSolver('solver.prototxt').restore('snap/tiny_iter_2.solverstate')
    assert 'SGDSolver: restoring history' in solver_messages(caplog)


def test_step_lines(solving, caplog, monkeypatch):
    """Solver::Step's display line prints the lapse as Caffe's float (six digits), then the
    train outputs, then ApplyUpdate's lr line."""
    solver = caffe.SGDSolver('solver.prototxt')
    caplog.set_level(logging.INFO, logger='caffe_torch')
    clock = iter(range(100))
    monkeypatch.setattr('caffe_torch.solver.time.perf_counter', lambda: next(clock) * 1.2345678)
    solver.step(1)
    lines = solver_messages(caplog)
    first = next(m for m in lines if re.match(r'Iteration 0 \(', m))
    assert re.fullmatch(r'Iteration 0 \(0 iter/s, 1\.23457s/1 iters\), loss = \S+', first)
    assert lines[lines.index(first) + 1].startswith('    Train net output #0: loss = ')
    assert lines[lines.index(first) + 2] == 'Iteration 0, lr = 0.01'


# -- Caffe's tools/extra/parse_log.py, transcribed -------------------------------------------
# Its regexes and row rules (parse_log.py, extract_seconds.py at 9b89154), as facts.
REGEX_ITERATION = re.compile(r'Iteration (\d+)')
REGEX_TRAIN_OUTPUT = re.compile(r'Train net output #(\d+): (\S+) = ([\.\deE+-]+)')
REGEX_TEST_OUTPUT = re.compile(r'Test net output #(\d+): (\S+) = ([\.\deE+-]+)')
REGEX_LEARNING_RATE = re.compile(r'lr = ([-+]?[0-9]*\.?[0-9]+([eE]?[-+]?[0-9]+)?)')


def extract_datetime_from_line(line, year):
    line = line.strip().split()
    month, day = int(line[0][1:3]), int(line[0][3:])
    timestamp = line[1]
    pos = timestamp.rfind('.')
    hour, minute, second = [int(x) for x in timestamp[:pos].split(':')]
    return datetime.datetime(year, month, day, hour, minute, second,
                             int(timestamp[pos + 1:]))


def parse_line_for_net_output(regex, row, rows, line, iteration, seconds, learning_rate):
    match = regex.search(line)
    if match:
        if not row or row['NumIters'] != iteration:
            if row:
                rows.append(row)
            row = OrderedDict([('NumIters', iteration), ('Seconds', seconds),
                               ('LearningRate', learning_rate)])
        row[match.group(2)] = float(match.group(3))
    if row and len(rows) >= 1 and len(row) == len(rows[0]):
        rows.append(row)
        row = None
    return rows, row


def parse_log(path, year=2000):
    """parse_log.parse_log: (train rows, test rows)."""
    iteration, learning_rate = -1, float('nan')
    train_rows, test_rows, train_row, test_row = [], [], None, None
    with open(path) as f:
        start_time = next(extract_datetime_from_line(line, year) for line in f
                          if 'Solving' in line)
        for line in f:
            match = REGEX_ITERATION.search(line)
            if match:
                iteration = float(match.group(1))
            if iteration == -1:
                continue
            try:
                time = extract_datetime_from_line(line, year)
            except ValueError:
                continue
            seconds = (time - start_time).total_seconds()
            match = REGEX_LEARNING_RATE.search(line)
            if match:
                learning_rate = float(match.group(1))
            train_rows, train_row = parse_line_for_net_output(
                REGEX_TRAIN_OUTPUT, train_row, train_rows, line, iteration, seconds,
                learning_rate)
            test_rows, test_row = parse_line_for_net_output(
                REGEX_TEST_OUTPUT, test_row, test_rows, line, iteration, seconds,
                learning_rate)
    for rows in (train_rows, test_rows):  # fix_initial_nan_learning_rate
        if len(rows) > 1:
            rows[0]['LearningRate'] = rows[1]['LearningRate']
    return train_rows, test_rows


def test_parse_log_reads_an_engine_training_log(solving, tmp_path):
    """parse_log's CSV rows from an engine log: one train row per displayed iteration and
    one test row per test, with Caffe's columns (NumIters, Seconds, LearningRate, then the
    outputs); no line of the log (set-up messages included) trips it."""
    log_file = tmp_path / 'caffe.INFO'
    handler = logging.FileHandler(log_file)
    handler.setFormatter(logs.GlogFormatter())
    logger = logging.getLogger('caffe_torch')
    logger.addHandler(handler)
    try:
        caffe.SGDSolver('solver.prototxt').solve()
    finally:
        logger.removeHandler(handler)
        handler.close()
    text = log_file.read_text()
    assert 'Initializing net from parameters' in text and 'Network initialization done.' in text
    train, test = parse_log(log_file)
    assert [list(r) for r in train] == [['NumIters', 'Seconds', 'LearningRate', 'loss']] * 3
    assert [r['NumIters'] for r in train] == [0, 1, 2]
    assert all(r['LearningRate'] == 0.01 and r['Seconds'] >= 0 for r in train)
    assert all(math.isfinite(r['loss']) for r in train)
    assert [list(r) for r in test] == [
        ['NumIters', 'Seconds', 'LearningRate', 'accuracy', 'loss']] * 2
    assert [r['NumIters'] for r in test] == [0, 2]
    assert all(r['LearningRate'] == 0.01 for r in test)
