"""Shared fixtures: paths to the golden data recorded from real BVLC Caffe."""
import pathlib

import pytest

TESTS = pathlib.Path(__file__).resolve().parent
GOLDEN = TESTS / 'golden'


@pytest.fixture
def golden():
    """The folder of test vectors recorded from BVLC Caffe 9b89154 (see its README)."""
    return GOLDEN
