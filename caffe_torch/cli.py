"""`caffe`, Caffe's command-line brew (tools/caffe.cpp), on the engine:

    python -m caffe_torch train --solver solver.prototxt [--weights a.caffemodel,b.caffemodel
                                | --snapshot x.solverstate] [--gpu 0] [--stage s --level n]
                                [--sigint_effect stop|snapshot|none]
                                [--sighup_effect snapshot|stop|none]
    python -m caffe_torch test --model val.prototxt --weights x.caffemodel [--iterations 50]
    python -m caffe_torch time --model net.prototxt [--iterations 50] [--phase TRAIN|TEST]
    python -m caffe_torch device_query --gpu 0

Flags are read as gflags reads them: -solver=x, --solver=x, -solver x and --solver x.
Log lines are glog's, on stderr, with Caffe's texts. A failed check (missing flag, file
that does not exist or does not parse, --weights with --snapshot) is one F line and exit
status 1, where Caffe aborts.

train: Ctrl-C (SIGINT) and SIGHUP are caught as Caffe's SignalHandler catches them; between
iterations the solver asks for the requested action: `stop` ends training (a snapshot is
written if snapshot_after_train), `snapshot` writes one and goes on, `none` ignores the
signal. Defaults: SIGINT stops, SIGHUP snapshots.
Several devices (--gpu 0,1 or all) train data-parallel (caffe_torch.parallel), one process
per device started by torchrun: `torchrun --nproc_per_node 2 -m caffe_torch train --gpu 0,1
...`; each process takes the device at its rank. Without --gpu, torchrun's processes
train data-parallel on CPUs (gloo). A signal's action is rank 0's, agreed by all ranks at
the same iteration; only rank 0 snapshots.
"""
import logging
import os
import signal
import sys
import time as _time

import numpy as np
import torch
from google.protobuf import text_format

from caffe_torch import formats, mode
from caffe_torch.errors import CaffeError
from caffe_torch.net import Net
from caffe_torch.proto import caffe_pb2
from caffe_torch.solver import SolverAction
from caffe_torch.tools.caffe_flags import UsageError, parse_flags, usage

log = logging.getLogger('caffe_torch.cli')


class Fatal(Exception):
    """A LOG(FATAL) / failed CHECK: logged as an F line, exit status 1."""


def check(condition, expression, message):
    """CHECK(condition) << message: a failed one is fatal."""
    if not condition:
        raise Fatal(f'Check failed: {expression} {message}')


# -- flags to settings -----------------------------------------------------------------------
def get_gpus(flags):
    """Parse --gpu: device ids separated by ',', or all."""
    value = flags['gpu']
    if value == 'all':
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if not count:
            raise Fatal('Cannot use GPU in CPU-only Caffe: check mode. (torch sees no CUDA '
                        'device; drop --gpu to run on the CPU.)')
        return list(range(count))
    if not value:
        return []
    try:
        return [int(s) for s in value.split(',')]
    except ValueError:
        raise Fatal(f'--gpu "{value}": give device ids separated by "," (e.g. 0,1) or '
                    f'"all"') from None


def get_phase(flags, default):
    if flags['phase'] == '':
        return default
    if flags['phase'] in ('TRAIN', 'TEST'):
        return getattr(caffe_pb2, flags['phase'])
    raise Fatal('phase must be "TRAIN" or "TEST"')


def get_stages(flags):
    """--stage split at ',' (an empty --stage gives no stage)."""
    return [s for s in flags['stage'].split(',') if s]


def get_requested_action(value):
    actions = {'stop': SolverAction.STOP, 'snapshot': SolverAction.SNAPSHOT,
               'none': SolverAction.NONE}
    if value not in actions:
        raise Fatal(f'Invalid signal effect "{value}" was specified')
    return actions[value]


