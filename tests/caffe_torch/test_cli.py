"""`caffe` (caffe_torch.cli) against tools/caffe.cpp: train with snapshots, --snapshot resume
and --weights finetuning, SIGINT/SIGHUP handling as SignalHandler + Solver::Step, test's
and time's output lines, gflags spellings, and Caffe-like failures with exit status 1."""
import os
import re
import signal
import subprocess
import sys
import time
import types

import numpy as np
import pytest
import torch

import caffe_torch as caffe
from caffe_torch import cli
from caffe_torch.solver import SolverAction
from caffe_torch.tools.caffe_flags import UsageError, parse_flags

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STATE = {'forwards': 0, 'signal_at': None, 'signal': signal.SIGINT}

# Constant data: an uninterrupted run and a resumed one see the same batches.
NET = """name: 'tiny'
layer { type: 'DummyData' name: 'data' top: 'data' top: 'label'
  dummy_data_param { num: 4 channels: 2 height: 3 width: 3 num: 4 channels: 1 height: 1
    width: 1 data_filler { type: 'constant' value: 0.5 }
    data_filler { type: 'constant' value: 1 } } }
layer { type: 'InnerProduct' name: 'ip' bottom: 'data' top: 'ip'
  inner_product_param { num_output: 3 weight_filler { type: 'gaussian' std: 0.1 } } }
layer { type: 'SoftmaxWithLoss' name: 'loss' bottom: 'ip' bottom: 'label' top: 'loss' }
layer { type: 'Python' name: 'tick' top: 'tick'
  python_param { module: 'cli_test_layers' layer: 'TickLayer' } }
"""
SOLVER = """net: 'net.prototxt' base_lr: 0.1 lr_policy: 'fixed' momentum: 0.9
max_iter: {max_iter} display: 1 snapshot: {snapshot} snapshot_prefix: 'snap/tiny'
random_seed: 3 solver_mode: CPU
"""


class TickLayer(caffe.Layer):
    """Outputs its forward count; sends STATE['signal'] to this process on forward
    number STATE['signal_at'] (mid-iteration, as a Ctrl-C lands)."""

    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        top[0].reshape(1)

    def forward(self, bottom, top):
        STATE['forwards'] += 1
        top[0].data[...] = STATE['forwards']
        if STATE['forwards'] == STATE['signal_at']:
            os.kill(os.getpid(), STATE['signal'])

    def backward(self, top, propagate_down, bottom):
        pass


@pytest.fixture(autouse=True)
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    module = types.ModuleType('cli_test_layers')
    module.TickLayer = TickLayer
    monkeypatch.setitem(sys.modules, 'cli_test_layers', module)
    STATE.update(forwards=0, signal_at=None, signal=signal.SIGINT)
    (tmp_path / 'net.prototxt').write_text(NET)
    (tmp_path / 'snap').mkdir()
    return tmp_path


def write_solver(max_iter=6, snapshot=3, name='solver.prototxt'):
    with open(name, 'w') as f:
        f.write(SOLVER.format(max_iter=max_iter, snapshot=snapshot))
    return name


def run(caplog, *argv):
    """cli.main in this process; returns (exit status, the log messages)."""
    caplog.clear()
    with caplog.at_level('INFO', logger='caffe_torch'):
        status = cli.main(list(argv))
    return status, [r.getMessage() for r in caplog.records]


def weights(path):
    net = caffe.Net('net.prototxt', caffe.TEST, weights=path)
    return {k: [b.data.copy() for b in v] for k, v in net.params.items()}


def test_train_snapshots_then_resume_matches_uninterrupted(caplog):
    status, log = run(caplog, 'train', '--solver=' + write_solver())
    assert status == 0
    assert log.count('Optimization Done.') == 2  # Solver::Solve's and train()'s
    assert 'Use CPU.' in log and 'Starting Optimization' in log
    for it in (3, 6):
        assert os.path.exists(f'snap/tiny_iter_{it}.caffemodel')
        assert os.path.exists(f'snap/tiny_iter_{it}.solverstate')
    full = weights('snap/tiny_iter_6.caffemodel')
    os.rename('snap/tiny_iter_6.caffemodel', 'full.caffemodel')
    status, log = run(caplog, 'train', '-solver', 'solver.prototxt', '-snapshot',
                      'snap/tiny_iter_3.solverstate')
    assert status == 0 and 'Resuming from snap/tiny_iter_3.solverstate' in log
    trained = [m for m in log if re.match(r'Iteration \d+ \(', m)]
    assert trained[0].startswith('Iteration 3 (')  # continues at the state's iteration
    resumed = weights('snap/tiny_iter_6.caffemodel')
    for name in full:
        for a, b in zip(full[name], resumed[name]):
            np.testing.assert_array_equal(a, b)


