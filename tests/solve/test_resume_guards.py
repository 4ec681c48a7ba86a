"""What a resume refuses: a resume state (.fcnstate) that does not fit the net, a solverstate
whose stored iteration is not the one its name says, a --resume file that is weights or
another stage's state; each named with the file and the field, nothing valid advised for
deletion. And a kill while curves.png is drawn leaves a rerun that draws it again."""
import base64
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys

import pytest

from solve import cli

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCHEDULE = ['--iterations', '4', '--step', '2', '--no-progress']


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """The demo sets, the demo classifier and demo-fcn32s trained 2 iterations on them, once
    for the module: (root, the environment of children, the classifier caffemodel)."""
    from data_layers.paths import DEFAULTS, env_var
    from solve import demo_data
    root = tmp_path_factory.mktemp('guards')
    env = {k: v for k, v in os.environ.items()
           if k not in {env_var(name) for name in DEFAULTS}}
    env.update(FCN_DATA=str(root / 'data'), FCN_WEIGHTS=str(root / 'weights'))
    data = root / 'data' / 'demo'
    demo_data.make_segmentation_set(data / 'voc', n_train=4, n_val=2, size=64, seed=3)
    demo_data.make_classification_set(data / 'classes', n_per_class=2, seed=3,
                                      n_val_per_class=1)
    for name in ('voc', 'classes'):
        (data / name / 'seed.txt').write_text('3\n')
    with pytest.MonkeyPatch.context() as patch:
        _environment(patch, env)
        assert _train(root / 'base', 'demo-fcn32s', '--iterations', '2') == 0
    return root, env, root / 'base' / 'demo-classifier' / 'demo-classifier.caffemodel'


def _environment(monkeypatch, env):
    for key in set(os.environ) - set(env):
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)


def _train(out, model, *extra):
    argv = ['--out', str(out), '--no-progress', *extra]
    return cli.main(cli.get_args_parser(model).parse_args(argv), model)


@pytest.fixture
def snapshot(trained, tmp_path, monkeypatch):
    """A copy of demo-fcn32s's train_iter_2 snapshot (weights, solverstate, .fcnstate) in
    its own folder, and a function resuming demo-fcn32s from a file: its exit status."""
    root, env, classifier = trained
    _environment(monkeypatch, env)
    copy = tmp_path / 'copy'
    copy.mkdir()
    for suffix in ('.caffemodel', '.solverstate', '.fcnstate'):
        shutil.copy(root / 'base' / 'demo-fcn32s' / 'snapshot' / f'train_iter_2{suffix}', copy)

    def resume(state, model='demo-fcn32s', init=classifier, iterations='6'):
        return _train(tmp_path / 'out', model, '--only', '--init', str(init), '--resume',
                      str(state), '--iterations', iterations, '--step', '2')
    return copy, resume


def _edit(path, change):
    state = json.loads(path.read_text())
    path.write_text(json.dumps(change(state)))


def _set(state, field, value, net=0, layer='data'):
    state['nets'][net][layer][field] = value
    return state


@pytest.mark.parametrize('change, field, says', [
    (lambda s: [], 'the file', 'holds [], not the JSON object'),
    (lambda s: dict(s, nets=[]), 'nets', 'holds 0 net states'),
    (lambda s: dict(s, nets=s['nets'][:1]), 'nets', 'holds 1 net states'),
    (lambda s: _set(s, 'idx', 'abc'), 'nets[0]["data"].idx', "is 'abc'"),
    (lambda s: _set(s, 'idx', 10 ** 6), 'nets[0]["data"].idx', 'is 1000000'),
    (lambda s: _set(s, 'rng', [3, s['nets'][0]['data']['rng'][1][:100], None]),
     'nets[0]["data"].rng', 'is not a state of random.Random'),
    (lambda s: _set(s, 'rng', [0, 1], net=1), 'nets[1]["data"].rng',
     'is [0, 1], but layer "data" draws no random numbers'),
    (lambda s: dict(s, nets=[{'other': {}}, s['nets'][1]]), 'nets[0]',
     'holds the states of layers other'),
    (lambda s: dict(s, rng={'cpu': 'not base64!'}), 'rng["cpu"]', 'is not base64'),
    (lambda s: dict(s, rng={'cpu': base64.b64encode(b'abc').decode()}), 'rng["cpu"]',
     'is 3 bytes'),
    (lambda s: dict(s, rng=[1]), 'rng', 'is [1]'),
])
def test_catch_a_resume_state_that_does_not_fit_the_net(snapshot, capsys, change, field, says):
    """A .fcnstate that is not an object, holds another number of nets or layers, or
    positions, random states or Dropout states the net cannot take is refused with the
    file and the field named; no traceback, no advice to delete, no training."""
    copy, resume = snapshot
    _edit(copy / 'train_iter_2.fcnstate', change)
    assert resume(copy / 'train_iter_2.solverstate') == 2
    err = capsys.readouterr().err
    assert f'{copy / "train_iter_2.fcnstate"}: {field} {says}' in err, err
    assert 'delete' not in err


