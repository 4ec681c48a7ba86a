"""Every solver type under every learning rate policy, engine against real Caffe, and
snapshots restored across the two, binary and HDF5.

Each case is a small net (convolution, ReLU, inner product, softmax loss; biases at lr_mult
2 and decay_mult 0) and a solver drawn from the seed: its type, lr policy and their fields,
weight decay (L1 or L2), gradient clipping, iter_size. Real Caffe steps it BEFORE times, one
at a time, snapshots, and steps AFTER more. The engine must follow the same trajectory (weight
changes to relative 1e-4, losses to 1e-5); restored from Caffe's snapshot it must continue as
Caffe did; and Caffe, restored from the engine's snapshot, must continue as it did itself.
"""
import contextlib
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from golden_check import rel_error
from real_caffe.cases import Enum, layer, net, text
from real_caffe.layer_cases import case_seed

SEED = int(os.environ.get('FCN_DIFF_SEED', '0'))
TYPES = ('SGD', 'Nesterov', 'AdaGrad', 'RMSProp', 'AdaDelta', 'Adam')
POLICIES = ('fixed', 'step', 'exp', 'inv', 'multistep', 'poly', 'sigmoid')
BEFORE, AFTER = 3, 3
STEP_TOL, LOSS_TOL = 1e-4, 1e-5
SHAPES = {'conv/0': (4, 3, 3, 3), 'conv/1': (4,), 'ip/0': (3, 36), 'ip/1': (3,)}

NET = net({'data': (2, 3, 5, 5), 'label': (2,)},
          layer('conv', 'Convolution', ['data'], param=[{'lr_mult': 1}, {'lr_mult': 2,
                'decay_mult': 0}], convolution_param={'num_output': 4, 'kernel_size': 3}),
          layer('relu', 'ReLU', ['conv'], ['conv']),
          layer('ip', 'InnerProduct', ['conv'], param=[{'lr_mult': 1}, {'lr_mult': 2,
                'decay_mult': 0}], inner_product_param={'num_output': 3}),
          layer('loss', 'SoftmaxWithLoss', ['ip', 'label']), force_backward=False)


def _policy(rng, policy):
    fields = {'lr_policy': policy}
    if policy in ('step', 'exp', 'inv', 'multistep', 'sigmoid'):
        fields['gamma'] = float(rng.choice([0.5, 0.9, 0.1]) if policy != 'sigmoid'
                                else rng.choice([-0.5, 0.3]))
    if policy in ('step', 'sigmoid'):
        fields['stepsize'] = int(rng.integers(1, 4))
    if policy in ('inv', 'poly'):
        fields['power'] = float(rng.choice([0.75, 1.5, 2.0]))
    if policy == 'multistep':
        fields['stepvalue'] = sorted({int(v) for v in rng.integers(1, BEFORE + AFTER, 2)})
    return fields


def _type_fields(rng, solver_type):
    fields = {'type': solver_type, 'base_lr': float(rng.choice([0.01, 0.05, 0.1]))}
    if solver_type in ('SGD', 'Nesterov', 'AdaDelta', 'Adam'):
        fields['momentum'] = float(rng.choice([0.9, 0.95, 0.99]))
    if solver_type in ('AdaGrad', 'RMSProp', 'AdaDelta', 'Adam'):
        fields['delta'] = float(rng.choice([1e-8, 1e-6, 1e-3]))
    if solver_type == 'RMSProp':
        fields['rms_decay'] = float(rng.choice([0.9, 0.98]))
    if solver_type == 'Adam':
        fields['momentum2'] = float(rng.choice([0.999, 0.99]))
    if solver_type == 'AdaDelta':
        fields['base_lr'] = 1.0
    return fields


def solver_text(rng, solver_type, policy, index, prefix):
    fields = {'net': 'net.prototxt', 'max_iter': 20, 'display': 0}
    fields.update(_type_fields(rng, solver_type))
    fields.update(_policy(rng, policy))
    fields['weight_decay'] = float(rng.choice([0.0, 5e-4, 0.01]))
    fields['regularization_type'] = 'L1' if index % 3 == 1 else 'L2'
    if index % 4 == 2:
        fields['clip_gradients'] = float(rng.choice([0.5, 2.0]))
    if index % 5 == 3:
        fields['iter_size'] = 2
    fields['snapshot_prefix'] = f'{prefix}/snap'
    fields['snapshot_format'] = Enum('HDF5' if index % 2 else 'BINARYPROTO')
    return text(fields) + '\n'


