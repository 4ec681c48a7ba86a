"""What keeps a stage's outputs its own: one run per stage folder (a stale lock taken over),
no write led out of an output folder by a planted symbolic link, split list ids that stay in
their dataset, and images infer cannot map to 8-bit color refused."""
import os

import numpy as np
import pytest
from PIL import Image

import atomic_files
from dataset_fixtures import data_net, dataset_env, make_voc
from solve import cli, infer, stage_lock

QUICK = ['--iterations', '1', '--step', '1', '--no-progress']


def _train(out, model='demo-classifier'):
    argv = ['--out', str(out), *QUICK]
    return cli.main(cli.get_args_parser(model).parse_args(argv), model)


def test_a_second_run_in_a_busy_stage_folder_says_who_holds_it(tiny_demo, capsys):
    stage = tiny_demo / 'out' / 'demo-classifier'
    stage.mkdir(parents=True)
    with stage_lock.holding(stage):
        assert _train(tiny_demo / 'out') == 2
    error = capsys.readouterr().err
    assert f'is in use by another run (pid {os.getpid()} on ' in error
    assert 'give this run another --out' in error
    assert not (stage / 'train.log').exists(), 'the refused run wrote into the folder'


def test_a_lock_left_by_a_killed_run_is_taken_over(tiny_demo, caplog):
    """A killed run's flock went with its process; its file still names it."""
    import logging
    stage = tiny_demo / 'out' / 'demo-classifier'
    stage.mkdir(parents=True)
    (stage / stage_lock.NAME).write_text('{"pid": 999999, "host": "gone", "started": '
                                         '"2026-01-01 00:00:00", "command": ["x"]}')
    with caplog.at_level(logging.INFO, logger='fcn'):
        assert _train(tiny_demo / 'out') == 0
    assert 'left by a run that ended without releasing it (pid 999999 on gone' in caplog.text
    assert (stage / 'demo-classifier.caffemodel').is_file()
    assert not (stage / stage_lock.NAME).exists()


@pytest.mark.parametrize('planted', ['train.log', 'scores.csv', 'snapshot', 'run.lock'])
def test_a_link_planted_in_a_stage_folder_is_refused(tiny_demo, capsys, planted):
    stage, elsewhere = tiny_demo / 'out' / 'demo-classifier', tiny_demo / 'elsewhere'
    stage.mkdir(parents=True)
    elsewhere.mkdir()
    (stage / planted).symlink_to(elsewhere / planted)
    assert _train(tiny_demo / 'out') == 2
    assert 'outside the output folder' in capsys.readouterr().err
    assert not list(elsewhere.iterdir()), 'a write landed outside the stage folder'


def test_infer_refuses_a_link_planted_in_its_out_folder(tmp_path):
    out, elsewhere = tmp_path / 'out', tmp_path / 'elsewhere'
    out.mkdir()
    elsewhere.mkdir()
    (out / 'a_overlay.png').symlink_to(elsewhere / 'stolen.png')
    labels = {'score': np.zeros((4, 5), np.uint8)}
    with pytest.raises(atomic_files.OutsideFolderError, match='outside the output folder'):
        infer.save_outputs(out, 'a', np.zeros((4, 5, 3), np.float32), labels,
                           np.zeros((256, 3), np.uint8))
    assert not list(elsewhere.iterdir()) and not (out / 'a.png').exists()


@pytest.mark.parametrize('entry', ['../../../etc/passwd', '/etc/passwd', 'a/../../b'])
def test_split_list_ids_that_leave_the_dataset_are_refused(tmp_path, entry):
    from data_layers.base import BadDataError
    ids = ('2007_000032', '2007_000039')
    voc = make_voc(tmp_path / 'voc', ids=ids)
    (voc / 'ImageSets' / 'Segmentation' / 'train.txt').write_text(
        f'{ids[0]}\n\n{entry}\n{ids[1]}\n')
    with dataset_env(voc=voc), pytest.raises(BadDataError) as caught:
        data_net(tmp_path, 'data_layers.voc', 'VOCSegDataLayer', "{'split': 'train', 'randomize': False}",
                 ['data', 'label'])
    assert f'line 3 of split list {voc}' in str(caught.value)
    assert repr(entry) in str(caught.value) and 'leads out of the dataset folder' in str(
        caught.value)


@pytest.mark.parametrize('mode, array', [
    ('F', np.full((4, 5), 0.5, np.float32)),
    ('F', np.array([[np.nan, 1.0], [np.inf, 0.0]], np.float32)),
    ('I;16', np.full((4, 5), 40000, np.uint16)),
    ('I', np.full((4, 5), 70000, np.int32))])
def test_infer_refuses_images_it_cannot_map_to_8_bit_color(tmp_path, mode, array):
    """A float TIFF would saturate to 255 (and NaN pass) through a plain RGB conversion;
    16- and 32-bit integer images have no rule either."""
    path = tmp_path / 'image.tif'
    Image.fromarray(array).save(path)
    assert Image.open(path).mode == mode
    with pytest.raises(infer.InferError, match=f'mode {mode}') as caught:
        infer.read_rgb(path)
    assert 'Convert it to 8-bit RGB first' in str(caught.value)


def test_infer_still_reads_8_bit_images_and_16_bit_depth(tmp_path):
    grey = tmp_path / 'grey.png'
    Image.fromarray(np.full((3, 4), 7, np.uint8), mode='L').save(grey)
    assert infer.read_rgb(grey).shape == (3, 4, 3) and infer.read_rgb(grey).max() == 7
    depth = tmp_path / 'depth.png'
    Image.fromarray(np.full((3, 4), 40000, np.uint16)).save(depth)
    assert infer.read_image(depth, rgb=False).max() == 40000
