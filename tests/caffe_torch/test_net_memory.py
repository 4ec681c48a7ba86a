"""Net.keep_blobs: freeing what no one reads changes no number, and frees what it says."""
import textwrap

import numpy as np
import pytest
import torch

import caffe_torch as caffe
from caffe_torch.net_memory import FreedBlobError

# A blob read by two layers (an automatic Split), a Split top read only as a Crop's reference
# (its diff is never written, so must stay zero), an in-place ReLU, a Flatten sharing its
# bottom's memory, a Parameter layer whose top is its blob; any input size.
NET = '''
layer { name: "in" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 2 dim: 3 dim: 9 dim: 9 } shape { dim: 2 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1
                            weight_filler { type: "gaussian" std: 0.3 }
                            bias_filler { type: "constant" value: 0.1 } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "conv2" type: "Convolution" bottom: "conv1" top: "conv2"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1
                            weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "pool" type: "Pooling" bottom: "conv1" top: "pool"
        pooling_param { pool: MAX kernel_size: 3 stride: 1 pad: 1 } }
layer { name: "shift" type: "Parameter" top: "shift"
        parameter_param { shape { dim: 4 } } }
layer { name: "shifted" type: "Bias" bottom: "pool" bottom: "shift" top: "shifted" }
layer { name: "sum0" type: "Eltwise" bottom: "conv2" bottom: "shifted" top: "sum0" }
layer { name: "up" type: "Deconvolution" bottom: "sum0" top: "up"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1
                            weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "crop" type: "Crop" bottom: "up" bottom: "sum0" top: "upc"
        crop_param { axis: 2 offset: 0 } }
layer { name: "sum" type: "Eltwise" bottom: "upc" bottom: "sum0" top: "sum" }
layer { name: "gap" type: "Pooling" bottom: "sum" top: "gap"
        pooling_param { pool: AVE global_pooling: true } }
layer { name: "flat" type: "Flatten" bottom: "gap" top: "flat" }
layer { name: "ip" type: "InnerProduct" bottom: "flat" top: "score"
        inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "score" bottom: "label" top: "loss" }
'''


def _nets(tmp_path, phase, count=2, seed=0):
    path = tmp_path / 'net.prototxt'
    path.write_text(textwrap.dedent(NET))
    nets = [caffe.Net(str(path), phase) for _ in range(count)]
    rng = np.random.RandomState(seed)
    for name, blobs in nets[0].params.items():
        for i, blob in enumerate(blobs):
            value = rng.normal(0, 0.3, blob.shape)
            for net in nets:
                net.params[name][i].data[...] = value
    return nets


def _feed(nets, rng, size=9):
    data = rng.uniform(-1, 1, (2, 3, size, size))
    for net in nets:
        if net.blobs['data'].shape[2] != size:
            net.blobs['data'].reshape(2, 3, size, size)
        net.blobs['data'].data[...] = data
        net.blobs['label'].data[...] = [0, 2]


def _litter():
    """Leave NaN in freed heap memory, where a buffer allocated unzeroed would find it."""
    for count in (2 * 4 * 9 * 9, 2 * 4 * 11 * 11, 2 * 4 * 13 * 13):
        junk = torch.full((count,), float('nan'))
        del junk


def _held(blob, field='_data'):
    return getattr(blob, field)._head is not None


def test_forward_only_frees_every_blob_not_kept_and_changes_no_output(tmp_path):
    """A TEST net keeping "score": loss and score equal Caffe's keep-everything run, at
    two input sizes (the second reallocates the blobs); every other intermediate blob's
    data is gone after the forward, the Parameter's top survives with its value."""
    full, lean = _nets(tmp_path, caffe.TEST)
    lean.keep_blobs(['score'])
    rng = np.random.RandomState(1)
    for size in (9, 13):
        _litter()
        _feed([full, lean], rng, size)
        want, got = full.forward(), lean.forward()
        assert want.keys() == got.keys() == {'loss'}
        assert np.array_equal(want['loss'], got['loss'])
        assert np.array_equal(full.blobs['score'].data, lean.blobs['score'].data)
    held = {name for name, blob in lean.blobs.items() if _held(blob)}
    assert held == {'data', 'label', 'score', 'loss', 'shift'}
    assert np.array_equal(lean.blobs['shift'].data, full.params['shift'][0].data)