@pytest.mark.parametrize('stored', [5, 2, -3])
@pytest.mark.parametrize('with_fcnstate', [False, True])
def test_catch_a_solverstate_whose_iteration_is_not_its_names(snapshot, capsys, stored,
                                                              with_fcnstate):
    """train_iter_4.solverstate that stores iteration 5, 2 or -3 is refused naming both,
    before anything resumes; a sound .fcnstate beside it is not advised for deletion."""
    from backend import caffe_pb2
    copy, resume = snapshot
    state = caffe_pb2.SolverState.FromString((copy / 'train_iter_2.solverstate').read_bytes())
    state.iter = stored
    named = copy / 'train_iter_4.solverstate'
    named.write_bytes(state.SerializeToString())
    if with_fcnstate:
        _edit(copy / 'train_iter_2.fcnstate', lambda s: dict(s, iter=4))
        os.replace(copy / 'train_iter_2.fcnstate', copy / 'train_iter_4.fcnstate')
    assert resume(named) == 2
    err = capsys.readouterr().err
    assert f'{named} records iteration {stored}, but its name says 4' in err, err
    assert 'delete' not in err and 'stray' not in err
    assert not (copy.parent / 'out' / 'demo-fcn32s' / 'scores.csv').exists()


def test_catch_a_caffemodel_given_to_resume(snapshot, capsys):
    """A caffemodel given to --resume (by its name, or renamed .solverstate) is named as
    weights, with --init as the flag that takes it; never advised for deletion."""
    copy, resume = snapshot
    shutil.copy(copy / 'train_iter_2.caffemodel', copy / 'renamed.solverstate')
    for weights in (copy / 'train_iter_2.caffemodel', copy / 'renamed.solverstate'):
        assert resume(weights) == 2
        err = capsys.readouterr().err
        assert f'{weights} is a caffemodel (weights), not a solver state' in err, err
        assert f'--init {weights}' in err
        assert 'delete' not in err and 'damaged' not in err


@pytest.mark.parametrize('model, source', [('demo-fcn32s', 'demo-classifier'),
                                           ('demo-fcn16s', 'demo-fcn32s')])
def test_catch_another_stages_solverstate(trained, snapshot, capsys, model, source):
    """Another stage's solverstate given to --resume is named as that stage's (its
    learned_net) with the first param whose history does not fit this net; never advised
    for deletion."""
    root, _, classifier = trained
    _, resume = snapshot
    state = root / 'base' / source / 'snapshot' / 'train_iter_2.solverstate'
    assert resume(state, model=model, init=root / 'base' / source / f'{source}.caffemodel') == 2
    err = capsys.readouterr().err
    assert f'{state} is a solver state of stage {source}, not of {model}' in err, err
    assert 'history blob' in err and '--init' in err
    assert 'delete' not in err and 'damaged' not in err


# The CLI in a child whose plot of curves.png dies by SIGKILL half-way through its n-th
# write (argv[2]), with loop.PLOT_EVERY set to argv[1] (0: a plot after every round).
CURVES_CHILD = '''
import os, signal, sys
import atomic_files
from solve import cli, curves, loop
loop.PLOT_EVERY, nth, calls = float(sys.argv[1]), int(sys.argv[2]), [0]
original = curves.atomic_write
def dying(path, data):
    calls[0] += 1
    if calls[0] == nth:
        with atomic_files.replacing(path) as tmp:
            with open(tmp, 'wb') as f:
                f.write(data[:len(data) // 2])
            os.kill(os.getpid(), signal.SIGKILL)
    return original(path, data)
curves.atomic_write = dying
sys.exit(cli.main(cli.get_args_parser().parse_args(sys.argv[3:])))
'''


@pytest.mark.parametrize('plot_every, nth, left', [('60', 1, 'missing'), ('0', 2, 'stale')])
def test_killed_while_drawing_curves_the_rerun_draws_them(trained, tmp_path, plot_every, nth,
                                                          left):
    """A kill while the last round's curves.png is written (none before it, or an earlier
    round's) and the same command again: the stage finishes with curves.png drawn from the
    whole log, whole, and no torn file left."""
    from PIL import Image
    root, env, classifier = trained
    args = ['demo-fcn32s', '--only', '--init', str(classifier), *SCHEDULE, '--out',
            str(tmp_path)]
    killed = subprocess.run([sys.executable, '-c', CURVES_CHILD, plot_every, str(nth), *args],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    stage = tmp_path / 'demo-fcn32s'
    png = stage / 'curves.png'
    assert png.exists() == (left == 'stale')
    stale = png.read_bytes() if png.exists() else None
    again = subprocess.run([sys.executable, '-m', 'solve.cli', *args], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert png.is_file() and png.read_bytes() != stale
    with Image.open(png) as image:
        image.verify()
    assert not [p for p in stage.rglob('*') if p.name.startswith('.')], 'torn files'
