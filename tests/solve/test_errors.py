"""What a user meets when something is wrong: one `error:` line and a non-zero exit, never
a traceback; wrong initial weights refused; leftovers of interrupted writes swept."""
import pathlib

import numpy as np
import pytest
from PIL import Image

from solve import cli, curves, demo, loop, stages

ROOT = pathlib.Path(__file__).resolve().parents[2]
QUICK = ['--iterations', '2', '--no-progress']


def _train(out, model='demo-classifier', extra=()):
    argv = ['--out', str(out), *QUICK, *extra]
    return cli.main(cli.get_args_parser(model).parse_args(argv), model)


def _first_image(tiny_demo, name='classes'):
    folder = tiny_demo / 'data' / 'demo' / name
    return sorted(folder.rglob('*.jpg'))[0]


@pytest.mark.parametrize('damage, says', [
    ('corrupt jpeg', 'cannot read the data image'),
    ('bomb', 'cannot read the data image'),
    ('split not utf-8', 'is not UTF-8 text'),
    ('empty split', 'is empty; it needs one image id per line'),
])
def test_bad_data_is_one_error_line(tiny_demo, capsys, monkeypatch, damage, says):
    """Corrupt images, decompression bombs, non-UTF-8 and empty split lists met while
    training: `error: ...` naming the file, exit 2."""
    split = tiny_demo / 'data' / 'demo' / 'classes' / 'train.txt'
    if damage == 'corrupt jpeg':
        for image in (tiny_demo / 'data' / 'demo' / 'classes').rglob('*.jpg'):
            image.write_bytes(image.read_bytes()[:40])
    elif damage == 'bomb':
        monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 100)  # 200+ pixels is a "bomb"
    elif damage == 'split not utf-8':
        split.write_bytes(b'\xff\xfe\x00 not text\n')
    else:
        split.write_text('\n\n')
    assert _train(tiny_demo / 'out') == 2
    err = capsys.readouterr().err
    assert err.startswith('error: ') and says in err and 'Traceback' not in err


@pytest.mark.parametrize('damage, says', [
    ('rgb label', 'expected palette indices'),
    ('size mismatch', 'is 32x64 (HxW'),
])
def test_bad_labels_are_one_error_line(tiny_demo, capsys, damage, says):
    """An RGB image where a paletted label PNG belongs, and a label of another size than
    its image, met by FCN-32s's data layer: `error: ...`, exit 2."""
    assert _train(tiny_demo / 'out') == 0  # the classifier FCN-32s starts from
    capsys.readouterr()
    voc = tiny_demo / 'data' / 'demo' / 'voc'
    for label in (voc / 'SegmentationClass').glob('*.png'):
        if damage == 'rgb label':
            Image.new('RGB', (64, 64)).save(label)
        else:
            Image.new('P', (64, 32)).save(label)
    assert _train(tiny_demo / 'out', 'demo-fcn32s') == 2
    err = capsys.readouterr().err
    assert err.startswith('error: ') and says in err and 'Traceback' not in err


