"""pycaffe-style training of a small FCN-shaped net fed by a Python data layer."""
import textwrap

import numpy as np

import caffe_torch as caffe
from caffe_torch import layers as L, params as P
from caffe_torch import install_as_caffe
from caffe_torch.coord_map import crop

DATA_LAYER = '''
import ast
import numpy as np
import caffe


class Squares(caffe.Layer):
    """Images with one bright square on noise; the label marks the square (class 1)."""
    def setup(self, bottom, top):
        params = ast.literal_eval(self.param_str)
        self.rng = np.random.RandomState(params['seed'])
        self.size = params['size']

    def reshape(self, bottom, top):
        top[0].reshape(1, 3, self.size, self.size)
        top[1].reshape(1, 1, self.size, self.size)

    def forward(self, bottom, top):
        image = self.rng.normal(0, 0.3, (3, self.size, self.size))
        label = np.zeros((self.size, self.size))
        side = self.rng.randint(6, 12)
        y, x = self.rng.randint(0, self.size - side, 2)
        image[:, y:y + side, x:x + side] += 1.0
        label[y:y + side, x:x + side] = 1
        top[0].data[...] = image
        top[1].data[...] = label

    def backward(self, top, propagate_down, bottom):
        pass
'''


def fcn_net():
    n = caffe.NetSpec()
    n.data, n.label = L.Python(module='squares_layer', layer='Squares', ntop=2,
                               param_str=str({'seed': 7, 'size': 24}))
    n.conv1 = L.Convolution(n.data, num_output=8, kernel_size=3, pad=10,
                            weight_filler=dict(type='gaussian', std=0.1))
    n.relu1 = L.ReLU(n.conv1, in_place=True)
    n.pool1 = L.Pooling(n.relu1, pool=P.Pooling.MAX, kernel_size=2, stride=2)
    n.conv2 = L.Convolution(n.pool1, num_output=8, kernel_size=3, pad=1,
                            weight_filler=dict(type='gaussian', std=0.1))
    n.relu2 = L.ReLU(n.conv2, in_place=True)
    n.score_fr = L.Convolution(n.relu2, num_output=2, kernel_size=1)
    n.upscore = L.Deconvolution(n.score_fr, param=[dict(lr_mult=0)], convolution_param=dict(
        num_output=2, kernel_size=4, stride=2, group=2, bias_term=False,
        weight_filler=dict(type='bilinear')))
    n.score = crop(n.upscore, n.data)
    n.loss = L.SoftmaxWithLoss(n.score, n.label, loss_param=dict(normalize=False))
    return n.to_proto()


def test_copy_from_then_step_lowers_the_loss(tmp_path, monkeypatch):
    """solver.net.copy_from(w); solver.step(k): the unnormalized loss falls, frozen
    bilinear upsampling stays fixed, and the score layer learns from zero."""
    (tmp_path / 'squares_layer.py').write_text(DATA_LAYER)
    monkeypatch.syspath_prepend(str(tmp_path))
    install_as_caffe()
    caffe.set_random_seed(3)
    (tmp_path / 'train.prototxt').write_text(str(fcn_net()))
    (tmp_path / 'solver.prototxt').write_text(textwrap.dedent(f'''
        net: "{tmp_path / 'train.prototxt'}"
        base_lr: 2e-4 lr_policy: "fixed" momentum: 0.9 weight_decay: 0.0005
        random_seed: 3 snapshot_prefix: "{tmp_path / 'snap'}"'''))
    init = caffe.Net(str(tmp_path / 'train.prototxt'), caffe.TRAIN)
    init.save(str(tmp_path / 'init.caffemodel'))
    solver = caffe.SGDSolver(str(tmp_path / 'solver.prototxt'))
    solver.net.copy_from(str(tmp_path / 'init.caffemodel'))
    upscore = solver.net.params['upscore'][0].data.copy()
    assert not solver.net.params['score_fr'][0].data.any()
    losses = []
    for _ in range(60):
        solver.step(1)
        losses.append(float(solver.net.blobs['loss'].data))
    assert np.mean(losses[-10:]) < 0.2 * np.mean(losses[:10])
    np.testing.assert_array_equal(solver.net.params['upscore'][0].data, upscore)
    assert solver.net.params['score_fr'][0].data.any()
