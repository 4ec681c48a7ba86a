"""Fillers: Caffe's formulas (filler.hpp), checked by value or by statistics on big blobs."""
import math

import numpy as np
import pytest

from caffe_torch import mode
from caffe_torch.blob import Blob
from caffe_torch.fillers import bilinear_kernel, fill
from caffe_torch.proto import caffe_pb2


def _filled(shape, **fields):
    mode.set_random_seed(1701)
    blob = Blob(shape)
    fill(blob, caffe_pb2.FillerParameter(**fields))
    return blob.data.astype(np.float64)


def test_constant_default_is_zero():
    """A filler with no fields is Caffe's default: constant 0."""
    assert (_filled((3, 4)) == 0).all()
    assert (_filled((3, 4), type='constant', value=2.5) == 2.5).all()


def test_uniform_range_and_mean():
    """uniform draws within [min, max] with the midpoint as mean."""
    x = _filled((200, 500), type='uniform', min=-2, max=6)
    assert x.min() >= -2 and x.max() <= 6
    assert x.mean() == pytest.approx(2, abs=0.05)


def test_gaussian_mean_and_std():
    """gaussian has the requested mean and standard deviation."""
    x = _filled((200, 500), type='gaussian', mean=1.5, std=0.5)
    assert x.mean() == pytest.approx(1.5, abs=0.01)
    assert x.std() == pytest.approx(0.5, abs=0.01)


def test_gaussian_sparse_keeps_sparse_over_num_outputs():
    """With sparse = s, a weight survives with probability s / shape[0]."""
    x = _filled((20, 100, 10), type='gaussian', std=1, sparse=5)
    assert (x != 0).mean() == pytest.approx(5 / 20, abs=0.02)


def test_positive_unitball_rows_sum_to_one():
    """positive_unitball: non-negative, each of the shape[0] rows sums to 1."""
    x = _filled((7, 3, 4), type='positive_unitball')
    assert (x >= 0).all()
    np.testing.assert_allclose(x.reshape(7, -1).sum(axis=1), 1, rtol=1e-5)


@pytest.mark.parametrize('norm, n', [('FAN_IN', 64 * 9), ('FAN_OUT', 128 * 9),
                                     ('AVERAGE', (64 * 9 + 128 * 9) / 2)])
def test_xavier_bound(norm, n):
    """xavier is U(-a, a) with a = sqrt(3 / n), n by variance_norm."""
    x = _filled((128, 64, 3, 3), type='xavier',
                variance_norm=caffe_pb2.FillerParameter.VarianceNorm.Value(norm))
    bound = math.sqrt(3 / n)
    assert np.abs(x).max() <= bound
    assert np.abs(x).max() > 0.98 * bound
    assert x.std() == pytest.approx(bound / math.sqrt(3), rel=0.02)


def test_msra_std():
    """msra is N(0, sqrt(2 / fan_in))."""
    x = _filled((128, 64, 3, 3), type='msra')
    assert x.std() == pytest.approx(math.sqrt(2 / (64 * 9)), rel=0.02)
    assert x.mean() == pytest.approx(0, abs=0.002)


def _bilinear_by_hand(size):
    """The kernel from Caffe's BilinearFiller formula, computed with plain loops."""
    f = math.ceil(size / 2)
    c = (size - 1) / (2 * f)
    return np.array([[(1 - abs(x / f - c)) * (1 - abs(y / f - c)) for x in range(size)]
                     for y in range(size)])


@pytest.mark.parametrize('size', [2, 3, 4, 6, 7, 16, 63, 64])
def test_bilinear_formula(size):
    """bilinear fills every (out, in) pair with the symmetric kernel, odd sizes included."""
    x = _filled((2, 3, size, size), type='bilinear')
    expected = _bilinear_by_hand(size)
    np.testing.assert_allclose(x[1, 2], expected, rtol=1e-6)
    np.testing.assert_allclose(bilinear_kernel(size).numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(expected, expected[::-1, ::-1])


def test_bilinear_matches_caffe_output(golden):
    """The bilinear filler's output equals what Caffe's filler wrote in the golden case."""
    data = np.load(golden / 'layers' / 'deconv_group_bilinear' / 'golden.npz')
    recorded = data['param/out/0']
    np.testing.assert_allclose(_filled(recorded.shape, type='bilinear'), recorded, rtol=1e-6)


def test_same_seed_same_fill():
    """set_random_seed makes random fills repeat exactly."""
    a = _filled((10, 10), type='gaussian')
    b = _filled((10, 10), type='gaussian')
    np.testing.assert_array_equal(a, b)


def test_catch_unknown_filler():
    """An unknown filler type lists Caffe's fillers."""
    with pytest.raises(ValueError, match='unknown filler type "gauss".*gaussian'):
        _filled((2, 2), type='gauss')


def test_catch_bilinear_needs_square_4d():
    """bilinear refuses blobs that are not 4-D with a square kernel."""
    with pytest.raises(ValueError, match=r'square kernel, got shape \(1, 1, 3, 4\)'):
        _filled((1, 1, 3, 4), type='bilinear')


def test_catch_uniform_min_above_max():
    """uniform needs min <= max."""
    with pytest.raises(ValueError, match='min <= max'):
        _filled((2,), type='uniform', min=1, max=0)
