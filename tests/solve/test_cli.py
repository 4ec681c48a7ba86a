"""The training command: what it checks before any work, and its entry points."""
import pathlib
import re

import pytest

from nets.models import MODELS
from solve import cli

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture
def empty(newcomer):
    return newcomer


def _main(argv, model_id):
    return cli.main(cli.get_args_parser(model_id).parse_args(argv), model_id)


def test_missing_data_and_weights_stop_before_any_work(empty, capsys):
    """Without ImageNet weights or datasets, nothing runs and every missing piece is named
    with where to get it and where to put it."""
    assert _main(['--out', str(empty / 'out')], 'voc-fcn8s') == 2
    err = capsys.readouterr().err
    assert 'nothing was run' in err and 'Traceback' not in err
    assert 'python -m weights.download vgg16-ilsvrc' in err
    assert 'VGG_ILSVRC_16_layers.caffemodel' in err
    assert 'dataset "sbdd" not found' in err and 'dataset "voc" not found' in err
    assert 'FCN_SBDD_DIR' in err
    assert not (empty / 'out').exists()


def test_missing_previous_stage(empty, capsys):
    """Training one stage alone needs the previous stage's final weights, and says which."""
    (empty / 'data' / 'sbdd' / 'dataset').mkdir(parents=True)
    (empty / 'data' / 'pascal' / 'VOC2011').mkdir(parents=True)
    assert _main(['--only', '--out', str(empty / 'out')], 'voc-fcn16s') == 2
    err = capsys.readouterr().err
    assert 'voc-fcn32s/voc-fcn32s.caffemodel is missing' in err and '--init' in err
    # the empty folders are not datasets: what each lacks is named, with the fetch command
    assert 'sbdd/dataset/img/ and ' in err and 'are missing, so dataset "sbdd"' in err
    assert 'VOC2011/JPEGImages/ and ' in err and '`python -m data_layers.fetch voc --force`' in err
    assert not (empty / 'out').exists()


def test_missing_init_file(empty, capsys):
    (empty / 'data' / 'demo' / 'voc').mkdir(parents=True)
    assert _main(['--init', str(empty / 'none.caffemodel'), '--out', str(empty / 'out')],
                 'demo-fcn16s') == 2
    assert f'--init {empty / "none.caffemodel"}: does not exist' in capsys.readouterr().err
    assert not (empty / 'out').exists()


def test_demo_models_without_their_data_point_to_make_demo(empty, capsys):
    assert _main(['--out', str(empty / 'out')], 'demo-fcn8s') == 2
    err = capsys.readouterr().err
    assert 'dataset "demo_classes" not found' in err and 'dataset "demo_voc" not found' in err
    assert '`make demo` generates it' in err and 'Traceback' not in err


def test_output_root_that_is_a_file(empty, capsys):
    """An unusable --out is an error message, not a traceback."""
    from solve import demo_data
    demo_data.make_classification_set(empty / 'data' / 'demo' / 'classes', n_per_class=1,
                                      n_val_per_class=1)
    (empty / 'file').write_text('')
    assert _main(['--out', str(empty / 'file'), '--iterations', '1'], 'demo-classifier') == 2
    assert capsys.readouterr().err.startswith('error: ')


def test_gpu_without_cuda(empty, capsys):
    import torch
    if torch.cuda.is_available():
        pytest.skip('a GPU is visible')
    assert _main(['--gpu', '0', '--out', str(empty / 'out')], 'demo-fcn8s') == 2
    assert 'error: --gpu 0:' in capsys.readouterr().err


def test_schedule_is_the_iterations_asked_for_scored_every_step():
    """(iterations, step): the recipe's 25 x 4000, or exactly --iterations, never more; the
    step is at most the iterations (rounds end at multiples of it and at the end)."""
    assert cli.schedule('voc-fcn32s', None) == (100000, 4000)
    assert cli.schedule('voc-fcn32s', 10000) == (10000, 4000)
    assert cli.schedule('voc-fcn32s', 50) == (50, 50)
    assert cli.schedule('voc-fcn32s', 10, step=4) == (10, 4)
    assert cli.schedule('voc-fcn32s', 3, step=5) == (3, 3)
    assert cli.schedule('voc-fcn32s', None, step=8000) == (100000, 8000)
    with pytest.raises(SystemExit):
        cli.get_args_parser('voc-fcn32s').parse_args(['--iterations', '-5'])


def test_every_model_has_an_entry_point_and_a_make_target():
    """solve/<model>.py and `make <model>` exist for every model of nets/models.py."""
    makefile = (ROOT / 'Makefile').read_text()
    targets = re.search(r'^MODELS := (.*)$', makefile, re.M).group(1).split()
    public = [m for m in MODELS if not m.startswith('demo')]
    assert targets == public
    for model in public:
        script = ROOT / 'solve' / f'{model.replace("-", "_")}.py'
        assert f"run('{model}')" in script.read_text()


