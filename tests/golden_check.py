"""Running the per-layer cases recorded from BVLC Caffe (tests/golden/README.md)."""
import pathlib

import numpy as np

import caffe_torch as caffe

CASES = pathlib.Path(__file__).resolve().parent / 'golden' / 'layers'


def rel_error(ours, theirs):
    """Relative L2 error of our array against Caffe's; shapes must agree."""
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    assert ours.shape == theirs.shape, f'shape {ours.shape} != Caffe {theirs.shape}'
    return np.linalg.norm(ours - theirs) / max(np.linalg.norm(theirs), 1e-12)


def groups(golden):
    """{'top': {blob: array}, 'param': {'layer/i': array}, ...} from a golden.npz."""
    found = {}
    for key in golden.files:
        kind, name = key.split('/', 1)
        found.setdefault(kind, {})[name] = golden[key]
    return found


def run_case(case):
    """Build the case's net, set Caffe's bottoms and params, run forward."""
    golden = groups(np.load(CASES / case / 'golden.npz'))
    phase = caffe.TEST if 'test' in case else caffe.TRAIN
    net = caffe.Net(str(CASES / case / 'net.prototxt'), phase)
    for name, value in golden.get('bottom', {}).items():
        net.blobs[name].data[...] = value
    for key, value in golden.get('param', {}).items():
        layer, index = key.rsplit('/', 1)
        net.params[layer][int(index)].data[...] = value
    net.forward()
    return net, golden


TINY_FCN = CASES.parent / 'tiny_fcn'


def tiny_fcn_env(monkeypatch):
    """Run from caffe-golden/ with its layer module importable, as its README says."""
    from caffe_torch import install_as_caffe
    install_as_caffe()
    monkeypatch.chdir(TINY_FCN.parent)
    monkeypatch.syspath_prepend(str(TINY_FCN.parent))
