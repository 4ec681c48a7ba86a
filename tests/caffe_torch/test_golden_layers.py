"""The 61 per-layer cases recorded from BVLC Caffe 9b89154 (tests/golden/README.md).

Each case's net runs in our engine with the recorded bottoms and parameters; every top,
bottom diff and parameter diff must equal Caffe's to float32 rounding, and the net must
hold exactly the blobs Caffe's had, automatically inserted Split blobs included.
"""
import pytest

from golden_check import CASES, rel_error, run_case

FORWARD_TOL, BACKWARD_TOL = 2e-6, 2e-5


@pytest.mark.parametrize('case', sorted(p.name for p in CASES.iterdir()))
def test_layer_matches_caffe(case):
    """Forward tops and backward diffs equal BVLC Caffe's for this case."""
    net, golden = run_case(case)
    expected_blobs = set(golden.get('top', {})) | set(golden.get('bottom', {}))
    assert set(net.blobs) == expected_blobs
    for name, value in golden.get('top', {}).items():
        assert rel_error(net.blobs[name].data, value) < FORWARD_TOL, f'top {name}'
    if not ({'bottom_diff', 'param_diff'} & set(golden)):
        return
    for name, value in golden.get('top_diff', {}).items():
        net.blobs[name].diff[...] = value
    net.clear_param_diffs()
    net.backward()
    for name, value in golden.get('bottom_diff', {}).items():
        assert rel_error(net.blobs[name].diff, value) < BACKWARD_TOL, f'bottom diff {name}'
    for key, value in golden.get('param_diff', {}).items():
        layer, index = key.rsplit('/', 1)
        ours = net.params[layer][int(index)].diff
        assert rel_error(ours, value) < BACKWARD_TOL, f'param diff {key}'
