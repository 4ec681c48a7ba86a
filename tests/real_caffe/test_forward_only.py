"""The engine's forward-only plan (what solve.infer and solve.score run) against real Caffe on
the paper's own net: VGG16 FCN-8s with the faster forms engaged (channels-last runs, the
ReLU applied by the convolution, pooling by phases, im2col + gemm for fc6 and fc7,
Winograd's F(2x2, 3x3) for conv4_x and conv5_x, upsampling by phases) gives real Caffe's
score to float32 rounding.
"""
import numpy as np

import caffe_torch as caffe
from caffe_torch import winograd
from real_caffe.conftest import ROOT

SIZE = 200  # conv5 sees 25 x 25: over an eighth of its 4608 taps, so not the gemm form
FORWARD = '''
import sys, numpy as np, caffe
prototxt, weights, data, out = sys.argv[1:5]
net = caffe.Net(prototxt, weights, caffe.TEST)
x = np.load(data)
net.blobs['data'].reshape(*x.shape)
net.reshape()
net.blobs['data'].data[...] = x
np.save(out, net.forward()['score'])
'''


def _he_weights(net, rng):
    """Random filters that keep the activations' scale through 15 rectified layers (He et
    al.'s normal), biases small: every layer's arithmetic shows in the score."""
    for blobs in net.params.values():
        fan_in = int(np.prod(blobs[0].shape[1:]))
        blobs[0].data[...] = rng.normal(0, (2.0 / fan_in) ** 0.5, blobs[0].shape)
        if len(blobs) > 1:
            blobs[1].data[...] = rng.uniform(-0.1, 0.1, blobs[1].shape)


def test_voc_fcn8s_forward_only_plan_gives_real_caffes_score(real_caffe, tmp_path,
                                                             monkeypatch):
    """voc-fcn8s at 200 x 200, He-scaled random weights saved as a caffemodel: real Caffe's
    score (im2col + OpenBLAS gemm throughout) and the engine's with keep_blobs(['score'])
    agree to 1e-5 of the score's scale, and the engine ran conv4_1 to conv5_3 by Winograd
    (a spy counts its calls)."""
    prototxt = ROOT / 'nets' / 'voc-fcn8s' / 'deploy.prototxt'
    net = caffe.Net(str(prototxt), caffe.TEST)
    rng = np.random.RandomState(0)
    _he_weights(net, rng)
    weights, data, out = tmp_path / 'w.caffemodel', tmp_path / 'x.npy', tmp_path / 'score.npy'
    net.save(str(weights))
    x = rng.uniform(-100, 100, (1, 3, SIZE, SIZE)).astype(np.float32)
    np.save(data, x)
    done = real_caffe.run(['-c', FORWARD, prototxt, weights, data, out])
    assert done.returncode == 0, done.stderr[-3000:]
    theirs = np.load(out)

    calls = []
    convolve = winograd.convolve
    monkeypatch.setattr(winograd, 'convolve',
                        lambda *args, **kwargs: calls.append(args[0].shape[1]) or
                        convolve(*args, **kwargs))
    net.blobs['data'].reshape(*x.shape)
    net.reshape()
    net.keep_blobs(['score'])
    net.blobs['data'].data[...] = x
    ours = net.forward()['score']
    assert calls == [256, 512, 512, 512, 512, 512]  # conv4_1 .. conv5_3
    scale = np.abs(theirs).max()
    assert ours.shape == theirs.shape and scale > 0
    print(f"max |engine - Caffe| / scale: {np.abs(ours - theirs).max() / scale:.2e}")
    assert np.abs(ours - theirs).max() <= 1e-5 * scale, np.abs(ours - theirs).max() / scale