def test_train_weights_finetunes_from_each_model(caplog):
    write_solver(max_iter=2, snapshot=0)
    assert run(caplog, 'train', '--solver', 'solver.prototxt')[0] == 0
    os.rename('snap/tiny_iter_2.caffemodel', 'start.caffemodel')
    with open('frozen.prototxt', 'w') as f:
        f.write(SOLVER.format(max_iter=1, snapshot=0).replace('base_lr: 0.1', 'base_lr: 0'))
    status, log = run(caplog, 'train', '--solver=frozen.prototxt',
                      '--weights=start.caffemodel,start.caffemodel')
    assert status == 0 and log.count('Finetuning from start.caffemodel') == 2
    before, after = weights('start.caffemodel'), weights('snap/tiny_iter_1.caffemodel')
    np.testing.assert_array_equal(before['ip'][0], after['ip'][0])


@pytest.mark.parametrize('effect, stopped_at, snapshots', [
    ('stop', 3, [3]),           # stop after the update of the iteration it landed in
    ('snapshot', None, [3, 6]),  # a snapshot at 3, training goes on to max_iter
    ('none', None, [6]),         # ignored
])
def test_sigint_effect(caplog, effect, stopped_at, snapshots):
    write_solver(max_iter=6, snapshot=0)
    STATE['signal_at'] = 3  # third forward: iteration index 2
    previous = signal.getsignal(signal.SIGINT)
    status, log = run(caplog, 'train', '--solver', 'solver.prototxt',
                      '--sigint_effect', effect)
    assert status == 0 and log[-1] == 'Optimization Done.'
    assert signal.getsignal(signal.SIGINT) is previous  # the handler is removed after train
    assert ('Optimization stopped early.' in log) == (stopped_at is not None)
    written = sorted(int(re.search(r'_iter_(\d+)\.', n).group(1))
                     for n in os.listdir('snap') if n.endswith('.solverstate'))
    assert written == snapshots
    last = max(int(m.split()[1]) for m in log if re.match(r'Iteration \d+ \(', m))
    assert last == (stopped_at - 1 if stopped_at else 5)


@pytest.mark.skipif(not hasattr(signal, 'SIGHUP'), reason='no SIGHUP here')
def test_sighup_snapshots_by_default_and_can_stop(caplog):
    write_solver(max_iter=5, snapshot=0)
    STATE.update(signal_at=2, signal=signal.SIGHUP)
    assert run(caplog, 'train', '--solver', 'solver.prototxt')[0] == 0
    assert sorted(os.listdir('snap')) == ['tiny_iter_2.caffemodel', 'tiny_iter_2.solverstate',
                                          'tiny_iter_5.caffemodel', 'tiny_iter_5.solverstate']
    STATE.update(forwards=0)
    status, log = run(caplog, 'train', '--solver', 'solver.prototxt', '-sighup_effect=stop')
    assert status == 0 and 'Optimization stopped early.' in log


def test_signal_handler_reports_each_signal_once_sighup_first():
    handler = cli.SignalHandler(SolverAction.STOP, SolverAction.SNAPSHOT)
    try:
        handler._handle(signal.SIGINT, None)
        if hasattr(signal, 'SIGHUP'):
            handler._handle(signal.SIGHUP, None)
            assert handler.check_for_signals() == SolverAction.SNAPSHOT
        assert handler.check_for_signals() == SolverAction.STOP
        assert handler.check_for_signals() == SolverAction.NONE
    finally:
        handler.close()


def test_test_prints_batches_loss_and_means(caplog):
    net = caffe.Net('net.prototxt', caffe.TEST)
    net.save('w.caffemodel')
    net.forward()
    loss = float(net.blobs['loss'].data)  # constant data: every batch has this loss
    STATE['forwards'] = 0
    status, log = run(caplog, 'test', '--model', 'net.prototxt', '--weights', 'w.caffemodel',
                      '--iterations', '4')
    assert status == 0 and 'Running for 4 iterations.' in log
    batches = [m for m in log if m.startswith('Batch ')]
    assert batches == [line for i in range(4) for line in
                       (f'Batch {i}, loss = {loss:g}', f'Batch {i}, tick = {i + 1}')]
    assert f'Loss: {loss:g}' in log
    assert f'loss = {loss:g} (* 1 = {loss:g} loss)' in log
    assert 'tick = 2.5' in log  # the mean of 1, 2, 3, 4


