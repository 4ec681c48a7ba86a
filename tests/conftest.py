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
