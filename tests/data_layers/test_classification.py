"""ClassificationDataLayer: batches of (image, label) from an ImageData-style list."""
import random

import numpy as np
import pytest
from PIL import Image

from backend import caffe
from data_layers.base import BadDataError, ParamStrError, SampleMissingError
from data_layers.paths import DatasetMissingError
from data_layers.voc import VOC_MEAN
from dataset_fixtures import data_net, read_rgb, set_dataset_env

LAYER = ('data_layers.classification', 'ClassificationDataLayer')
ENTRIES = [(f'c{k % 3}/img{k}.png', k % 3) for k in range(5)]


def write_set(root, entries=ENTRIES, size=(4, 6), split='train', seed=0, grey=()):
    """PNG images (lossless, so values can be compared) listed as "<path> <label>" lines;
    image k is filled with the value 10 k + channel, plus noise, to tell them apart."""
    rng = np.random.default_rng(seed)
    for k, (path, _) in enumerate(entries):
        array = (10 * k + np.arange(3) + rng.integers(0, 5, size + (3,))).astype(np.uint8)
        file = root / path
        file.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(array[:, :, 0] if path in grey else array).save(file)
    (root / f'{split}.txt').write_text(''.join(f'{p} {label}\n' for p, label in entries))
    return root


@pytest.fixture
def classes(tmp_path, monkeypatch):
    root = write_set(tmp_path / 'classes')
    set_dataset_env(monkeypatch, demo_classes=root)
    return root


def net_of(tmp_path, param_str, tops=('data', 'label')):
    return data_net(tmp_path, *LAYER, param_str, list(tops))


def expected(root, path, mean=VOC_MEAN):
    return (read_rgb(root / path)[:, :, ::-1] - np.array(mean, np.float32)).transpose(2, 0, 1)


def test_batch_shapes_and_dtypes(tmp_path, classes):
    """data is B x 3 x H x W and label (B,), both float32, as SoftmaxWithLoss reads them."""
    out = net_of(tmp_path, "{'split': 'train', 'randomize': False, 'batch_size': 3}").forward()
    assert out['data'].shape == (3, 3, 4, 6) and out['label'].shape == (3,)
    assert out['data'].dtype == out['label'].dtype == np.float32


def test_batch_size_defaults_to_one(tmp_path, classes):
    out = net_of(tmp_path, "{'split': 'train', 'randomize': False}").forward()
    assert out['data'].shape == (1, 3, 4, 6) and out['label'].shape == (1,)


def test_data_is_bgr_minus_mean_and_labels_follow_the_list(tmp_path, classes):
    """Sequential batches read the list in order and wrap: (0, 1, 2), (3, 4, 0)."""
    net = net_of(tmp_path, "{'split': 'train', 'randomize': False, 'batch_size': 3}")
    for positions in ([0, 1, 2], [3, 4, 0]):
        out = net.forward()
        np.testing.assert_array_equal(out['label'], [ENTRIES[k][1] for k in positions])
        for b, k in enumerate(positions):
            np.testing.assert_allclose(out['data'][b], expected(classes, ENTRIES[k][0]),
                                       rtol=0, atol=1e-4)


def test_mean_param(tmp_path, classes):
    mean = (1.0, 2.0, 3.0)
    out = net_of(tmp_path, f"{{'split': 'train', 'randomize': False, 'mean': {mean}}}").forward()
    np.testing.assert_allclose(out['data'][0], expected(classes, ENTRIES[0][0], mean), atol=1e-4)


def test_random_batches_draw_the_base_layers_sequence(tmp_path, classes):
    """A random batch holds the next B draws of the one-image sequence: a randint start at
    setup, then randint(0, n - 1) per image, from random.Random(seed)."""
    net = net_of(tmp_path, "{'split': 'train', 'randomize': True, 'seed': 7, 'batch_size': 4}")
    rng = random.Random(7)
    draws = [rng.randint(0, 4) for _ in range(12)]
    labels = [label for _ in range(3) for label in net.forward()['label']]
    assert labels == [ENTRIES[k][1] for k in draws]


def test_reshape_does_not_advance(tmp_path, classes):
    """A reshape without forward keeps the pending batch (Caffe may reshape twice)."""
    net = net_of(tmp_path, "{'split': 'train', 'randomize': False, 'batch_size': 2}")
    net.reshape()
    net.reshape()
    np.testing.assert_array_equal(net.forward()['label'], [ENTRIES[0][1], ENTRIES[1][1]])