def test_time_prints_every_layer_and_the_totals(caplog):
    status, log = run(caplog, 'time', '-model=net.prototxt', '-iterations=3')
    assert status == 0
    for name in ('data', 'ip', 'loss', 'tick'):
        assert re.compile(rf'^ *{name}\tforward: [0-9.e+-]+ ms\.$').match(
            next(m for m in log if m.strip().startswith(name + '\tforward')))
        assert any(re.match(rf'^ *{name}\tbackward: [0-9.e+-]+ ms\.$', m) for m in log)
    assert all(len(m.split('\t')[0]) >= 10 for m in log if '\tforward: ' in m)  # setw(10)
    assert len([m for m in log if m.startswith('Iteration: ')]) == 3
    for line in ('Average Forward pass: ', 'Average Backward pass: ',
                 'Average Forward-Backward: ', 'Total Time: '):
        assert any(m.startswith(line) and m.endswith(' ms.') for m in log)
    assert log[-1] == '*** Benchmark ends ***'
    assert STATE['forwards'] == 1 + 3  # the initial pass, then one per iteration
    assert run(caplog, 'time', '--model', 'net.prototxt', '--phase', 'VAL')[0] == 1


@pytest.mark.parametrize('argv', [
    ['--solver=s', '--iterations=5'], ['-solver=s', '-iterations=5'],
    ['-solver', 's', '-iterations', '5'], ['--solver', 's', '--iterations', '5']])
def test_gflags_spellings(argv):
    flags, positional = parse_flags(['train'] + argv)
    assert positional == ['train'] and flags['solver'] == 's' and flags['iterations'] == 5
    assert flags['sigint_effect'] == 'stop' and flags['sighup_effect'] == 'snapshot'


def test_catch_bad_flags():
    with pytest.raises(UsageError, match="unknown command line flag 'bogus'"):
        parse_flags(['--bogus=1'])
    with pytest.raises(UsageError, match="illegal value 'x' specified for int32 flag"):
        parse_flags(['--iterations', 'x'])


@pytest.mark.parametrize('argv, message', [
    (['train'], 'Check failed: FLAGS_solver.size() > 0 (0 vs. 0) Need a solver definition'),
    (['train', '--solver', 's', '--weights', 'w', '--snapshot', 'x'],
     'Give a snapshot to resume training or weights to finetune but not both.'),
    (['train', '--solver', 'missing.prototxt'], 'missing.prototxt: no such file'),
    (['train', '--solver', 'solver.prototxt', '--sigint_effect', 'later'],
     'Invalid signal effect "later" was specified'),
    (['test', '--model', 'net.prototxt'], 'Need model weights to score.'),
    (['test', '--model', 'net.prototxt', '--weights', 'nope.caffemodel'],
     'nope.caffemodel: no such file'),
    (['time'], 'Need a model definition to time.'),
    (['brew'], 'Unknown action: brew'),
])
def test_catch_errors_exit_1(caplog, argv, message):
    write_solver()
    status, log = run(caplog, *argv)
    assert status == 1
    fatal = [r for r in caplog.records if r.levelname == 'CRITICAL']
    assert len(fatal) == 1 and message in fatal[0].getMessage()


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the CPU-only answer')
def test_catch_gpu_without_cuda(caplog):
    write_solver()
    for argv in (['train', '--solver', 'solver.prototxt', '--gpu', '0'],
                 ['device_query', '--gpu', '0'],
                 ['test', '--model', 'net.prototxt', '--weights', 'w', '--gpu', 'all']):
        status, log = run(caplog, *argv)
        assert status == 1 and any('Cannot use GPU in CPU-only Caffe' in m for m in log)


def test_catch_several_gpus_without_torchrun(caplog, monkeypatch):
    monkeypatch.setattr(cli, 'use_device', lambda gpus, what: None)
    write_solver()
    status, log = run(caplog, 'train', '--solver', 'solver.prototxt', '--gpu', '0,1')
    assert status == 1 and any('torchrun --nproc_per_node 2' in m for m in log)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
def test_device_query_and_train_on_gpu(caplog):
    status, log = run(caplog, 'device_query', '--gpu', '0')
    assert status == 0 and any(m.startswith('Name:') for m in log)
    try:
        status, log = run(caplog, 'train', '--solver', write_solver(), '--gpu', '0')
        assert status == 0 and 'Using GPUs 0' in log
    finally:
        caffe.set_mode_cpu()


