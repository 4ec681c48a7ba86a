"""pycaffe's process-wide switches: CPU or GPU mode, the device id, and the random seed.

These are the only global state, as in Caffe (`Caffe::mode()`, `Caffe::set_random_seed`).
Nets and blobs take the device current when they are made. Random numbers (fillers,
Dropout) come from one torch.Generator per device, reseeded by `set_random_seed`.
"""
import torch

_state = {'mode': 'cpu', 'device_id': 0, 'seed': None, 'generators': {},
          'solver_count': 1, 'solver_rank': 0, 'multiprocess': False}


def set_mode_cpu():
    """Run new nets on the CPU (the default)."""
    _state['mode'] = 'cpu'


def set_mode_gpu():
    """Run new nets on the GPU chosen by set_device (0 unless set).

    TF32 is switched off: Caffe computes in float32, and TF32 matmuls and convolutions
    would change results at the 1e-3 level. cuDNN may still pick its fastest algorithm.
    """
    if not torch.cuda.is_available():
        raise RuntimeError('set_mode_gpu: no CUDA device is visible to PyTorch; install '
                           'a CUDA build of torch on a GPU machine, or stay in CPU mode.')
    _state['mode'] = 'gpu'
    set_fast_math(_state.get('fast_math', False))


def set_device(device_id):
    """Choose the GPU used in GPU mode."""
    count = torch.cuda.device_count()
    if torch.cuda.is_available() and not 0 <= device_id < count:
        raise ValueError(f'set_device({device_id}): only {count} CUDA device(s), ids '
                         f'0..{count - 1}')
    _state['device_id'] = int(device_id)


def mode():
    return _state['mode']


def device():
    """The torch.device that new blobs are allocated on."""
    if _state['mode'] == 'gpu':
        return torch.device('cuda', _state['device_id'])
    return torch.device('cpu')


def set_random_seed(seed):
    """Seed the generators behind fillers and Dropout, for repeatable runs."""
    _state['seed'] = int(seed)
    _state['generators'].clear()


def generator(dev=None):
    """The random generator of `dev` (default: the mode's device)."""
    dev = torch.device(dev) if dev is not None else device()
    key = str(dev)
    gen = _state['generators'].get(key)
    if gen is None:
        gen = torch.Generator(device=dev)
        if _state['seed'] is None:
            gen.seed()
        else:
            gen.manual_seed(_state['seed'])
        _state['generators'][key] = gen
    return gen


def rng_state():
    """The state of every generator made so far, {device: uint8 state bytes}: what a
    solverstate leaves out and an exact resume needs (Dropout's draws)."""
    return {key: bytes(gen.get_state().numpy()) for key, gen in _state['generators'].items()}


def set_rng_state(states):
    """Put back what rng_state returned."""
    for key, data in states.items():
        generator(key).set_state(torch.frombuffer(bytearray(data), dtype=torch.uint8))


# Data-parallel training (pycaffe's names): how many solvers train together, which one this
# process is. Rank 0 is the root solver: it alone tests, logs and snapshots.
def set_solver_count(count):
    _state['solver_count'] = int(count)


def solver_count():
    return _state['solver_count']


def set_solver_rank(rank):
    _state['solver_rank'] = int(rank)


def solver_rank():
    return _state['solver_rank']


def set_multiprocess(multiprocess):
    """One solver per process (torch.distributed), as pycaffe's multi-GPU train.py runs."""
    _state['multiprocess'] = bool(multiprocess)


def root_solver():
    return _state['solver_rank'] == 0


def set_fast_math(enabled):
    """Opt in to faster, less exact arithmetic: a departure from Caffe's float32 results.

    On GPUs: TF32 matrix products and convolutions (10-bit mantissas inside, ~1e-3 relative
    differences) and cuDNN's autotuned algorithms; on CPUs: torch's 'medium' float32 matmul
    precision (bfloat16 internally where the processor has it). Off by default; runs made
    with it are labelled as such by the toolkit (solve/ writes it into run.json).
    """
    _state['fast_math'] = bool(enabled)
    torch.backends.cuda.matmul.allow_tf32 = bool(enabled)
    torch.backends.cudnn.allow_tf32 = bool(enabled)
    torch.backends.cudnn.benchmark = bool(enabled)
    torch.set_float32_matmul_precision('medium' if enabled else 'highest')


def fast_math():
    return _state.get('fast_math', False)
