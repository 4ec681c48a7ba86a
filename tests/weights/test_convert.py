"""weights.convert: an ImageNet-style V1 caffemodel becomes an FCN initialisation."""
import numpy as np
import pytest

import caffe_torch as caffe
from caffe_torch import formats
from classifier_fixtures import fcn_text, write_v1_classifier
from weights import convert


def _convert(tmp_path, fcn='fcn.prototxt', *extra):
    prototxt, weights = write_v1_classifier(tmp_path)
    args = convert.get_args_parser().parse_args(
        ['custom', '--classifier-net', str(prototxt), '--fcn-net', str(tmp_path / fcn),
         '--input', str(weights), '--output', str(tmp_path / 'init.caffemodel'), '--quiet',
         *extra])
    return convert.main(args)


def test_converted_file_initialises_the_fcn_with_only_scorers_left(tmp_path):
    """The converted caffemodel holds the trunk only; an FCN with its own score layer loads
    it with every layer matched except the new scorer, which stays zero."""
    (tmp_path / 'fcn.prototxt').write_text(fcn_text(20, fc8='score_fr'))
    assert _convert(tmp_path) == 0
    saved = formats.read_net_binary(tmp_path / 'init.caffemodel')
    assert [l.name for l in saved.layer] == ['conv1_1', 'conv2_1', 'fc6', 'fc7']
    net = caffe.Net(str(tmp_path / 'fcn.prototxt'), caffe.TEST,
                    weights=str(tmp_path / 'init.caffemodel'))
    for layer in saved.layer:
        for blob, proto in zip(net.params[layer.name], layer.blobs):
            np.testing.assert_array_equal(blob.data.ravel(), np.array(proto.data))
    assert not net.params['score_fr'][0].data.any()
    assert net.params['fc6'][0].data.shape == (8, 6, 3, 3)


def test_catch_missing_classifier_weights(tmp_path, capsys):
    """A missing input file is reported without a stack trace (exit 2)."""
    (tmp_path / 'fcn.prototxt').write_text(fcn_text(20))
    args = convert.get_args_parser().parse_args(
        ['custom', '--classifier-net', str(tmp_path / 'none.prototxt'), '--fcn-net',
         str(tmp_path / 'fcn.prototxt'), '--input', str(tmp_path / 'none.caffemodel'),
         '--output', str(tmp_path / 'out.caffemodel')])
    assert convert.main(args) == 2
    assert 'none.prototxt: no such file' in capsys.readouterr().err


def test_catch_custom_without_paths():
    """A custom conversion names the options it lacks."""
    args = convert.get_args_parser().parse_args(['custom'])
    with pytest.raises(SystemExit, match='--classifier-net, --fcn-net, --input, --output'):
        convert.main(args)
