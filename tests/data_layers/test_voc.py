"""VOCSegDataLayer and SBDDSegDataLayer: tops from the files as the reference loads them."""
import random

import numpy as np
import pytest
import scipy.io
from PIL import Image

from data_layers.base import BadDataError, SampleMissingError
from data_layers.voc import VOC_MEAN
from dataset_fixtures import data_net, make_sbdd, make_voc, read_rgb, set_dataset_env

SEQ = "{'split': 'train', 'randomize': False}"


@pytest.fixture
def voc(tmp_path, monkeypatch):
    root = make_voc(tmp_path / 'voc', sizes=(6, 8), seed=3)
    set_dataset_env(monkeypatch, voc=root)
    return root


@pytest.fixture
def sbdd(tmp_path, monkeypatch):
    root = make_sbdd(tmp_path / 'sbdd', sizes=(5, 7), seed=4)
    set_dataset_env(monkeypatch, sbdd=root)
    return root


def voc_net(tmp_path, param_str=SEQ):
    return data_net(tmp_path, 'data_layers.voc', 'VOCSegDataLayer', param_str,
                    ['data', 'label'])


def sbdd_net(tmp_path, param_str=SEQ):
    return data_net(tmp_path, 'data_layers.voc', 'SBDDSegDataLayer', param_str,
                    ['data', 'label'])


def expected_data(path, mean):
    return (read_rgb(path)[:, :, ::-1] - np.array(mean, dtype=np.float32)).transpose(2, 0, 1)


def test_voc_tops_shapes_and_dtypes(tmp_path, voc):
    """data is 1x3xHxW and label 1x1xHxW, both float32 blobs."""
    out = voc_net(tmp_path).forward()
    assert out['data'].shape == (1, 3, 6, 8) and out['label'].shape == (1, 1, 6, 8)
    assert out['data'].dtype == out['label'].dtype == np.float32


def test_voc_data_is_bgr_minus_mean(tmp_path, voc):
    """data equals the decoded JPEG, channels reversed, minus the default mean, in CHW."""
    net = voc_net(tmp_path)
    for i in ('2007_000032', '2007_000039'):
        np.testing.assert_allclose(net.forward()['data'][0],
                                   expected_data(voc / 'JPEGImages' / f'{i}.jpg', VOC_MEAN),
                                   rtol=0, atol=1e-4)


def test_voc_channel_order_on_a_red_image(tmp_path, voc):
    """A pure red image lands in channel 2 (R of BGR), not channel 0."""
    red = np.zeros((6, 8, 3), dtype=np.uint8)
    red[..., 0] = 255
    Image.fromarray(red).save(voc / 'JPEGImages' / '2007_000032.jpg', quality=100)
    data = voc_net(tmp_path).forward()['data'][0] + np.array(VOC_MEAN, np.float32)[:, None,
                                                                                    None]
    assert np.abs(data[2] - 255).max() <= 3 and np.abs(data[0]).max() <= 3


def test_voc_mean_param_is_used(tmp_path, voc):
    """A mean given in param_str replaces the default."""
    mean = (1.0, 2.0, 3.0)
    out = voc_net(tmp_path, "{'split': 'train', 'randomize': False, 'mean': (1, 2, 3)}")
    np.testing.assert_allclose(out.forward()['data'][0],
                               expected_data(voc / 'JPEGImages' / '2007_000032.jpg', mean),
                               atol=1e-4)


def test_voc_label_is_palette_indices(tmp_path, voc):
    """label holds the PNG's palette indices as they are, 255 (void) included."""
    label = voc_net(tmp_path).forward()['label'][0, 0]
    indices = np.array(Image.open(voc / 'SegmentationClass' / '2007_000032.png'))
    np.testing.assert_array_equal(label, indices)
    assert (label == 255).any() and label[label != 255].max() <= 20


def test_sbdd_label_is_gtcls_segmentation(tmp_path, sbdd):
    """label equals mat['GTcls'][0]['Segmentation'][0], the reference's expression."""
    label = sbdd_net(tmp_path).forward()['label'][0, 0]
    mat = scipy.io.loadmat(str(sbdd / 'cls' / '2008_000002.mat'))
    np.testing.assert_array_equal(label, mat['GTcls'][0]['Segmentation'][0])


def test_sbdd_data_is_bgr_minus_mean(tmp_path, sbdd):
    """SBDD's data comes from img/{id}.jpg as BGR minus the mean."""
    np.testing.assert_allclose(sbdd_net(tmp_path).forward()['data'][0],
                               expected_data(sbdd / 'img' / '2008_000002.jpg', VOC_MEAN),
                               atol=1e-4)


def test_sbdd_train_random_as_in_net_py(tmp_path, sbdd):
    """The nets' training layer (seed 1337, randomize) starts at Random(1337)'s first draw."""
    net = sbdd_net(tmp_path, "{'split': 'train', 'seed': 1337, 'randomize': True}")
    first = ('2008_000002', '2008_000003', '2008_000007')[random.Random(1337).randint(0, 2)]
    mat = scipy.io.loadmat(str(sbdd / 'cls' / f'{first}.mat'))
    np.testing.assert_array_equal(net.forward()['label'][0, 0],
                                  mat['GTcls'][0]['Segmentation'][0])


def test_catch_missing_image(tmp_path, voc):
    """A listed id without its JPEG names the id, the path and the fix."""
    (voc / 'JPEGImages' / '2007_000032.jpg').unlink()
    with pytest.raises(SampleMissingError, match=r'id "2007_000032" is listed in split "train" '
                                                 r'but its data file .*2007_000032\.jpg does '
                                                 r'not exist\. Remove the id'):
        voc_net(tmp_path)