def draw():
    """[(name, folder writer)] for every type x policy."""
    drawn = {}
    for t, solver_type in enumerate(TYPES):
        for p, policy in enumerate(POLICIES):
            name = f'{solver_type}_{policy}'
            drawn[name] = (solver_type, policy, t * len(POLICIES) + p)
    return drawn


CASES = draw()


def write_case(root, name):
    solver_type, policy, index = CASES[name]
    folder = root / name
    folder.mkdir()
    rng = np.random.default_rng(case_seed(SEED, name))
    state = rng.bit_generator.state
    (folder / 'solver.prototxt').write_text(solver_text(rng, solver_type, policy, index, 'caffe'))
    rng.bit_generator.state = state  # the same draw, another snapshot folder
    (folder / 'solver_engine.prototxt').write_text(
        solver_text(rng, solver_type, policy, index, 'engine'))
    (folder / 'net.prototxt').write_text(NET)
    for sub in ('caffe', 'engine'):
        (folder / sub).mkdir()
    inputs = {f'param/{k}': rng.uniform(-0.5, 0.5, s).astype(np.float32)
              for k, s in SHAPES.items()}
    inputs['data/data'] = rng.standard_normal((2, 3, 5, 5)).astype(np.float32)
    inputs['data/label'] = rng.integers(0, 3, 2).astype(np.float32)
    np.savez(folder / 'inputs.npz', **inputs)
    h5 = '.h5' if index % 2 else ''
    (folder / 'meta.json').write_text(json.dumps({
        'before': BEFORE, 'after': AFTER,
        'engine_state': f'engine/snap_iter_{BEFORE}.solverstate{h5}'}))
    return folder


@pytest.fixture(scope='module')
def solved(real_caffe, tmp_path_factory):
    """Every case folder with the engine's snapshot after BEFORE steps, then stepped by real
    Caffe in one process (caffe.npz), which also continues from the engine's snapshot
    (resumed.npz)."""
    from caffe_torch import CaffeError
    root = tmp_path_factory.mktemp('solvers')
    for name in CASES:
        folder = write_case(root, name)
        with contextlib.chdir(folder):
            try:
                solver = engine_solver('solver_engine.prototxt')
                solver.step(BEFORE)
                solver.snapshot()
            except CaffeError as e:  # the test says whether Caffe refused it too
                (folder / 'engine_error.txt').write_text(str(e))
    real_caffe.record(root, 'solvers')
    return root


def engine_solver(solver_file):
    import caffe_torch as caffe
    solver = caffe.get_solver(solver_file)
    inputs = np.load('inputs.npz')
    for key in inputs.files:
        kind, name = key.split('/', 1)
        if kind == 'param':
            layer_name, i = name.rsplit('/', 1)
            solver.net.params[layer_name][int(i)].data[...] = inputs[key]
        else:
            solver.net.blobs[name].data[...] = inputs[key]
    return solver


def follows(solver, caffe_record, first, count, where):
    """Step the engine `count` times; each step's params and loss equal Caffe's."""
    inputs = np.load('inputs.npz')
    for k in range(first, first + count):
        solver.step(1)
        loss = float(solver.net.blobs['loss'].data)
        assert abs(loss - caffe_record[f'loss/{k}']) <= LOSS_TOL * max(1, abs(loss)), \
            f'{where}: loss at step {k}: {loss} vs Caffe {caffe_record[f"loss/{k}"]}'
        for key in SHAPES:
            layer_name, i = key.split('/')
            ours = solver.net.params[layer_name][int(i)].data
            theirs = caffe_record[f'step{k}/{key}']
            start = inputs[f'param/{key}']
            assert rel_error(ours - start, theirs - start) < STEP_TOL, \
                f'{where}: {key} after step {k}'


def _describe(folder):
    return f'seed {SEED}; solver:\n{(folder / "solver.prototxt").read_text()}'