def use_device(gpus, what):
    """Set CPU or GPU mode as the commands do; only the first device for test and time."""
    while len(gpus) > 1 and what != 'train':
        log.info('Not using GPU #%d for single-GPU function', gpus.pop())
    if not gpus:
        log.info('Use CPU.')
        mode.set_mode_cpu()
        return
    if not torch.cuda.is_available():
        raise Fatal(f'Cannot use GPU in CPU-only Caffe: check mode. (--gpu '
                    f'{",".join(map(str, gpus))}: torch sees no CUDA device; drop --gpu to '
                    f'run on the CPU.)')
    if what == 'train':
        log.info('Using GPUs %s', ', '.join(map(str, gpus)))
        for gpu in gpus:
            log.info('GPU %d: %s', gpu, torch.cuda.get_device_name(gpu))
    else:
        log.info('Use GPU with device ID %d', gpus[0])
        log.info('GPU device name: %s', torch.cuda.get_device_name(gpus[0]))
    mode.set_device(gpus[0])
    mode.set_mode_gpu()


class SignalHandler:
    """caffe::SignalHandler: SIGINT and SIGHUP set flags (from installation until close);
    the action function reports the effect of the signal received since it last asked."""

    def __init__(self, sigint_effect, sighup_effect):
        self.effects = {signal.SIGINT: sigint_effect}
        if hasattr(signal, 'SIGHUP'):
            self.effects[signal.SIGHUP] = sighup_effect
        self.received = {sig: False for sig in self.effects}
        self.previous = {sig: signal.signal(sig, self._handle) for sig in self.effects}

    def _handle(self, signum, frame):
        self.received[signum] = True

    def check_for_signals(self):
        """SIGHUP's effect first, then SIGINT's; each signal is reported once."""
        for sig in sorted(self.effects, key=lambda s: s != getattr(signal, 'SIGHUP', -1)):
            if self.received[sig]:
                self.received[sig] = False
                return self.effects[sig]
        return SolverAction.NONE

    def close(self):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


# -- commands --------------------------------------------------------------------------------
def train(flags):
    """Train or finetune a model."""
    from caffe_torch.sgd_solvers import get_solver
    check(flags['solver'], 'FLAGS_solver.size() > 0 (0 vs. 0)',
          'Need a solver definition to train.')
    check(not flags['snapshot'] or not flags['weights'],
          '!FLAGS_snapshot.size() || !FLAGS_weights.size()',
          'Give a snapshot to resume training or weights to finetune but not both.')
    param = formats.read_solver(flags['solver'])
    param.train_state.level = flags['level']
    param.train_state.stage.extend(get_stages(flags))
    if not flags['gpu'] and param.solver_mode == caffe_pb2.SolverParameter.GPU:
        if param.HasField('solver_mode') or torch.cuda.is_available():
            flags['gpu'] = str(param.device_id)
        else:
            log.warning('solver_mode defaults to GPU but torch sees no CUDA device; using '
                        'the CPU (set solver_mode: CPU to silence this)')
    gpus = get_gpus(flags)
    world = _data_parallel_world(gpus)
    if world > 1 and gpus:
        gpus = [gpus[int(os.environ.get('LOCAL_RANK', os.environ.get('RANK', '0')))]]
    use_device(gpus, 'train')
    if gpus:
        param.device_id = gpus[0]
    if world > 1:
        from caffe_torch import parallel
        parallel.init_from_env()  # before the solver: each rank seeds with seed + rank
    handler = SignalHandler(get_requested_action(flags['sigint_effect']),
                            get_requested_action(flags['sighup_effect']))
    try:
        log.info('Initializing solver from parameters: \n%s',
                 text_format.MessageToString(param))
        solver = get_solver(param)
        solver.source = flags['solver']
        solver.set_action_function(handler.check_for_signals)
        if flags['snapshot']:
            log.info('Resuming from %s', flags['snapshot'])
            solver.restore(flags['snapshot'])
        elif flags['weights']:
            for weights in flags['weights'].split(','):
                log.info('Finetuning from %s', weights)
                for net in [solver.net] + list(solver.test_nets):
                    net.copy_from(weights)
        if world > 1:
            _run_data_parallel(solver)
        else:
            log.info('Starting Optimization')
            solver.solve()
    finally:
        handler.close()
    log.info('Optimization Done.')
    return 0


