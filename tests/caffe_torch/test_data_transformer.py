"""DataTransformer: transform_param's crop, mean, scale and mirror against NumPy, float64."""
import numpy as np
import pytest
from google.protobuf import text_format

import caffe_torch as caffe
from caffe_torch import formats, io
from caffe_torch.data_transformer import DataTransformer, shuffle
from caffe_torch.errors import DataRecordError, LayerSetupError
from caffe_torch.proto import caffe_pb2

RNG = np.random.RandomState(5)
IMAGE = RNG.randint(0, 256, (3, 7, 9)).astype(np.uint8)


def transformer(text, phase=caffe_pb2.TEST):
    param = text_format.Parse(text, caffe_pb2.TransformationParameter())
    return DataTransformer(param, phase, 'layer "t" (Data)')


def windows(array, side):
    """Every side x side crop of a C x H x W array, with its offsets."""
    _, h, w = array.shape
    return {(i, j): array[:, i:i + side, j:j + side] for i in range(h - side + 1)
            for j in range(w - side + 1)}


def test_scale_and_per_channel_mean():
    """(x - mean[c]) * scale, element by element."""
    t = transformer('scale: 0.5 mean_value: 100 mean_value: 120 mean_value: 140')
    expected = (IMAGE.astype(np.float64) - np.array([100, 120, 140])[:, None, None]) * 0.5
    out = t.transform(IMAGE)
    assert out.dtype == np.float32 and out.shape == (3, 7, 9)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-5)


def test_single_mean_value_for_all_channels():
    out = transformer('mean_value: 10').transform(IMAGE)
    np.testing.assert_array_equal(out, IMAGE.astype(np.float64) - 10)


def test_float_data_scale_without_mean():
    values = RNG.uniform(-2, 2, (2, 3, 4)).astype(np.float32)
    np.testing.assert_allclose(transformer('scale: 2').transform(values),
                               values.astype(np.float64) * 2, rtol=1e-7)


def test_test_phase_crop_is_central():
    """TEST crops at ((H - c) / 2, (W - c) / 2), integer division: (1, 2) for 7x9, c=4."""
    out = transformer('crop_size: 4').transform(IMAGE)
    np.testing.assert_array_equal(out, IMAGE[:, 1:5, 2:6])
    assert transformer('crop_size: 4').infer_shape(IMAGE) == (3, 4, 4)


def test_train_crops_are_random_windows_seeded():
    """TRAIN crops are windows of the image at drawn offsets, every offset possible,
    repeated by set_random_seed."""
    t = transformer('crop_size: 5', caffe_pb2.TRAIN)
    crops = windows(IMAGE, 5)
    caffe.set_random_seed(3)
    seen, first = set(), []
    for _ in range(200):
        out = t.transform(IMAGE)
        match = [k for k, v in crops.items() if np.array_equal(v, out)]
        assert len(match) == 1
        seen.add(match[0])
        first.append(match[0])
    assert seen == set(crops)  # 3 x 5 offsets, all drawn
    caffe.set_random_seed(3)
    again = []
    for _ in range(20):
        out = t.transform(IMAGE)
        again.append(next(k for k, v in crops.items() if np.array_equal(v, out)))
    assert again == first[:20]


def test_mirror_flips_half_the_time():
    t = transformer('mirror: true')
    caffe.set_random_seed(1)
    flips = []
    for _ in range(100):
        out = t.transform(IMAGE)
        flipped = np.array_equal(out, IMAGE[:, :, ::-1])
        assert flipped or np.array_equal(out, IMAGE)
        flips.append(flipped)
    assert 25 < sum(flips) < 75


def test_mean_file_subtracted_over_crop_window(tmp_path):
    """mean_file is C x H x W of the uncropped image; the crop's window of it is taken."""
    mean = RNG.uniform(0, 255, (1, 3, 7, 9)).astype(np.float32)
    blob = caffe_pb2.BlobProto(num=1, channels=3, height=7, width=9)
    blob.data.extend(mean.ravel())
    formats.write_binaryproto(blob, tmp_path / 'mean.binaryproto')
    t = transformer(f'crop_size: 3 scale: 0.25 mean_file: "{tmp_path}/mean.binaryproto"')
    expected = (IMAGE[:, 2:5, 3:6].astype(np.float64) - mean[0][:, 2:5, 3:6]) * 0.25
    np.testing.assert_allclose(t.transform(IMAGE), expected, rtol=0, atol=2e-5)


