"""Transplant: a V1 ImageNet-style classifier into its FCN twin, and the paper's equivalence."""
import textwrap

import numpy as np
import pytest

import caffe_torch as caffe
from classifier_fixtures import CLASSES, fcn_text, write_v1_classifier
from surgery import SurgeryError, color_d, expand_score, transfer, transplant

def _nets(tmp_path, fc8='fc8', size=20):
    prototxt, weights = write_v1_classifier(tmp_path)
    classifier = caffe.Net(str(prototxt), caffe.TEST, weights=str(weights))
    (tmp_path / 'fcn.prototxt').write_text(fcn_text(size, fc8))
    return classifier, caffe.Net(str(tmp_path / 'fcn.prototxt'), caffe.TEST)


def test_fcn_scores_equal_the_classifier_on_every_window(tmp_path):
    """After transplant, the FCN's score at (i, j) is the classifier's output on the 12x12
    input window at (2i, 2j): the convolutionalized net is the classifier slid (§3.1)."""
    classifier, fcn = _nets(tmp_path)
    report = transplant(fcn, classifier, verbose=False)
    assert report.layers('reshaped') == ['fc6', 'fc7', 'fc8']
    image = np.random.RandomState(1).uniform(-1, 1, (1, 3, 20, 20)).astype(np.float32)
    scores = fcn.forward(data=image)['score'].astype(np.float64)
    assert scores.shape == (1, CLASSES, 5, 5)
    for i in range(5):
        for j in range(5):
            window = image[:, :, 2 * i:2 * i + 12, 2 * j:2 * j + 12]
            expected = classifier.forward(data=window)['fc8'][0]
            np.testing.assert_allclose(scores[0, :, i, j], expected, rtol=1e-4, atol=1e-5)


def test_report_lists_every_blob(tmp_path):
    """Copied, reshaped, dropped and left-at-init blobs are all reported."""
    classifier, fcn = _nets(tmp_path, fc8='score_fr')
    report = transplant(fcn, classifier, verbose=False)
    assert report.layers('copied') == ['conv1_1', 'conv2_1', 'fc6', 'fc7']  # biases of fc*
    assert report.layers('reshaped') == ['fc6', 'fc7']
    assert report.layers('dropped') == ['fc8']
    assert report.layers('left at init') == ['score_fr']
    assert not fcn.params['score_fr'][0].data.any()
    text = str(report)
    assert 'fc6' in text and '8x54 -> 8x6x3x3' in text and '2 left at init' in text


def test_mapping_and_suffix(tmp_path):
    """An explicit mapping sends a layer to another name; a suffix renames them all."""
    classifier, fcn = _nets(tmp_path, fc8='score_fr')
    report = transplant(fcn, classifier, mapping={'fc8': 'score_fr'}, verbose=False)
    assert 'fc8' in report.layers('reshaped') and not report.layers('dropped')
    assert report.layers('left at init') == []
    suffixed = transplant(fcn, classifier, suffix='color', verbose=False)
    assert suffixed.layers('dropped') == ['conv1_1', 'conv2_1', 'fc6', 'fc7', 'fc8']


def test_catch_shape_mismatch_names_both_layers(tmp_path):
    """A weight whose element count does not fit is an error, never a flat copy."""
    classifier, _ = _nets(tmp_path)
    (tmp_path / 'other.prototxt').write_text(fcn_text(20).replace(
        "name: 'fc6' type: 'Convolution' bottom: 'conv2_1' top: 'fc6' convolution_param { "
        "num_output: 8 kernel_size: 3 }", "name: 'fc6' type: 'Convolution' bottom: 'conv2_1' "
        "top: 'fc6' convolution_param { num_output: 8 kernel_size: 2 }"))
    other = caffe.Net(str(tmp_path / 'other.prototxt'), caffe.TEST)
    with pytest.raises(SurgeryError, match=r'param 0 of layer "fc6" \(8, 54\) into '
                                           r'layer "fc6" \(8, 6, 2, 2\)'):
        transplant(other, classifier, verbose=False)


def _score_net(tmp_path, name, classes, extra=''):
    path = tmp_path / f'{name}{classes}.prototxt'
    path.write_text(textwrap.dedent(f'''
        layer {{ name: 'x' type: 'Input' top: 'x' input_param {{ shape {{ dim: 1 dim: 4 dim: 2 dim: 2 }} }} }}
        layer {{ name: '{name}' type: 'Convolution' bottom: 'x' top: 's'
                convolution_param {{ num_output: {classes} kernel_size: 1 {extra} }} }}'''))
    return caffe.Net(str(path), caffe.TEST)