def _data_parallel_world(gpus):
    """How many processes train together: torchrun's WORLD_SIZE (1 without torchrun). Each
    of several GPUs needs its process; CPU processes (no --gpu) train with gloo."""
    world = int(os.environ.get('WORLD_SIZE', '1'))
    if len(gpus) > 1 and world != len(gpus):
        raise Fatal(f'--gpu {",".join(map(str, gpus))}: training on {len(gpus)} devices runs '
                    f'one process per device (caffe_torch.parallel); launch it with torchrun '
                    f'--nproc_per_node {len(gpus)} -m caffe_torch train ... (this process '
                    f'has WORLD_SIZE {world}). On one device, give one id.')
    if world > 1 and len(gpus) == 1:
        raise Fatal(f'{world} processes (WORLD_SIZE) but one device (--gpu {gpus[0]}): give '
                    f'one device id per process, e.g. --gpu {",".join(map(str, range(world)))}')
    return world


def _run_data_parallel(solver):
    """Solve in step with the other ranks; a signal's action is rank 0's, agreed by all
    ranks before each update so that they stop or snapshot at the same iteration."""
    from caffe_torch import parallel
    rank = mode.solver_rank()
    parallel.DataParallel(solver)
    local = solver._action_function
    agreed = [SolverAction.NONE]

    def exchange():  # every rank, before each update: rank 0's request holds for all
        flag = torch.tensor([local() if rank == 0 else 0], dtype=torch.int64,
                            device=mode.device())
        torch.distributed.broadcast(flag, src=0)
        agreed[0] = int(flag.item())

    def action():  # all ranks stop; only the root solver snapshots, as in Caffe
        request, agreed[0] = agreed[0], SolverAction.NONE
        return request if rank == 0 or request != SolverAction.SNAPSHOT else \
            SolverAction.NONE
    solver.add_callback(lambda: None, exchange)
    solver.set_action_function(action)
    log.info('Starting Optimization')
    try:
        solver.solve()
    finally:
        parallel.shutdown()


def test(flags):
    """Score a model: the mean of each output over --iterations forwards."""
    check(flags['model'], 'FLAGS_model.size() > 0 (0 vs. 0)', 'Need a model definition to score.')
    check(flags['weights'], 'FLAGS_weights.size() > 0 (0 vs. 0)', 'Need model weights to score.')
    use_device(get_gpus(flags), 'test')
    net = Net(flags['model'], caffe_pb2.TEST, level=flags['level'], stages=get_stages(flags))
    net.copy_from(flags['weights'])
    iterations = flags['iterations']
    log.info('Running for %d iterations.', iterations)
    scores, ids, loss = [], [], np.float32(0)
    for i in range(iterations):
        loss += np.float32(net.forward_from_to(0, len(net.layers) - 1))
        index = 0
        for j, name in enumerate(net.outputs):
            for score in net.blobs[name].data.ravel().astype(np.float32):
                if i == 0:
                    scores.append(score)
                    ids.append(j)
                else:
                    scores[index] += score
                index += 1
                log.info('Batch %d, %s = %s', i, name, _g(score))
    loss /= np.float32(iterations) if iterations else np.float32(1)
    log.info('Loss: %s', _g(loss))
    for score, j in zip(scores, ids):
        name = net.outputs[j]
        weight = np.float32(net.blob_loss_weights[name])
        mean = np.float32(score / np.float32(iterations))
        extra = f' (* {_g(weight)} = {_g(weight * mean)} loss)' if weight else ''
        log.info('%s = %s%s', name, _g(mean), extra)
    return 0