def test_ctrl_c_says_how_to_resume(tiny_demo, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(loop, 'run_stage', interrupted)
    assert _train(tiny_demo / 'out') == 130
    assert 'interrupted; rerun the same command to resume' in capsys.readouterr().err


def test_a_damaged_run_json_is_named(tiny_demo, capsys):
    stage = tiny_demo / 'out' / 'demo-classifier'
    stage.mkdir(parents=True)
    (stage / 'run.json').write_text('{"iterations": 2, "st')
    assert _train(tiny_demo / 'out') == 2
    assert 'run.json is damaged' in capsys.readouterr().err


def test_stray_snapshot_names_are_ignored_and_torn_writes_swept(tmp_path):
    """latest_state skips names that are no snapshot; sweep removes what interrupted
    atomic writes leave (atomic_files' '.<name>.<8 characters>.tmp', the engine's HDF5
    snapshots included), nothing else."""
    snapshot = tmp_path / 'snapshot'
    snapshot.mkdir()
    for name in ('train_iter_abc.solverstate', 'train_iter_2.solverstate',
                 'train_iter_10.solverstate.h5', 'train_iter_3.solverstate.bak'):
        (snapshot / name).write_bytes(b'')
    assert loop.latest_state(tmp_path) == snapshot / 'train_iter_10.solverstate.h5'
    torn = [tmp_path / '.scores.csv.k2j4_x9a.tmp', snapshot / '.train_iter_4.caffemodel.a1b2c3d4.tmp',
            snapshot / '.train_iter_4.solverstate.h5.zz99aa11.tmp']
    kept = [tmp_path / 'scores.csv', tmp_path / '.hidden_notes', snapshot / 'README',
            tmp_path / '.notes.settings', tmp_path / '.notes.k2j4_x9a']  # a user's files
    for path in torn + kept:
        path.write_bytes(b'x')
    loop.sweep(tmp_path)
    assert not any(p.exists() for p in torn) and all(p.exists() for p in kept)


def test_demo_refuses_non_positive_iterations(capsys):
    for value in ('0', '-5'):
        with pytest.raises(SystemExit):
            demo.get_args_parser().parse_args(['--iterations', value])
        err = capsys.readouterr().err
        assert 'python -m solve.demo' in err and 'expected a positive integer' in err


def test_curves_of_a_file_that_is_no_log(tmp_path, capsys):
    readme = tmp_path / 'README.md'
    readme.write_text('# not a log\n')
    args = curves.get_args_parser().parse_args([str(readme)])
    assert curves.main(args) == 2
    assert 'not a Caffe training log' in capsys.readouterr().err
    assert not (tmp_path / 'curves.png').exists()


def test_convert_of_a_folder_or_an_hdf5_file(tmp_path, capsys):
    from weights import convert
    garbage = tmp_path / 'cls.caffemodel.h5'
    garbage.write_bytes(b'\x89HDF\r\n\x1a\n not really')
    nets = ROOT / 'nets'
    for source in (tmp_path, garbage):
        args = convert.get_args_parser().parse_args([
            'custom', '--classifier-net', str(nets / 'demo-classifier' / 'deploy.prototxt'),
            '--fcn-net', str(nets / 'demo-fcn32s' / 'deploy.prototxt'), '--input', str(source),
            '--output', str(tmp_path / 'out.caffemodel')])
        assert convert.main(args) == 2
        assert capsys.readouterr().err.startswith('error: ')


def _deploy(model):
    from backend import caffe
    caffe.set_random_seed(3)
    return caffe.Net(str(ROOT / 'nets' / model / 'deploy.prototxt'), caffe.TEST)


def test_initial_weights_must_fill_what_the_parent_trained(tmp_path):
    """FCN-16s from a FCN-32s caffemodel cut before fc6/fc7/score_fr (or of another model)
    is refused naming the layers; the whole file passes, its new layers left at init; a
    file holding NaN is refused before training."""
    from caffe_torch import formats
    whole = tmp_path / 'fcn32s.caffemodel'
    _deploy('demo-fcn32s').save(str(whole))
    stages.initialise('demo-fcn16s', _deploy('demo-fcn16s'), str(whole))
    param = formats.read_net_binary(whole)
    cut = [layer for layer in param.layer if layer.name not in ('fc6', 'fc7', 'score_fr')]
    del param.layer[:]
    param.layer.extend(cut)
    formats.write_binaryproto(param, tmp_path / 'cut.caffemodel')
    with pytest.raises(stages.InitWeightsError,
                       match=r'give nothing to 3 layer\(s\) that demo-fcn32s trained: fc6, '
                             r'fc7, score_fr'):
        stages.initialise('demo-fcn16s', _deploy('demo-fcn16s'), str(tmp_path / 'cut.caffemodel'))
    poisoned = _deploy('demo-fcn32s')
    poisoned.params['conv3_1'][0].data[0, 0, 0, 0] = np.nan
    poisoned.save(str(tmp_path / 'nan.caffemodel'))
    with pytest.raises(stages.InitWeightsError, match=r'hold NaN or Inf in conv3_1'):
        stages.initialise('demo-fcn16s', _deploy('demo-fcn16s'), str(tmp_path / 'nan.caffemodel'))


def test_hdf5_initial_weights_are_read(tmp_path):
    """A .caffemodel.h5 (Net.save_hdf5) initialises a stage as a binary caffemodel does."""
    source = _deploy('demo-fcn32s')
    source.save_hdf5(str(tmp_path / 'fcn32s.caffemodel.h5'))
    net = _deploy('demo-fcn16s')
    stages.initialise('demo-fcn16s', net, str(tmp_path / 'fcn32s.caffemodel.h5'))
    np.testing.assert_array_equal(net.params['fc7'][0].data, source.params['fc7'][0].data)


def test_a_damaged_snapshot_says_what_to_delete(tiny_demo, capsys):
    """A solverstate cut short in the stage folder is named, with how to resume from the
    one before, not "download it again"."""
    snapshot = tiny_demo / 'out' / 'demo-classifier' / 'snapshot'
    snapshot.mkdir(parents=True)
    (snapshot / 'train_iter_2.solverstate').write_bytes(b'\x08\x02\x12\xff\xff')
    assert _train(tiny_demo / 'out') == 2
    err = capsys.readouterr().err
    assert 'cannot resume from' in err and 'The snapshot is damaged' in err
    assert ('move it and its .caffemodel out of the snapshot folder to resume from the one '
            'before') in err
    assert 'download it again' not in err


@pytest.mark.parametrize('model_id, init, kind', [
    ('demo-fcn32s', 'w', 'TRANSPLANT'), ('demo-fcn16s', 'w', 'COPY'),
    ('nyud-fcn32s-color-d', 'w', 'COLOR_D'), ('nyud-fcn32s-color-hha', ('a', 'b'), 'FUSION'),
    ('nyud-fcn32s-color-hha', 'w', 'COPY'), ('demo-classifier', 'w', 'COPY')])
def test_initialise_follows_the_recipes_init_kind(monkeypatch, model_id, init, kind):
    """The surgery is the recipe's Init (one caffemodel given to a fusion net or a net of
    fillers is that net's own weights: copied by name), never read from the model's name."""
    from nets.recipe import Init
    done = []
    monkeypatch.setattr(stages, '_SURGERY', {k: (lambda m, net, w, k=k: done.append(k) or [])
                                             for k in Init})
    monkeypatch.setattr(stages, '_check_complete', lambda *a: None)
    monkeypatch.setattr(stages, '_check_finite', lambda *a: None)
    stages.initialise(model_id, None, init)
    assert done == [Init[kind]]
