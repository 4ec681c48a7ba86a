"""The 148 per-layer cases recorded from BVLC Caffe 9b89154 (tests/golden/README.md).

Each case's net runs in our engine with the recorded bottoms and parameters; every top,
bottom diff, parameter diff, parameter a forward changes, later forward and written file
must equal Caffe's to float32 rounding, and the net must hold exactly the blobs Caffe's had,
automatically inserted Split blobs included.
"""
import pytest

from golden_check import CASES, check_case


@pytest.mark.parametrize('case', sorted(p.name for p in CASES.iterdir()))
def test_layer_matches_caffe(case, tmp_path):
    """Forward tops and backward diffs equal BVLC Caffe's for this case."""
    check_case(case, tmp_path)
