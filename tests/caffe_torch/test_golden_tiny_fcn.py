"""The small FCN recorded from BVLC Caffe: one forward and backward, blob for blob."""
import numpy as np

import caffe_torch as caffe
from golden_check import TINY_FCN, rel_error, tiny_fcn_env


def test_tiny_fcn_forward_backward_matches_caffe(monkeypatch):
    """Every blob's data and diff and every param diff equal Caffe's after one pass."""
    tiny_fcn_env(monkeypatch)
    golden = np.load(TINY_FCN / 'forward_backward.npz')
    net = caffe.Net('tiny_fcn/net.prototxt', caffe.TRAIN, weights='tiny_fcn/weights.caffemodel')
    out = net.forward()
    net.backward()
    for key in golden.files:
        kind, name = key.split('/', 1)
        if kind == 'out':
            assert rel_error(out[name], golden[key]) < 1e-6, key
        elif kind in ('data', 'diff'):
            assert rel_error(getattr(net.blobs[name], kind), golden[key]) < 1e-5, key
        else:
            layer, index = name.rsplit('/', 1)
            assert rel_error(net.params[layer][int(index)].diff, golden[key]) < 1e-5, key
    assert {k.split('/', 1)[1] for k in golden.files if k.startswith('data/')} == \
        set(net.blobs)
