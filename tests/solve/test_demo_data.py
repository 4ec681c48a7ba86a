"""solve.demo_data: the demo's sets in the real formats, readable by the data layers."""
import hashlib

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from dataset_fixtures import data_net, read_rgb, set_dataset_env
from data_layers.voc import VOC_MEAN
from solve import demo_data, vis

N_CLASSES = len(demo_data.CLASSES)


@pytest.fixture(scope='module')
def seg(tmp_path_factory):
    return demo_data.make_segmentation_set(tmp_path_factory.mktemp('seg') / 'voc', n_train=6,
                                           n_val=3, size=64, seed=5)


@pytest.fixture(scope='module')
def cls(tmp_path_factory):
    return demo_data.make_classification_set(tmp_path_factory.mktemp('cls') / 'classes',
                                             n_per_class=3, size=32, seed=5,
                                             n_val_per_class=2)


def digest(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob('*')) if p.is_file()}


def labels(root):
    ids = [i for split in ('train', 'val') for i in
           (root / 'ImageSets' / 'Segmentation' / f'{split}.txt').read_text().split()]
    return {i: np.array(Image.open(root / 'SegmentationClass' / f'{i}.png')) for i in ids}


def test_voc_layout(seg):
    """Split lists of ids, a JPEG and a same-sized palette PNG per id, VOC's palette."""
    train = (seg / 'ImageSets' / 'Segmentation' / 'train.txt').read_text().split()
    val = (seg / 'ImageSets' / 'Segmentation' / 'val.txt').read_text().split()
    assert len(train) == 6 and len(val) == 3 and not set(train) & set(val)
    for i in train + val:
        with Image.open(seg / 'JPEGImages' / f'{i}.jpg') as image:
            assert image.format == 'JPEG' and image.mode == 'RGB' and image.size == (64, 64)
        with Image.open(seg / 'SegmentationClass' / f'{i}.png') as png:
            assert png.format == 'PNG' and png.mode == 'P' and png.size == (64, 64)
            palette = np.array(png.getpalette()[:3 * 256]).reshape(-1, 3)
            np.testing.assert_array_equal(palette, vis.make_palette(256))
    assert (seg / 'labels.txt').read_text().split() == list(demo_data.CLASSES)


def test_label_values_and_classes_present(seg):
    """Labels are class indices 0-5 or void 255; across the set every class appears."""
    values = np.unique(np.concatenate([label.ravel() for label in labels(seg).values()]))
    assert set(values) <= set(range(N_CLASSES)) | {255}
    assert set(values) == set(range(N_CLASSES)) | {255}


def test_void_band_on_the_outside_of_objects(seg):
    """Background never touches an object directly: a void band lies between them, 1 px
    wide (2 where an occluded object's edge turned void too), so every void pixel lies
    within 2 px of a labelled object pixel."""
    for label in labels(seg).values():
        objects = (label > 0) & (label < 255)
        assert not (ndimage.binary_dilation(objects, np.ones((3, 3), bool)) &
                    (label == 0)).any()
        assert ndimage.binary_dilation(objects, np.ones((5, 5), bool))[label == 255].all()
        assert 0 < (label == 255).mean() < 0.35


def test_thin_bars_survive_the_void_band():
    """Bars 1-3 px wide keep their label (a band inside the object would erase them)."""
    rng = np.random.default_rng(0)
    widths = []
    for _ in range(20):
        _, label = demo_data.draw_scene(rng, (96, 96))
        bars = label == demo_data.CLASSES.index('bar')
        if bars.any():
            widths.append(ndimage.distance_transform_edt(bars).max())
    assert widths and min(widths) <= 1.5   # some bar is at most ~2 px wide


def test_classification_layout(cls):
    """ImageData-style lists, class folders, labels 0-4 balanced, labels.txt in order."""
    for split, count in (('train', 3), ('val', 2)):
        lines = [line.split() for line in (cls / f'{split}.txt').read_text().splitlines()]
        assert len(lines) == count * len(demo_data.SHAPES)
        for path, label in lines:
            kind = demo_data.SHAPES[int(label)]
            assert path.startswith(f'{kind}/') and path.endswith('.jpg')
            with Image.open(cls / path) as image:
                assert image.mode == 'RGB' and image.size == (32, 32)
        assert sorted(int(label) for _, label in lines) == \
            sorted(list(range(len(demo_data.SHAPES))) * count)
    assert (cls / 'labels.txt').read_text().split() == list(demo_data.SHAPES)


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    a = demo_data.make_segmentation_set(tmp_path / 'a', 2, 1, 32, seed=3)
    b = demo_data.make_segmentation_set(tmp_path / 'b', 2, 1, 32, seed=3)
    c = demo_data.make_segmentation_set(tmp_path / 'c', 2, 1, 32, seed=4)
    assert digest(a) == digest(b) and digest(a) != digest(c)
    d = demo_data.make_classification_set(tmp_path / 'd', 1, 32, seed=3)
    e = demo_data.make_classification_set(tmp_path / 'e', 1, 32, seed=3)
    assert digest(d) == digest(e)


def test_read_by_the_voc_layout_layer(tmp_path, seg, monkeypatch):
    """VOCLayoutSegDataLayer with dataset 'demo_voc' reads the scenes as VOC's layer would."""
    set_dataset_env(monkeypatch, demo_voc=seg)
    net = data_net(tmp_path, 'data_layers.voc', 'VOCLayoutSegDataLayer',
                   "{'split': 'val', 'randomize': False, 'dataset': 'demo_voc'}",
                   ['data', 'label'])
    first = (seg / 'ImageSets' / 'Segmentation' / 'val.txt').read_text().split()[0]
    out = net.forward()
    rgb = read_rgb(seg / 'JPEGImages' / f'{first}.jpg')
    np.testing.assert_allclose(out['data'][0], (rgb[:, :, ::-1] - np.float32(VOC_MEAN))
                               .transpose(2, 0, 1), atol=1e-4)
    np.testing.assert_array_equal(out['label'][0, 0], labels(seg)[first])


def test_voc_layout_layer_needs_a_dataset(tmp_path, seg, monkeypatch):
    from data_layers.base import ParamStrError
    set_dataset_env(monkeypatch, demo_voc=seg)
    with pytest.raises(ParamStrError, match="lacks the required key 'dataset'"):
        data_net(tmp_path, 'data_layers.voc', 'VOCLayoutSegDataLayer',
                 "{'split': 'val', 'randomize': False}", ['data', 'label'])


def test_read_by_the_classification_layer(tmp_path, cls, monkeypatch):
    set_dataset_env(monkeypatch, demo_classes=cls)
    net = data_net(tmp_path, 'data_layers.classification', 'ClassificationDataLayer',
                   "{'split': 'val', 'randomize': False, 'batch_size': 5, 'classes': 5}",
                   ['data', 'label'])
    out = net.forward()
    assert out['data'].shape == (5, 3, 32, 32)
    first = [line.split() for line in (cls / 'val.txt').read_text().splitlines()][:5]
    assert out['label'].tolist() == [float(label) for _, label in first]