def test_grey_image_reads_as_three_channels(tmp_path, monkeypatch):
    root = write_set(tmp_path / 'grey', grey={ENTRIES[0][0]})
    set_dataset_env(monkeypatch, demo_classes=root)
    data = net_of(tmp_path, "{'split': 'train', 'randomize': False}").forward()['data'][0]
    grey = read_rgb(root / ENTRIES[0][0])
    for channel in range(3):
        np.testing.assert_allclose(data[channel], grey - VOC_MEAN[channel], atol=1e-4)


def test_dataset_key_reads_another_folder(tmp_path, monkeypatch):
    """'dataset' names the data_layers.paths entry whose folder holds the list and images."""
    root = write_set(tmp_path / 'elsewhere', entries=[('x/a.png', 4)])
    set_dataset_env(monkeypatch, demo_voc=root)
    out = net_of(tmp_path, "{'split': 'train', 'randomize': False, 'dataset': 'demo_voc'}")
    assert out.forward()['label'].tolist() == [4]


def test_catch_unknown_dataset(tmp_path, classes):
    with pytest.raises(ParamStrError, match=r"dataset='imagenet'.*dataset name"):
        net_of(tmp_path, "{'split': 'train', 'randomize': False, 'dataset': 'imagenet'}")


@pytest.mark.parametrize('value', [0, -1, True, 2.0])
def test_catch_bad_batch_size(tmp_path, classes, value):
    with pytest.raises(ParamStrError, match='batch_size'):
        net_of(tmp_path, f"{{'split': 'train', 'randomize': False, 'batch_size': {value}}}")


@pytest.mark.parametrize('line', ['c0/img0.png', 'c0/img0.png -1', 'c0/img0.png x'])
def test_catch_bad_list_line(tmp_path, classes, line):
    """A line that is not "<path> <label int >= 0>" names the entry, the list and the format."""
    (classes / 'train.txt').write_text(f'{line}\n')
    with pytest.raises(BadDataError, match=r'entry 1 of .*train.txt.*ImageData'):
        net_of(tmp_path, "{'split': 'train', 'randomize': False}")


def test_catch_label_outside_classes(tmp_path, classes):
    with pytest.raises(BadDataError, match=r'label 2, outside \[0, 2\)'):
        net_of(tmp_path, "{'split': 'train', 'randomize': False, 'classes': 2}")


def test_catch_missing_image(tmp_path, classes):
    (classes / ENTRIES[1][0]).unlink()
    with pytest.raises(SampleMissingError, match=r'img1.png.*does not exist'):
        net_of(tmp_path, "{'split': 'train', 'randomize': False, 'batch_size': 2}")


def test_catch_mixed_sizes_in_a_batch(tmp_path, monkeypatch):
    root = write_set(tmp_path / 'mixed', entries=ENTRIES[:1])
    write_set(tmp_path / 'mixed', entries=ENTRIES[1:2], size=(5, 6), split='other')
    (root / 'train.txt').write_text(f'{ENTRIES[0][0]} 0\n{ENTRIES[1][0]} 1\n')
    set_dataset_env(monkeypatch, demo_classes=root)
    with pytest.raises(BadDataError, match=r'4x6.*5x6|5x6.*4x6'):
        net_of(tmp_path, "{'split': 'train', 'randomize': False, 'batch_size': 2}")


def test_missing_dataset_says_make_demo(tmp_path, monkeypatch):
    set_dataset_env(monkeypatch, demo_classes=tmp_path / 'absent')
    with pytest.raises(DatasetMissingError, match=r'`make demo` generates it'):
        net_of(tmp_path, "{'split': 'train', 'randomize': False}")


def test_feeds_softmax_loss_and_accuracy(tmp_path, classes):
    """The (B,) label top fits SoftmaxWithLoss and Accuracy over B x C scores."""
    text = ('layer { name: "data" type: "Python" top: "data" top: "label" python_param { '
            'module: "data_layers.classification" layer: "ClassificationDataLayer" '
            'param_str: "{\'split\': \'train\', \'randomize\': False, \'batch_size\': 5}" } }\n'
            'layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc" '
            'inner_product_param { num_output: 3 } }\n'
            'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" '
            'top: "loss" }\n'
            'layer { name: "acc" type: "Accuracy" bottom: "fc" bottom: "label" top: "acc" }\n')
    (tmp_path / 'net.prototxt').write_text(text)
    out = caffe.Net(str(tmp_path / 'net.prototxt'), caffe.TRAIN).forward()
    assert float(out['loss']) == pytest.approx(np.log(3), rel=1e-5)   # zero weights
    assert 0 <= float(out['acc']) <= 1
