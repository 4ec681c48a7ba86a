"""Shared fixtures: paths to the golden data recorded from real BVLC Caffe."""
import pathlib

import pytest

TESTS = pathlib.Path(__file__).resolve().parent
GOLDEN = TESTS / 'golden'


@pytest.fixture
def golden():
    """The folder of test vectors recorded from BVLC Caffe 9b89154 (see its README)."""
    return GOLDEN


@pytest.fixture
def newcomer(tmp_path, monkeypatch):
    """No datasets, no weights, an empty output root: the machine of a newcomer."""
    from data_layers.paths import DEFAULTS, env_var
    for name in DEFAULTS:
        monkeypatch.delenv(env_var(name), raising=False)
    monkeypatch.setenv('FCN_DATA', str(tmp_path / 'data'))
    monkeypatch.setenv('FCN_WEIGHTS', str(tmp_path / 'weights'))
    monkeypatch.setenv('FCN_OUT', str(tmp_path / 'out'))
    return tmp_path


@pytest.fixture
def tiny_demo(newcomer, monkeypatch):
    """The demo's two sets at their smallest: 64-px scenes, 128-px objects (fc6 needs 128)."""
    from dataset_fixtures import set_dataset_env
    from solve import demo_data
    data = newcomer / 'data' / 'demo'
    voc = demo_data.make_segmentation_set(data / 'voc', n_train=4, n_val=2, size=64, seed=3)
    classes = demo_data.make_classification_set(data / 'classes', n_per_class=2, seed=3,
                                                n_val_per_class=1)
    for folder in (voc, classes):
        (folder / 'seed.txt').write_text('3\n')  # as solve.demo draws them
    set_dataset_env(monkeypatch, demo_voc=voc, demo_classes=classes)
    return newcomer