def test_shuffle_is_a_seeded_permutation():
    caffe.set_random_seed(7)
    items = list(range(10))
    shuffle(items)
    assert sorted(items) == list(range(10)) and items != list(range(10))
    caffe.set_random_seed(7)
    again = list(range(10))
    shuffle(again)
    assert again == items


# -- encoded Datums -------------------------------------------------------------------------
def encoded_datum(image):
    import cv2
    ok, png = cv2.imencode('.png', image)
    assert ok
    return caffe_pb2.Datum(data=png.tobytes(), encoded=True, label=3)


def test_encoded_color_decodes_unchanged_in_bgr_order():
    hwc = RNG.randint(0, 256, (4, 5, 3)).astype(np.uint8)
    array = transformer('').datum_array(encoded_datum(hwc))
    np.testing.assert_array_equal(array, hwc.transpose(2, 0, 1))


def test_encoded_gray_native_force_color_and_force_gray():
    gray = RNG.randint(0, 256, (4, 5)).astype(np.uint8)
    datum = encoded_datum(gray)
    np.testing.assert_array_equal(transformer('').datum_array(datum), gray[None])
    color = transformer('force_color: true').datum_array(datum)
    np.testing.assert_array_equal(color, np.stack([gray] * 3))
    back = transformer('force_gray: true').datum_array(encoded_datum(np.stack([gray] * 3, 2)))
    np.testing.assert_array_equal(back, gray[None])


def test_plain_datum_uint8_and_float():
    datum = io.array_to_datum(IMAGE, 1)
    np.testing.assert_array_equal(transformer('').datum_array(datum), IMAGE)
    floats = io.array_to_datum(IMAGE.astype(np.float32))
    assert transformer('').datum_array(floats).dtype == np.float32


# -- errors ---------------------------------------------------------------------------------
def test_catch_corrupt_encoded_datum():
    datum = caffe_pb2.Datum(data=b'not an image', encoded=True)
    with pytest.raises(DataRecordError, match=r'could not decode record 7 \(12 bytes'):
        transformer('').datum_array(datum, 'record 7')


def test_catch_truncated_datum():
    datum = caffe_pb2.Datum(channels=3, height=2, width=2, data=b'\0' * 10)
    with pytest.raises(DataRecordError, match=r'3x2x2 = 12 values but holds 10 bytes'):
        transformer('').datum_array(datum)


def test_catch_crop_larger_than_image():
    with pytest.raises(DataRecordError, match=r'crop_size 8 is larger than an image of 7x9'):
        transformer('crop_size: 8').transform(IMAGE)


def test_catch_mean_value_count():
    with pytest.raises(DataRecordError, match=r'1 mean_value or as many as channels: 3 '
                                              r'\(got 2\)'):
        transformer('mean_value: 1 mean_value: 2').transform(IMAGE)


def test_catch_mean_file_and_value(tmp_path):
    with pytest.raises(LayerSetupError, match='mean_file and mean_value at the same time'):
        transformer('mean_file: "m.binaryproto" mean_value: 1')


def test_catch_mean_file_shape(tmp_path):
    formats.write_binaryproto(io.array_to_blobproto(np.zeros((1, 3, 5, 5), np.float32)),
                              tmp_path / 'm.binaryproto')
    t = transformer(f'mean_file: "{tmp_path}/m.binaryproto"')
    with pytest.raises(DataRecordError, match=r'is 3x5x5 .* but the data are 3x7x9; the '
                                              r'mean must have the size of the images before'):
        t.transform(IMAGE)


def test_catch_missing_mean_file(tmp_path):
    with pytest.raises(LayerSetupError, match=r'layer "t" \(Data\): cannot read mean_file: '
                                              r'.*nope.binaryproto: no such file'):
        transformer(f'mean_file: "{tmp_path}/nope.binaryproto"')


def test_catch_force_color_and_gray():
    with pytest.raises(LayerSetupError, match='both force_color and force_gray'):
        transformer('force_color: true force_gray: true')