def test_help_needs_nothing(capsys):
    """--help works without data, weights or GPU."""
    with pytest.raises(SystemExit) as exit_info:
        cli.get_args_parser('voc-fcn8s').parse_args(['--help'])
    assert exit_info.value.code == 0
    assert '--iterations' in capsys.readouterr().out


def test_complete_datasets_pass_the_preflight(empty, monkeypatch):
    """With every dataset present in its real layout (tiny), no model's preflight finds a
    missing folder or split list: the checks look where the data layers read."""
    import dataset_fixtures as fx
    from solve import demo_data, loop
    data = empty / 'data'
    voc2010 = data / 'pascal' / 'VOC2010'
    fx.make_pascal_context(voc2010, data / 'pascal-context')
    fx.set_dataset_env(monkeypatch, voc=fx.make_voc(data / 'voc'),
                       sbdd=fx.make_sbdd(data / 'sbdd'), nyud=fx.make_nyud(data / 'nyud'),
                       siftflow=fx.make_siftflow(data / 'siftflow'), voc2010=voc2010,
                       pascal_context=data / 'pascal-context',
                       demo_voc=demo_data.make_segmentation_set(data / 'dv', 1, 1, size=8),
                       demo_classes=demo_data.make_classification_set(data / 'dc', 1))
    assert {m: loop.missing_datasets(m) for m in MODELS} == {m: [] for m in MODELS}
    # the project ships seg11valid.txt: a VOC folder without it still passes
    (data / 'voc' / 'ImageSets' / 'Segmentation' / 'seg11valid.txt').unlink()
    assert loop.missing_datasets('voc-fcn8s') == []
    (data / 'sbdd' / 'train.txt').unlink()
    assert 'sbdd/train.txt is missing' in loop.missing_datasets('voc-fcn8s')[0]


def test_converted_stages_call_the_conversion_function(monkeypatch):
    """A converted initialisation in a chain is made by weights.convert.convert_named (no
    argv for convert's command); its failure is a ConversionError that says what to do."""
    from weights import convert
    asked = []
    monkeypatch.setattr(convert, 'convert_named', lambda name: asked.append(name))
    cli._convert('alexnet-fcn')
    assert asked == ['caffenet']

    def broken(name):
        raise ValueError('no layer fc6')
    monkeypatch.setattr(convert, 'convert_named', broken)
    with pytest.raises(cli.ConversionError, match='vgg16-fcn failed: no layer fc6'):
        cli._convert('vgg16-fcn')


def test_run_stage_takes_a_recipe_or_its_id():
    """loop.run_stage names a stage by its id or by its Recipe (found in MODELS); a recipe
    that is not in MODELS has no nets and is refused with how to add it."""
    import dataclasses
    from solve import loop
    assert loop.model_id_of(MODELS['voc-fcn16s']) == 'voc-fcn16s' == loop.model_id_of('voc-fcn16s')
    with pytest.raises(ValueError, match='add it there and run `make nets`'):
        loop.model_id_of(dataclasses.replace(MODELS['voc-fcn16s'], base_lr=1))
    assert loop.Schedule.of('voc-fcn32s') == loop.Schedule(100000, 4000)


@pytest.mark.parametrize('module,argv', [
    ('cli', ['--out', '']), ('cli', ['--init', ' ']), ('demo', ['--out', '']),
    ('infer', ['--model', 'voc-fcn8s', 'x.jpg', '--out', '']),
    ('infer', ['--model', 'voc-fcn8s', 'x.jpg', '--out', 'o', '--out-root', '']),
    ('tables', ['--out-root', '']), ('curves', ['train.log', '--out', ''])])
def test_catch_empty_paths(module, argv, capsys):
    """--out "" (an unset shell variable) is refused, not taken as the default root or the
    current folder: `solve.cli demo-fcn32s --out ''` trained into $FCN_OUT without a word."""
    import importlib
    parser = importlib.import_module(f'solve.{module}').get_args_parser
    parser = parser('demo-fcn32s') if module == 'cli' else parser()
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(argv)
    assert exit_info.value.code == 2
    assert 'names no file or folder (an unset shell variable?)' in capsys.readouterr().err


def test_catch_init_that_is_a_folder(empty, capsys):
    (empty / 'w.caffemodel').mkdir()
    (empty / 'data' / 'demo' / 'voc').mkdir(parents=True)
    assert _main(['--init', str(empty / 'w.caffemodel'), '--out', str(empty / 'out')],
                 'demo-fcn16s') == 2
    assert f'--init {empty / "w.caffemodel"}: is a folder, not a file' in \
        capsys.readouterr().err