def test_backward_after_a_forward_only_plan_is_refused(tmp_path):
    (net,) = _nets(tmp_path, caffe.TRAIN, count=1)
    net.keep_blobs(['score'])
    _feed([net], np.random.RandomState(2))
    net.forward()
    with pytest.raises(FreedBlobError, match='for_backward=True'):
        net.backward()


def test_training_plan_gives_the_same_gradients_and_frees_diffs(tmp_path):
    """for_backward=True over three iterations, the last at a larger input: loss and every
    parameter diff equal the keep-everything net's bit for bit; after backward no
    intermediate blob holds a diff, and only inputs, loss, and memory shared with
    parameters keep their data."""
    full, lean = _nets(tmp_path, caffe.TRAIN)
    lean.keep_blobs(['loss'], for_backward=True)
    rng = np.random.RandomState(3)
    for size in (9, 9, 11):
        _litter()
        _feed([full, lean], rng, size)
        for net in (full, lean):
            net.clear_param_diffs()
            net.forward()
            net.backward()
        assert np.array_equal(full.blobs['loss'].data, lean.blobs['loss'].data)
        for name in full.params:
            for a, b in zip(full.params[name], lean.params[name]):
                assert np.array_equal(a.diff, b.diff), name
    diffs = {name for name, blob in lean.blobs.items() if _held(blob, '_diff')}
    assert diffs <= {'data', 'label', 'loss', 'shift'}
    data = {name for name, blob in lean.blobs.items() if _held(blob)}
    assert data == {'data', 'label', 'loss', 'shift'}


def test_keep_blobs_none_keeps_everything_again_and_unknown_names_are_refused(tmp_path):
    (net,) = _nets(tmp_path, caffe.TEST, count=1)
    with pytest.raises(KeyError, match='no blob named nope'):
        net.keep_blobs(['nope'])
    net.keep_blobs([])
    net.keep_blobs(None)
    _feed([net], np.random.RandomState(4))
    net.forward()
    assert all(_held(blob) for blob in net.blobs.values())


def test_only_freed_blobs_take_fresh_buffers_and_kept_views_stay_live(tmp_path):
    """A plan marks the blobs it frees as transient (convolutions hand them their fresh
    result instead of copying it in); kept blobs, and every blob of a net without a plan,
    keep one buffer, so a NumPy view taken before a forward shows that forward's result."""
    full, lean = _nets(tmp_path, caffe.TEST)
    lean.keep_blobs(['score', 'conv2'])
    transient = {name for name, blob in lean.blobs.items() if blob.transient}
    assert {'conv1', 'up', 'sum0', 'upc'} <= transient
    assert not transient & {'data', 'label', 'score', 'loss', 'shift', 'conv2'}
    _feed([full, lean], np.random.RandomState(5))
    views = {name: full.blobs[name].data for name in ('conv1', 'conv2', 'up')}
    kept = lean.blobs['conv2'].data
    full.forward()
    lean.forward()
    for name, view in views.items():
        assert np.shares_memory(view, full.blobs[name].data) and view.any(), name
    assert np.shares_memory(kept, lean.blobs['conv2'].data)
    assert np.array_equal(kept, views['conv2'])
    assert not any(blob.transient for blob in full.blobs.values())
    lean.keep_blobs(None)
    assert not any(blob.transient for blob in lean.blobs.values())


def test_forward_only_plan_lays_out_channels_last_only_what_no_one_sees(tmp_path):
    """A forward-only plan lets the transient 4-D blobs read only by layers that take any
    memory order (convolution, pooling, ReLU, crop, eltwise) hold channels-last data: not
    one read by Bias, Deconvolution or Flatten, not a kept one, and none in a training
    plan. At batch 1, where the fast forms run, loss and score equal the keep-everything
    net's to float32 rounding (rel. 1e-6)."""
    full, lean = _nets(tmp_path, caffe.TEST)
    lean.keep_blobs(['score'])
    laid_out = {name for name, blob in lean.blobs.items() if blob.channels_last}
    assert laid_out == {'conv1', 'conv1_relu1_0_split_0', 'conv1_relu1_0_split_1', 'conv2',
                        'shifted', 'up', 'upc', 'sum'}  # not pool, sum0, gap
    rng = np.random.RandomState(4)
    data = rng.uniform(-1, 1, (1, 3, 11, 11))
    for net in (full, lean):
        net.blobs['data'].reshape(1, 3, 11, 11)
        net.blobs['label'].reshape(1)
        net.blobs['data'].data[...] = data
        net.blobs['label'].data[...] = [2]
        net.reshape()
    want, got = full.forward(), lean.forward()
    scale = np.abs(full.blobs['score'].data).max()
    assert np.abs(full.blobs['score'].data - lean.blobs['score'].data).max() <= 1e-6 * scale
    assert abs(float(want['loss']) - float(got['loss'])) <= 1e-6 * abs(float(want['loss']))
    (trained,) = _nets(tmp_path, caffe.TRAIN, count=1)
    trained.keep_blobs(['loss'], for_backward=True)
    assert not any(blob.channels_last for blob in trained.blobs.values())