def test_python_m_caffe_torch_glog_lines_and_ctrl_c(workdir):
    """The real thing: `python -m caffe_torch train`, stopped by an external SIGINT."""
    write_solver(max_iter=100000, snapshot=0)
    (workdir / 'cli_test_layers.py').write_text(
        'import caffe_torch as caffe\n'
        'class TickLayer(caffe.Layer):\n'
        '    def setup(self, bottom, top): pass\n'
        '    def reshape(self, bottom, top): top[0].reshape(1)\n'
        '    def forward(self, bottom, top): top[0].data[...] = 1\n'
        '    def backward(self, top, propagate_down, bottom): pass\n')
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, str(workdir)]))
    proc = subprocess.Popen([sys.executable, '-m', 'caffe_torch', 'train',
                             '-solver=solver.prototxt'], env=env, stderr=subprocess.PIPE,
                            text=True)
    lines = []
    deadline = time.time() + 60
    for line in proc.stderr:
        lines.append(line)
        if 'Train net output' in line or time.time() > deadline:
            break
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=60)
    lines += rest.splitlines(keepends=True)
    assert proc.returncode == 0, ''.join(lines[-20:])
    glog = re.compile(r'^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d{6} \d+ [\w.]+\] ')
    assert all(glog.match(line) for line in lines if not line.startswith((' ', '\n'))
               and line[:1] in 'IWEF' and line[1:2].isdigit())
    text = ''.join(lines)
    assert 'cli.py] Starting Optimization' in text and 'Optimization stopped early.' in text
    assert text.rstrip().endswith('Optimization Done.')
    assert any(n.endswith('.solverstate') for n in os.listdir(workdir / 'snap'))


def test_data_parallel_ranks_stop_together_root_snapshots(workdir):
    """Two gloo ranks (torchrun's environment, no --gpu): a SIGINT to rank 0 only stops
    both at the same iteration; only rank 0 writes the snapshot."""
    import socket
    write_solver(max_iter=50, snapshot=0)
    (workdir / 'cli_test_layers.py').write_text(
        'import os, signal\nimport caffe_torch as caffe\nN = [0]\n'
        'class TickLayer(caffe.Layer):\n'
        '    def setup(self, bottom, top): pass\n'
        '    def reshape(self, bottom, top): top[0].reshape(1)\n'
        '    def forward(self, bottom, top):\n'
        '        N[0] += 1\n'
        '        top[0].data[...] = N[0]\n'
        '        if N[0] == 4 and os.environ["RANK"] == "0":\n'
        '            os.kill(os.getpid(), signal.SIGINT)\n'
        '    def backward(self, top, propagate_down, bottom): pass\n')
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, str(workdir)]),
               MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port), WORLD_SIZE='2',
               OMP_NUM_THREADS='1')
    procs = [subprocess.Popen([sys.executable, '-m', 'caffe_torch', 'train',
                               '--solver=solver.prototxt'], env=dict(env, RANK=str(r)),
                              stderr=subprocess.PIPE, text=True) for r in range(2)]
    logs = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    for text in logs:
        assert 'Optimization stopped early.' in text
    assert 'Snapshotting to binary proto file snap/tiny_iter_4.caffemodel' in logs[0]
    assert 'Snapshotting' not in logs[1]
    assert sorted(os.listdir('snap')) == ['tiny_iter_4.caffemodel', 'tiny_iter_4.solverstate']


def test_solver_action_function_stops_a_test_and_training(caplog):
    """Solver::Test asks before each test forward: STOP there ends the test ("Test
    interrupted.") and training; solve() then snapshots (snapshot_after_train)."""
    with open('s.prototxt', 'w') as f:
        f.write(SOLVER.format(max_iter=10, snapshot=0) + 'test_iter: 2 test_interval: 2\n')
    solver = caffe.get_solver('s.prototxt')
    calls = []

    def action():  # calls 1-2: test at iter 0; 3, 4: after updates; 5: test at iter 2
        calls.append(len(calls) + 1)
        return SolverAction.STOP if len(calls) == 5 else SolverAction.NONE
    solver.set_action_function(action)
    caplog.clear()
    with caplog.at_level('INFO', logger='caffe_torch'):
        solver.solve()
    log = [r.getMessage() for r in caplog.records]
    # 6 calls: Solver::Test asks again after a request until it gets NONE
    assert solver.iter == 2 and solver.requested_early_exit and len(calls) == 6
    assert 'Test interrupted.' in log and log[-1] == 'Optimization stopped early.'
    assert os.path.exists('snap/tiny_iter_2.solverstate')
    assert solver.get_requested_action() == SolverAction.NONE