def test_expand_score_fills_the_first_classes(tmp_path):
    """A 3-class scorer lands in the first 3 outputs of a 5-class one, 1-D bias included."""
    old, new = _score_net(tmp_path, 'score', 3), _score_net(tmp_path, 'score', 5)
    old.params['score'][0].data[...] = np.arange(12).reshape(3, 4, 1, 1)
    old.params['score'][1].data[...] = [7, 8, 9]
    assert expand_score(new, 'score', old, 'score') == 3
    np.testing.assert_array_equal(new.params['score'][0].data[:3, :, 0, 0],
                                  np.arange(12).reshape(3, 4))
    np.testing.assert_array_equal(new.params['score'][1].data, [7, 8, 9, 0, 0])


def test_catch_expand_score_into_fewer_classes(tmp_path):
    """Expanding into fewer classes is refused with both shapes."""
    old, new = _score_net(tmp_path, 'score', 5), _score_net(tmp_path, 'score', 3)
    with pytest.raises(SurgeryError, match=r'\(5, 4, 1, 1\).*\(3, 4, 1, 1\)'):
        expand_score(new, 'score', old, 'score')


def _first_layer(tmp_path, name, channels):
    path = tmp_path / f'{name}.prototxt'
    path.write_text(f"layer {{ name: 'x' type: 'Input' top: 'x' input_param {{ shape {{ "
                    f"dim: 1 dim: {channels} dim: 2 dim: 2 }} }} }}\nlayer {{ name: '{name}' "
                    f"type: 'Convolution' bottom: 'x' top: 's' convolution_param {{ "
                    f"num_output: 3 kernel_size: 1 }} }}")
    return caffe.Net(str(path), caffe.TEST)


def test_color_d_adds_the_mean_filter_for_depth(tmp_path):
    """conv1_1_bgrd keeps conv1_1's BGR filters and gets their channel mean for depth."""
    rgb, bgrd = _first_layer(tmp_path, 'conv1_1', 3), _first_layer(tmp_path, 'conv1_1_bgrd', 4)
    weights = np.random.RandomState(2).randn(3, 3, 1, 1).astype(np.float32)
    rgb.params['conv1_1'][0].data[...] = weights
    rgb.params['conv1_1'][1].data[...] = [1, 2, 3]
    color_d(bgrd, rgb)
    got = bgrd.params['conv1_1_bgrd'][0].data
    np.testing.assert_array_equal(got[:, :3], weights)
    np.testing.assert_allclose(got[:, 3], weights.mean(axis=1), rtol=1e-6)
    np.testing.assert_array_equal(bgrd.params['conv1_1_bgrd'][1].data, [1, 2, 3])


def test_catch_color_d_wrong_first_layer(tmp_path):
    """color_d refuses a target that is not the 4-channel twin of conv1_1."""
    rgb, other = _first_layer(tmp_path, 'conv1_1', 3), _first_layer(tmp_path, 'conv1_1_bgrd', 3)
    with pytest.raises(SurgeryError, match=r'expected \(3, 4, 1, 1\)'):
        color_d(other, rgb)


def test_transfer_keeps_new_layers_at_zero(tmp_path):
    """Stage transfer copies same-named layers and reports the new ones left at zero."""
    classifier, fcn32 = _nets(tmp_path, fc8='score_fr')
    transplant(fcn32, classifier, verbose=False)
    fcn32.params['score_fr'][0].data[...] = 0.5
    fcn32.save(str(tmp_path / 'stage1.caffemodel'))
    (tmp_path / 'next.prototxt').write_text(
        fcn_text(20, 'score_fr') + "layer { name: 'score_pool1' type: 'Convolution' "
        "bottom: 'pool1' top: 'sp' convolution_param { num_output: 5 kernel_size: 1 } }")
    fcn16 = caffe.Net(str(tmp_path / 'next.prototxt'), caffe.TEST)
    report = transfer(fcn16, tmp_path / 'stage1.caffemodel', verbose=False)
    assert report.layers('left at init') == ['score_pool1']
    assert (fcn16.params['score_fr'][0].data == 0.5).all()
    assert not fcn16.params['score_pool1'][0].data.any()