# A convolution whose in-place ReLU a forward-only plan fuses into it, then a layer that
# makes values negative again in place and a second in-place ReLU.
FUSED = '''
layer { name: "in" type: "Input" top: "data"
        input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1
                            weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "flip" type: "Power" bottom: "conv1" top: "conv1"
        power_param { scale: -1 shift: 0.5 } }
layer { name: "relu2" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool" type: "Pooling" bottom: "conv1" top: "out"
        pooling_param { pool: MAX kernel_size: 1 stride: 1 } }
'''


def _fused_pair(tmp_path, size=8):
    path = tmp_path / 'fused.prototxt'
    path.write_text(FUSED)
    plain, lean = caffe.Net(str(path), caffe.TEST), caffe.Net(str(path), caffe.TEST)
    lean.params['conv1'][0].data[...] = plain.params['conv1'][0].data
    lean.params['conv1'][1].data[...] = plain.params['conv1'][1].data
    lean.keep_blobs(['out'])
    assert lean.layers[1].fuse_relu
    return plain, lean


def _feed_both(nets, size, seed):
    data = np.random.RandomState(seed).uniform(-1, 1, (1, 3, size, size))
    for net in nets:
        net.blobs['data'].reshape(1, 3, size, size)
        net.blobs['data'].data[...] = data
        net.reshape()


def _close(a, b):
    return np.abs(a - b).max() <= 1e-6 * max(np.abs(b).max(), 1e-30)


def test_a_fused_relu_is_that_relu_only_and_only_within_one_forward(tmp_path):
    """The convolution applies relu1 only: relu2, after a layer that made values negative
    again, still runs; forward(end='conv1') returns the raw convolution, as Caffe's; a
    forward of the rest after it runs relu1 itself; a smaller input after a partial pass
    and keep_blobs(None) after one give the keep-everything net's numbers."""
    plain, lean = _fused_pair(tmp_path)
    _feed_both([plain, lean], 8, 0)
    assert _close(lean.forward()['out'], plain.forward()['out'])
    raw = plain.forward(end='conv1')['conv1'].copy()
    assert raw.min() < 0 and _close(lean.forward(end='conv1')['conv1'], raw)
    want = plain.forward(start='relu1')['out'].copy()
    assert _close(lean.forward(start='relu1')['out'], want)
    lean.forward(end='conv1')
    _feed_both([plain, lean], 6, 1)
    assert _close(lean.forward()['out'], plain.forward()['out'])
    lean.forward(end='conv1')
    lean.keep_blobs(None)
    _feed_both([plain, lean], 8, 2)
    assert _close(lean.forward()['out'], plain.forward()['out'])
    assert _close(lean.blobs['conv1'].data, plain.blobs['conv1'].data)


def test_a_hook_sees_the_convolution_before_its_relu(tmp_path):
    """With a forward hook set, nothing is fused: the hook after conv1 sees the raw
    convolution (negative values), as in Caffe."""
    plain, lean = _fused_pair(tmp_path)
    _feed_both([plain, lean], 8, 3)
    seen = {}
    for net, key in ((plain, 'plain'), (lean, 'lean')):
        net.after_forward(lambda i, net=net, key=key: seen.setdefault(key, net.blobs[
            'conv1'].data.copy()) if net._layer_names[i] == 'conv1' else None)
        net.forward()
    assert seen['plain'].min() < 0 and _close(seen['lean'], seen['plain'])
