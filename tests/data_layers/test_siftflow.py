"""SIFTFlowSegDataLayer: data with semantic and geometric labels remapped as the reference."""
import numpy as np
import pytest
import scipy.io

from data_layers.base import BadDataError, SampleMissingError
from data_layers.siftflow import SIFTFLOW_MEAN
from dataset_fixtures import (SIFTFLOW_CATEGORY, data_net, make_siftflow, read_rgb,
                              set_dataset_env)

TOPS = ['data', 'sem', 'geo']


def siftflow_net(tmp_path, param_str="{'split': 'trainval', 'randomize': False}"):
    return data_net(tmp_path, 'data_layers.siftflow', 'SIFTFlowSegDataLayer', param_str, TOPS)


@pytest.fixture
def siftflow(tmp_path, monkeypatch):
    root = make_siftflow(tmp_path / 'sf', sizes=(8, 8), seed=6)
    set_dataset_env(monkeypatch, siftflow=root)
    return root


def planted(tmp_path, monkeypatch, sem=None, geo=None):
    sem = np.array([[0, 1, 2], [17, 32, 33]]) if sem is None else sem
    geo = np.array([[-1, 1, 2], [3, 1, -1]]) if geo is None else geo
    set_dataset_env(monkeypatch, siftflow=make_siftflow(
        tmp_path / 'p', ids=('x',), sizes=(2, 3), sem={'x': sem}, geo={'x': geo}))
    return siftflow_net(tmp_path).forward()


def test_tops_shapes_and_dtypes(tmp_path, siftflow):
    """data 1x3xHxW, sem and geo 1x1xHxW, all float32."""
    out = siftflow_net(tmp_path).forward()
    assert out['data'].shape == (1, 3, 8, 8)
    assert out['sem'].shape == out['geo'].shape == (1, 1, 8, 8)
    assert {v.dtype for v in out.values()} == {np.dtype(np.float32)}


def test_data_is_bgr_minus_mean(tmp_path, siftflow):
    """data is the JPEG reversed to BGR minus the SIFT Flow mean, in CHW."""
    path = siftflow / 'Images' / SIFTFLOW_CATEGORY / 'coast_arnat59.jpg'
    expected = (read_rgb(path)[:, :, ::-1] - np.array(SIFTFLOW_MEAN, np.float32))
    np.testing.assert_allclose(siftflow_net(tmp_path).forward()['data'][0],
                               expected.transpose(2, 0, 1), atol=1e-4)


def test_sem_minus_one_void_to_255(tmp_path, monkeypatch):
    """Semantic S 0 (void) becomes 255 and 1-33 become 0-32."""
    out = planted(tmp_path, monkeypatch)
    np.testing.assert_array_equal(out['sem'][0, 0], [[255, 0, 1], [16, 31, 32]])


def test_geo_void_and_shift(tmp_path, monkeypatch):
    """Geometric S -1 (void) becomes 255 and 1-3 become 0-2 (sky, horizontal, vertical)."""
    out = planted(tmp_path, monkeypatch)
    np.testing.assert_array_equal(out['geo'][0, 0], [[255, 0, 1], [2, 0, 255]])


def test_catch_sem_out_of_range(tmp_path, monkeypatch):
    """A semantic S of 34 (33 after the shift) is refused, naming file, id and top."""
    with pytest.raises(BadDataError, match=r'label value 33 in .*SemanticLabels/.*x\.mat \(id '
                                           r'"x", top sem\) is outside \[0, 33\)'):
        planted(tmp_path, monkeypatch, sem=np.full((2, 3), 34))


@pytest.mark.parametrize('value', [2.7, 1.5, np.nan, np.inf])
def test_catch_labels_that_are_no_whole_numbers(tmp_path, monkeypatch, value):
    """2.7 and 1.5 would be truncated to classes 2 and 0, NaN to 0: refused instead."""
    sem = np.ones((2, 3))
    sem[1, 2] = value
    with pytest.raises(BadDataError, match=r'label value .* in .*SemanticLabels/.*x\.mat '
                                           r'\(id "x"\) is not a whole number'):
        planted(tmp_path, monkeypatch, sem=sem)


def test_catch_geo_out_of_range(tmp_path, monkeypatch):
    """A geometric S of 4 (3 after the shift) is refused."""
    with pytest.raises(BadDataError, match=r'label value 3 in .*GeoLabels/.*x\.mat \(id "x", '
                                           r'top geo\) is outside \[0, 3\)'):
        planted(tmp_path, monkeypatch, geo=np.full((2, 3), 4))


def test_catch_negative_sem(tmp_path, monkeypatch):
    """A negative semantic S would wrap in the uint8 cast; it is refused instead."""
    with pytest.raises(BadDataError, match=r'label value -2\.0 in .*x\.mat \(id "x"\) does not '
                                           r'fit the uint8 labels'):
        planted(tmp_path, monkeypatch, sem=np.full((2, 3), -2))


def test_catch_missing_geo(tmp_path, siftflow):
    """A missing GeoLabels file names the id and the path."""
    (siftflow / 'GeoLabels' / SIFTFLOW_CATEGORY / 'coast_arnat59.mat').unlink()
    with pytest.raises(SampleMissingError, match=r'id "coast_arnat59" .* geo file .*GeoLabels'):
        siftflow_net(tmp_path)


def test_catch_mat_without_s(tmp_path, siftflow):
    """A label .mat without the variable S says which variables it has."""
    scipy.io.savemat(str(siftflow / 'SemanticLabels' / SIFTFLOW_CATEGORY / 'coast_arnat59.mat'),
                     {'L': np.zeros((8, 8))})
    with pytest.raises(BadDataError, match=r'has no variable "S"; it holds \[\'L\'\]'):
        siftflow_net(tmp_path)


def test_catch_label_not_two_dimensional(tmp_path, monkeypatch):
    """An S that is not an H x W map is refused, naming its shape."""
    with pytest.raises(BadDataError, match=r'sem labels in .*x\.mat \(id "x"\) have shape '
                                           r'\(2, 3, 2\); expected an H x W array'):
        planted(tmp_path, monkeypatch, sem=np.ones((2, 3, 2)))
