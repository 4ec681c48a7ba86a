"""The 61 per-layer cases recorded from BVLC Caffe 9b89154 (tests/golden/README.md).

Each case's net runs in our engine with the recorded bottoms and parameters; every top,
bottom diff and parameter diff must equal Caffe's to float32 rounding, and the net must
hold exactly the blobs Caffe's had, automatically inserted Split blobs included.
"""
import pathlib

import numpy as np
import pytest

import caffe_torch as caffe

CASES = pathlib.Path(__file__).resolve().parents[1] / 'golden' / 'layers'
FORWARD_TOL, BACKWARD_TOL = 2e-6, 2e-5


def _rel_error(ours, theirs):
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    assert ours.shape == theirs.shape, f'shape {ours.shape} != Caffe {theirs.shape}'
    return np.linalg.norm(ours - theirs) / max(np.linalg.norm(theirs), 1e-12)


def _groups(golden):
    groups = {}
    for key in golden.files:
        kind, name = key.split('/', 1)
        groups.setdefault(kind, {})[name] = golden[key]
    return groups


def _run_case(case):
    golden = _groups(np.load(CASES / case / 'golden.npz'))
    phase = caffe.TEST if 'test' in case else caffe.TRAIN
    net = caffe.Net(str(CASES / case / 'net.prototxt'), phase)
    for name, value in golden.get('bottom', {}).items():
        net.blobs[name].data[...] = value
    for key, value in golden.get('param', {}).items():
        layer, index = key.rsplit('/', 1)
        net.params[layer][int(index)].data[...] = value
    net.forward()
    return net, golden


@pytest.mark.parametrize('case', sorted(p.name for p in CASES.iterdir()))
def test_layer_matches_caffe(case):
    """Forward tops and backward diffs equal BVLC Caffe's for this case."""
    net, golden = _run_case(case)
    expected_blobs = set(golden.get('top', {})) | set(golden.get('bottom', {}))
    assert set(net.blobs) == expected_blobs
    for name, value in golden.get('top', {}).items():
        assert _rel_error(net.blobs[name].data, value) < FORWARD_TOL, f'top {name}'
    if not ({'bottom_diff', 'param_diff'} & set(golden)):
        return
    for name, value in golden.get('top_diff', {}).items():
        net.blobs[name].diff[...] = value
    net.clear_param_diffs()
    net.backward()
    for name, value in golden.get('bottom_diff', {}).items():
        assert _rel_error(net.blobs[name].diff, value) < BACKWARD_TOL, f'bottom diff {name}'
    for key, value in golden.get('param_diff', {}).items():
        layer, index = key.rsplit('/', 1)
        ours = net.params[layer][int(index)].diff
        assert _rel_error(ours, value) < BACKWARD_TOL, f'param diff {key}'