def time(flags):
    """Benchmark the model: per-layer forward and backward times (ms), averaged. As in
    Caffe, each layer's Backward runs whether or not the net needs it (a layer without
    bottoms to reach still computes its parameter gradients)."""
    check(flags['model'], 'FLAGS_model.size() > 0 (0 vs. 0)', 'Need a model definition to time.')
    phase = get_phase(flags, caffe_pb2.TRAIN)
    use_device(get_gpus(flags), 'time')
    net = Net(flags['model'], phase, level=flags['level'], stages=get_stages(flags))
    last, iterations = len(net.layers) - 1, flags['iterations']
    log.info('Performing Forward')
    log.info('Initial loss: %s', _g(np.float32(net.forward_from_to(0, last))))
    log.info('Performing Backward')
    net.backward_from_to(last, 0)
    log.info('*** Benchmark begins ***')
    log.info('Testing for %d iterations.', iterations)
    forward_layer, backward_layer = [0.0] * len(net.layers), [0.0] * len(net.layers)
    forward_total = backward_total = 0.0
    total_start = _clock()
    for j in range(iterations):
        iter_start = _clock()
        for i in range(len(net.layers)):
            start = _clock()
            net.forward_from_to(i, i)
            forward_layer[i] += _clock() - start
        forward_total += _clock() - iter_start
        backward_start = _clock()
        for i in reversed(range(len(net.layers))):  # every layer, as Caffe's time does
            start = _clock()
            with torch.no_grad():
                net.layers[i].run_backward(net.top_vecs[i], net.bottom_need_backward[i],
                                           net.bottom_vecs[i])
            backward_layer[i] += _clock() - start
        backward_total += _clock() - backward_start
        log.info('Iteration: %d forward-backward time: %s ms.', j + 1,
                 _g((_clock() - iter_start) * 1e3))
    n = iterations or 1
    log.info('Average time per layer: ')
    for name, fwd, bwd in zip(net._layer_names, forward_layer, backward_layer):
        log.info('%10s\tforward: %s ms.', name, _g(fwd * 1e3 / n))
        log.info('%10s\tbackward: %s ms.', name, _g(bwd * 1e3 / n))
    total = (_clock() - total_start) * 1e3
    log.info('Average Forward pass: %s ms.', _g(forward_total * 1e3 / n))
    log.info('Average Backward pass: %s ms.', _g(backward_total * 1e3 / n))
    log.info('Average Forward-Backward: %s ms.', _g(total / n))
    log.info('Total Time: %s ms.', _g(total))
    log.info('*** Benchmark ends ***')
    return 0


def device_query(flags):
    """Show what torch.cuda knows of each device in --gpu (Caffe::DeviceQuery's lines)."""
    log.info('Querying GPUs %s', flags['gpu'])
    for gpu in get_gpus(flags):
        if not torch.cuda.is_available():
            raise Fatal('Cannot use GPU in CPU-only Caffe: check mode. (torch sees no CUDA '
                        'device on this machine.)')
        mode.set_device(gpu)
        props = torch.cuda.get_device_properties(gpu)
        rows = [('Device id', gpu), ('Major revision number', props.major),
                ('Minor revision number', props.minor), ('Name', props.name),
                ('Total global memory', props.total_memory)]
        for label, attr in [('Total shared memory per block', 'shared_memory_per_block'),
                            ('Total registers per block', 'regs_per_multiprocessor'),
                            ('Warp size', 'warp_size'),
                            ('Maximum threads per block', 'max_threads_per_block'),
                            ('Clock rate', 'clock_rate'),
                            ('Number of multiprocessors', 'multi_processor_count'),
                            ('L2 cache size', 'L2_cache_size')]:
            if hasattr(props, attr):
                rows.append((label, getattr(props, attr)))
        for label, value in rows:
            log.info('%-31s%s', label + ':', value)
    return 0


COMMANDS = {'device_query': device_query, 'test': test, 'time': time, 'train': train}


def _clock():
    if mode.mode() == 'gpu':
        torch.cuda.synchronize()
    return _time.perf_counter()


def _g(value):
    """A float as C++'s ostream prints it (6 significant digits, %g)."""
    return f'{float(value):g}'


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        flags, positional = parse_flags(argv)
    except UsageError as e:
        print(f'ERROR: {e}', file=sys.stderr)
        return 1
    if 'minloglevel' in flags:  # as GLOG_minloglevel: 0 INFO, 1 WARNING, 2 ERROR, 3 FATAL
        levels = [logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL]
        logging.getLogger('caffe_torch').setLevel(levels[min(max(flags['minloglevel'], 0),
                                                             3)])
    if len(positional) != 1:
        return usage(0 if not positional else 1)
    command = COMMANDS.get(positional[0])
    try:
        if command is None:
            log.error('Available caffe actions:')
            for name in sorted(COMMANDS):
                log.error('\t%s', name)
            raise Fatal(f'Unknown action: {positional[0]}')
        return command(flags)
    except Fatal as e:
        log.critical('%s', e)
    except (CaffeError, OSError, RuntimeError, ValueError, KeyError, FloatingPointError) as e:
        log.critical('%s', e)
    except KeyboardInterrupt:
        log.critical('Interrupted.')
    return 1


if __name__ == '__main__':
    sys.exit(main())