@pytest.mark.parametrize('name', sorted(CASES))
def test_solver_matches_real_caffe(name, solved):
    folder = solved / name
    if (folder / 'caffe_abort.txt').exists():  # a failed CHECK: the engine must refuse too
        from caffe_torch import CaffeError
        with contextlib.chdir(folder), pytest.raises(CaffeError):
            engine_solver('solver_engine.prototxt').step(BEFORE + AFTER)
        return
    h5 = '.h5' if 'HDF5' in (folder / 'solver.prototxt').read_text() else ''
    with contextlib.chdir(folder):
        caffe_record = np.load('caffe.npz')
        try:
            solver = engine_solver('solver_engine.prototxt')
            follows(solver, caffe_record, 1, BEFORE, 'engine')
            solver.snapshot()
            follows(solver, caffe_record, BEFORE + 1, AFTER, 'engine, continued')
            restored = engine_solver('solver_engine.prototxt')
            restored.restore(f'caffe/snap_iter_{BEFORE}.solverstate{h5}')
            assert restored.iter == BEFORE
            follows(restored, caffe_record, BEFORE + 1, AFTER, "engine from Caffe's snapshot")
        except AssertionError as e:
            raise AssertionError(f'{e}\n{_describe(folder)}') from e
    resumed, inputs = np.load(folder / 'resumed.npz'), np.load(folder / 'inputs.npz')
    assert int(resumed['iter']) == BEFORE
    for k in range(BEFORE + 1, BEFORE + AFTER + 1):
        for key in SHAPES:
            start = inputs[f'param/{key}']
            assert rel_error(resumed[f'step{k}/{key}'] - start,
                             caffe_record[f'step{k}/{key}'] - start) < \
                STEP_TOL, f"Caffe from the engine's snapshot: {key} after step {k}\n" \
                + _describe(folder)


LR_NET = ('name: "lr"\n'
          'layer { name: "d" type: "DummyData" top: "d" dummy_data_param { shape { dim: 1 '
          'dim: 1 } data_filler { type: "constant" value: 1 } } }\n'
          'layer { name: "ip" type: "InnerProduct" bottom: "d" top: "ip" param { lr_mult: '
          '1.3 } inner_product_param { num_output: 1 bias_term: false weight_filler { type: '
          '"constant" value: 0 } } }\n'
          'layer { name: "loss" type: "Reduction" bottom: "ip" top: "loss" loss_weight: 1 }\n')
LR_POLICIES = {'inv': 'gamma: 0.0001 power: 0.75', 'poly': 'power: 0.9',
               'sigmoid': 'gamma: 0.01 stepsize: 50', 'step': 'gamma: 0.1 stepsize: 7',
               'exp': 'gamma: 0.9993', 'multistep': 'gamma: 0.3 stepvalue: 20 stepvalue: 90'}


@pytest.mark.parametrize('policy', sorted(LR_POLICIES))
def test_learning_rates_are_caffes_to_the_bit(real_caffe, tmp_path, policy):
    """200 iterations of each policy, with lr_mult 1.3: the float32 rate each update used
    is Caffe's exactly (its GetLearningRate computes inv, poly and sigmoid in float, with
    the C library's powf/expf, and local_rate = rate * lr_mult as a float product; the
    engine once computed them in double, one float step off in about a quarter of them)."""
    (tmp_path / 'net.prototxt').write_text(LR_NET)
    (tmp_path / 'solver.prototxt').write_text(
        f'net: "net.prototxt"\nbase_lr: 0.01\nlr_policy: "{policy}"\n{LR_POLICIES[policy]}\n'
        f'momentum: 0\nweight_decay: 0\nmax_iter: 1000\ndisplay: 0\n')
    probe = pathlib.Path(__file__).with_name('lr_probe.py')
    caffe_side = real_caffe.run([probe, 'solver.prototxt', 200], cwd=tmp_path)
    assert caffe_side.returncode == 0, caffe_side.stderr[-2000:]
    engine = subprocess.run([sys.executable, '-m', 'caffe_torch.run', str(probe),
                             'solver.prototxt', '200'], cwd=tmp_path, capture_output=True,
                            text=True, timeout=600,
                            env={**os.environ, 'GLOG_minloglevel': '2',
                                 'PYTHONPATH': str(pathlib.Path(__file__).parents[2])})
    assert engine.returncode == 0, engine.stderr[-2000:]
    expected, got = json.loads(caffe_side.stdout), json.loads(engine.stdout)
    differing = [(k, e, g) for k, (e, g) in enumerate(zip(expected, got)) if e != g]
    assert not differing, f'{len(differing)} of 200 rates differ, first: {differing[:3]}'
