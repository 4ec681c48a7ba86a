"""NYUDSegDataLayer: color, depth, HHA and label tops, in the order param_str gives."""
import numpy as np
import pytest
from PIL import Image

from data_layers.base import DataLayerSetupError
from data_layers.base import BadDataError, ParamStrError
from data_layers.nyud import COLOR_MEAN, HHA_MEAN, LOG_DEPTH_MEAN
from dataset_fixtures import data_net, make_nyud, read_rgb, set_dataset_env

ALL = ['color', 'depth', 'hha', 'label']


@pytest.fixture
def nyud(tmp_path, monkeypatch):
    root = make_nyud(tmp_path / 'nyud', sizes=(5, 6), seed=5)
    set_dataset_env(monkeypatch, nyud=root)
    return root


def nyud_net(tmp_path, tops=ALL, blobs=None, split='trainval'):
    param_str = f"{{'split': '{split}', 'tops': {list(tops)!r}, 'randomize': False}}"
    return data_net(tmp_path, 'data_layers.nyud', 'NYUDSegDataLayer', param_str,
                    blobs or list(tops))


def test_tops_follow_the_param_order(tmp_path, nyud):
    """Tops come in the order of the tops key, each 1 x C x H x W."""
    out = nyud_net(tmp_path, ['label', 'hha', 'depth']).forward()
    assert out['label'].shape == (1, 1, 5, 6) and out['hha'].shape == (1, 3, 5, 6)
    assert out['depth'].shape == (1, 1, 5, 6)


def test_color_is_bgr_minus_mean(tmp_path, nyud):
    """color is the PNG reversed to BGR minus the colour mean, in CHW."""
    expected = (read_rgb(nyud / 'data/images/img_5001.png')[:, :, ::-1]
                - np.array(COLOR_MEAN, np.float32)).transpose(2, 0, 1)
    np.testing.assert_allclose(nyud_net(tmp_path).forward()['color'][0], expected, atol=1e-4)


def test_hha_keeps_file_channel_order(tmp_path, nyud):
    """hha is the PNG minus the HHA mean with no channel swap, as the reference."""
    expected = (read_rgb(nyud / 'data/hha/img_5001.png')
                - np.array(HHA_MEAN, np.float32)).transpose(2, 0, 1)
    np.testing.assert_allclose(nyud_net(tmp_path).forward()['hha'][0], expected, atol=1e-4)


def test_depth_is_log_minus_mean(tmp_path, nyud):
    """depth is the natural log of the 16-bit PNG minus 7.844, one channel."""
    raw = np.array(Image.open(nyud / 'data/depth/img_5001.png'), dtype=np.float64)
    np.testing.assert_allclose(nyud_net(tmp_path).forward()['depth'][0, 0],
                               np.log(raw) - LOG_DEPTH_MEAN, atol=1e-4)


def test_label_minus_one_void_to_255(tmp_path, monkeypatch):
    """Stored 0 (void) becomes 255 and classes 1-40 become 0-39."""
    stored = np.array([[0, 1, 2], [20, 39, 40]], dtype=np.uint8)
    set_dataset_env(monkeypatch, nyud=make_nyud(tmp_path / 'n', ids=('7',), sizes=(2, 3),
                                                labels={'7': stored}))
    label = nyud_net(tmp_path, ['label']).forward()['label'][0, 0]
    np.testing.assert_array_equal(label, [[255, 0, 1], [19, 38, 39]])


def test_catch_tops_missing(tmp_path, nyud):
    """tops is required."""
    with pytest.raises(ParamStrError, match=r"lacks the required key 'tops'"):
        data_net(tmp_path, 'data_layers.nyud', 'NYUDSegDataLayer',
                 "{'split': 'trainval', 'randomize': False}", ['color'])


def test_catch_unknown_top_name(tmp_path, nyud):
    """A top name outside color, depth, hha, label is refused."""
    with pytest.raises(ParamStrError, match=r"tops=\['rgb'\], but tops must be a non-empty "
                                            r'list of distinct names'):
        nyud_net(tmp_path, ['rgb'])


def test_catch_top_count_mismatch(tmp_path, nyud):
    """Declaring fewer top blobs than tops entries is refused."""
    with pytest.raises(DataLayerSetupError, match=r'produces 2 top\(s\) \(color, label\)'):
        nyud_net(tmp_path, ['color', 'label'], blobs=['color'])


def test_catch_depth_not_positive(tmp_path, monkeypatch):
    """A depth map with zeros is refused: its log would be -inf."""
    depth = np.full((5, 6), 1000, np.uint16)
    depth[0, 0] = 0
    set_dataset_env(monkeypatch, nyud=make_nyud(tmp_path / 'n', ids=('7',), sizes=(5, 6),
                                                depths={'7': depth}))
    with pytest.raises(BadDataError, match=r'depth image .*img_7\.png \(id "7"\) has 1 '
                                           r'pixel\(s\) <= 0'):
        nyud_net(tmp_path, ['depth'])


def test_catch_label_out_of_range(tmp_path, monkeypatch):
    """A stored label of 41 (40 after the shift) is refused, naming file and id."""
    set_dataset_env(monkeypatch, nyud=make_nyud(tmp_path / 'n', ids=('7',), sizes=(5, 6),
                                                labels={'7': np.full((5, 6), 41)}))
    with pytest.raises(BadDataError, match=r'label value 40 in .*img_7\.mat \(id "7", top '
                                           r'label\) is outside \[0, 40\).*minus 1'):
        nyud_net(tmp_path, ['label'])


def test_catch_hha_size_differs(tmp_path, nyud):
    """An HHA image of another size than the colour image names both."""
    Image.new('RGB', (6, 4)).save(nyud / 'data/hha/img_5001.png')
    with pytest.raises(BadDataError, match=r'id "5001": hha is 4x6 .* but color is 5x6'):
        nyud_net(tmp_path, ['color', 'hha'])


def test_catch_missing_depth(tmp_path, nyud):
    """A missing depth PNG names the file and the id."""
    (nyud / 'data/depth/img_5001.png').unlink()
    with pytest.raises(FileNotFoundError, match=r'id "5001" .* depth file .*img_5001\.png'):
        nyud_net(tmp_path, ['depth'])