def test_catch_missing_label(tmp_path, sbdd):
    """A listed id without its .mat names the label file."""
    (sbdd / 'cls' / '2008_000002.mat').unlink()
    with pytest.raises(SampleMissingError, match=r'its label file .*cls/2008_000002\.mat'):
        sbdd_net(tmp_path)


def test_catch_unreadable_image(tmp_path, voc):
    """A file that is not an image is reported with its path and id."""
    (voc / 'JPEGImages' / '2007_000032.jpg').write_bytes(b'not a jpeg')
    with pytest.raises(BadDataError, match=r'cannot read the data image .*2007_000032\.jpg '
                                           r'\(id "2007_000032"\)'):
        voc_net(tmp_path)


def test_catch_label_size_differs(tmp_path, monkeypatch):
    """A label whose HxW differs from its image names both sizes and both files."""
    root = make_voc(tmp_path / 'v', ids=('x',), sizes=(6, 8),
                    labels={'x': np.zeros((5, 8), np.uint8)})
    set_dataset_env(monkeypatch, voc=root)
    with pytest.raises(BadDataError, match=r'id "x": label is 5x8 \(HxW, .*x\.png\) but data '
                                           r'is 6x8 \(.*x\.jpg\)'):
        voc_net(tmp_path)


def test_catch_voc_label_out_of_range(tmp_path, monkeypatch):
    """A VOC label value of 21 (not a class, not 255) is named with its file and id."""
    label = np.zeros((6, 8), np.uint8)
    label[2, 3] = 21
    set_dataset_env(monkeypatch, voc=make_voc(tmp_path / 'v', ids=('x',), labels={'x': label}))
    with pytest.raises(BadDataError, match=r'label value 21 in .*x\.png \(id "x", top label\) '
                                           r'is outside \[0, 21\) and is not 255'):
        voc_net(tmp_path)


def test_catch_sbdd_label_out_of_range(tmp_path, monkeypatch):
    """An SBD Segmentation value of 40 is refused."""
    label = np.full((6, 8), 40, np.uint8)
    set_dataset_env(monkeypatch, sbdd=make_sbdd(tmp_path / 's', ids=('x',),
                                                labels={'x': label}))
    with pytest.raises(BadDataError, match=r'label value 40 in .*x\.mat'):
        sbdd_net(tmp_path)


def test_catch_colour_label_png(tmp_path, voc):
    """A label saved as an RGB picture instead of palette indices is refused."""
    Image.new('RGB', (8, 6), (128, 0, 0)).save(voc / 'SegmentationClass' / '2007_000032.png')
    with pytest.raises(BadDataError, match=r'reads as shape \(6, 8, 3\); expected palette '
                                           r'indices'):
        voc_net(tmp_path)


def test_catch_sbdd_mat_without_gtcls(tmp_path, sbdd):
    """A .mat without GTcls lists the variables it has."""
    scipy.io.savemat(str(sbdd / 'cls' / '2008_000002.mat'), {'GTinst': np.zeros((5, 7))})
    with pytest.raises(BadDataError, match=r'has no variable "GTcls"; it holds \[\'GTinst\'\]'):
        sbdd_net(tmp_path)


def test_catch_sbdd_gtcls_not_a_struct(tmp_path, sbdd):
    """A GTcls that is a plain array (no Segmentation field) is refused."""
    scipy.io.savemat(str(sbdd / 'cls' / '2008_000002.mat'), {'GTcls': np.zeros((5, 7))})
    with pytest.raises(BadDataError, match=r'GTcls in .*2008_000002\.mat .* is not a 1x1 '
                                           r'struct with a Segmentation field'):
        sbdd_net(tmp_path)


def test_catch_unreadable_mat(tmp_path, sbdd):
    """A .mat that is not a MATLAB file is reported with its path and id."""
    (sbdd / 'cls' / '2008_000002.mat').write_bytes(b'garbage' * 30)
    with pytest.raises(BadDataError, match=r'cannot read the label file .*2008_000002\.mat '
                                           r'\(id "2008_000002", 210 bytes\) as a MATLAB '
                                           r'\.mat file'):
        sbdd_net(tmp_path)


@pytest.mark.parametrize('cut', [100, 128, 200, 400])
def test_catch_truncated_mat(tmp_path, sbdd, cut):
    """A real .mat cut short (100 bytes: scipy raised a bare IndexError) is named damaged or
    truncated, with its size and how to get the dataset whole."""
    path = sbdd / 'cls' / '2008_000002.mat'
    path.write_bytes(path.read_bytes()[:cut])
    with pytest.raises(BadDataError, match=rf'2008_000002\.mat \(id "2008_000002", {cut} bytes\)'
                                           r' .*damaged or truncated.*data_layers\.fetch sbdd'):
        sbdd_net(tmp_path).forward()


def test_catch_greyscale_image(tmp_path, voc):
    """A one-channel JPEG is refused: the layer needs RGB to reverse into BGR."""
    Image.new('L', (8, 6), 90).save(voc / 'JPEGImages' / '2007_000032.jpg')
    with pytest.raises(BadDataError, match=r'data image .*2007_000032\.jpg \(id "2007_000032"\)'
                                           r' has shape \(6, 8\); expected an RGB image'):
        voc_net(tmp_path)
