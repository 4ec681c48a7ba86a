"""ImageData and WindowData on images written here with cv2.imwrite (PNG, lossless).

No golden vectors exist for these layers: expectations are built by hand from the written
pixels, with the window geometry derived on paper (see each test) and cv2.resize standing
in for Caffe's own cv::resize call.
"""
import cv2
import numpy as np
import pytest

import caffe_torch as caffe
from caffe_torch.errors import DataRecordError, DataSourceError, LayerSetupError
from caffe_torch.layer_types.image_data import c_round
from layer_check import make_layer

RNG = np.random.RandomState(8)


def images(tmp_path, count=3, shape=(6, 8, 3)):
    arrays = [RNG.randint(0, 256, shape).astype(np.uint8) for _ in range(count)]
    for i, array in enumerate(arrays):
        assert cv2.imwrite(str(tmp_path / f'im {i}.png'), array)
    return arrays


def image_layer(tmp_path, lines, extra='', batch=2, transform=''):
    (tmp_path / 'list.txt').write_text(''.join(line + '\n' for line in lines))
    text = (f'type: "ImageData" image_data_param {{ source: "{tmp_path}/list.txt" '
            f'root_folder: "{tmp_path}/" batch_size: {batch} {extra} }} '
            f'transform_param {{ {transform} }}')
    return make_layer(text, [], ntop=2, phase=caffe.TEST)


def test_images_in_list_order_wrapping_round(tmp_path):
    """Paths with spaces, label after the last space; 3 images, batch 2: 0 1 | 2 0."""
    arrays = images(tmp_path)
    layer, _, top = image_layer(tmp_path, [f'im {i}.png {5 + i}' for i in range(3)])
    assert top[0].shape == (2, 3, 6, 8)
    for rows in ([0, 1], [2, 0]):
        layer.run_forward([], top)
        np.testing.assert_array_equal(top[0].data, [arrays[r].transpose(2, 0, 1)
                                                    for r in rows])
        np.testing.assert_array_equal(top[1].data, np.array(rows) + 5)


def test_gray_resize_and_transform(tmp_path):
    """is_color false reads 1 channel; new_height/new_width resize bilinearly; then the
    transform (central crop, scale)."""
    gray = [RNG.randint(0, 256, (6, 8)).astype(np.uint8) for _ in range(2)]
    for i, g in enumerate(gray):
        cv2.imwrite(str(tmp_path / f'g{i}.png'), g)
    layer, _, top = image_layer(tmp_path, ['g0.png 0', 'g1.png 1'],
                                'is_color: false new_height: 5 new_width: 4',
                                transform='crop_size: 3 scale: 0.5')
    layer.run_forward([], top)
    assert top[0].shape == (2, 1, 3, 3)
    for got, g in zip(top[0].data, gray):
        resized = cv2.resize(g, (4, 5), interpolation=cv2.INTER_LINEAR)
        np.testing.assert_array_equal(got[0], resized[1:4, 0:3] * 0.5)


def test_resize_of_constant_image_is_constant(tmp_path):
    """A hand check of the resize: a constant image stays constant at any size."""
    cv2.imwrite(str(tmp_path / 'c.png'), np.full((5, 7, 3), 77, np.uint8))
    layer, _, top = image_layer(tmp_path, ['c.png 0'], 'new_height: 9 new_width: 3', batch=1)
    layer.run_forward([], top)
    assert top[0].shape == (1, 3, 9, 3) and np.all(top[0].data == 77)


def test_shuffle_covers_every_image_each_pass(tmp_path):
    images(tmp_path, count=4)
    caffe.set_random_seed(2)
    layer, _, top = image_layer(tmp_path, [f'im {i}.png {i}' for i in range(4)],
                                'shuffle: true', batch=4)
    passes = []
    for _ in range(3):
        layer.run_forward([], top)
        assert sorted(top[1].data) == [0, 1, 2, 3]
        passes.append(tuple(top[1].data))
    assert len(set(passes)) > 1 or passes[0] != (0, 1, 2, 3)


def test_rand_skip_starts_below_it(tmp_path):
    images(tmp_path)
    starts = set()
    for seed in range(12):
        caffe.set_random_seed(seed)
        layer, _, top = image_layer(tmp_path, [f'im {i}.png {i}' for i in range(3)],
                                    'rand_skip: 3', batch=1)
        layer.run_forward([], top)
        starts.add(int(top[1].data[0]))
    assert starts == {0, 1, 2}


def test_catch_missing_image(tmp_path):
    images(tmp_path, count=1)
    layer, _, top = image_layer(tmp_path, ['im 0.png 0', 'gone.png 1'])
    with pytest.raises(DataSourceError, match=r'could not load ".*gone.png": no such file'):
        layer.run_forward([], top)


def test_catch_list_errors(tmp_path):
    with pytest.raises(LayerSetupError, match='image list .* is empty'):
        image_layer(tmp_path, [])
    with pytest.raises(LayerSetupError, match='new_height and new_width must be set together'):
        image_layer(tmp_path, ['a.png 0'], 'new_height: 4')
    with pytest.raises(DataSourceError, match=r'cannot open image_data_param.source'):
        make_layer('type: "ImageData" image_data_param { source: "/no/list.txt" }', [], ntop=2)


# -- WindowData -----------------------------------------------------------------------------
def window_layer(tmp_path, windows, extra='', transform='crop_size: 8', batch=2, size=(40, 40),
                 background=True):
    """A window file with one 3-channel image (random pixels) and the given windows; when
    they are all foreground (overlap >= 0.5), `background` adds one background window, which
    Caffe needs even where fg_fraction 1 draws none."""
    if background and all(w[1] >= 0.5 for w in windows):
        windows = list(windows) + [(0, 0.0, 0, 0, 1, 1)]
    image = RNG.randint(0, 256, size + (3,)).astype(np.uint8)
    cv2.imwrite(str(tmp_path / 'w.png'), image)
    lines = ['# 0', 'w.png', '3', str(size[0]), str(size[1]), str(len(windows))]
    lines += [' '.join(map(str, w)) for w in windows]
    (tmp_path / 'windows.txt').write_text('\n'.join(lines) + '\n')
    text = (f'type: "WindowData" window_data_param {{ source: "{tmp_path}/windows.txt" '
            f'root_folder: "{tmp_path}/" batch_size: {batch} {extra} }} '
            f'transform_param {{ {transform} }}')
    layer, _, top = make_layer(text, [], ntop=2)
    return layer, top, image.transpose(2, 0, 1).astype(np.float32)


def chw_resize(image_chw, box, size):
    x1, y1, x2, y2 = box
    patch = image_chw[:, y1:y2 + 1, x1:x2 + 1].transpose(1, 2, 0).astype(np.uint8)
    return cv2.resize(patch, size, interpolation=cv2.INTER_LINEAR).transpose(2, 0, 1)


def test_warp_without_context_is_the_window_resized(tmp_path):
    """crop_mode warp, no context: an 8x8 window comes out as itself (resize to its own
    size), times window_data_param.scale, minus mean_value."""
    layer, top, image = window_layer(tmp_path, [(1, 0.9, 3, 5, 10, 12)],
                                     'scale: 0.5 fg_fraction: 1',
                                     'crop_size: 8 mean_value: 10', batch=1)
    layer.run_forward([], top)
    np.testing.assert_array_equal(top[0].data[0], (image[:, 5:13, 3:11] - 10) * 0.5)
    assert top[1].data[0] == 1


def test_context_pad_inside_the_image(tmp_path):
    """crop 8, context_pad 2, window 10..13: context_scale 8/4 = 2, centre 12, so the
    region is round(12 -+ 4) = 8..16 (9 px), warped 9 -> 8 with no padding."""
    layer, top, image = window_layer(tmp_path, [(2, 1.0, 10, 10, 13, 13)],
                                     'context_pad: 2 fg_fraction: 1', batch=1)
    layer.run_forward([], top)
    np.testing.assert_array_equal(top[0].data[0], chw_resize(image, (8, 8, 16, 16), (8, 8)))


def test_context_pad_at_the_corner_pads_with_zeros(tmp_path):
    """Window 0..3: region round(2 -+ 4) = -2..6, unclipped 9 px, clipped 0..6 (7 px);
    scale 8/9: warp to round(7 * 8/9) = 6 px, pad round(2 * 8/9) = 2 px of zeros before.
    Mirrored, the padding moves to the other side (pad_x2 = 0) and the patch flips."""
    for mirror in (False, True):
        caffe.set_random_seed(0)
        layer, top, image = window_layer(tmp_path, [(3, 0.8, 0, 0, 3, 3)],
                                         'context_pad: 2 fg_fraction: 1',
                                         f'crop_size: 8 mirror: {str(mirror).lower()}',
                                         batch=8)
        layer.run_forward([], top)
        patch = chw_resize(image, (0, 0, 6, 6), (6, 6))
        plain = np.zeros((3, 8, 8), np.float32)
        plain[:, 2:8, 2:8] = patch
        flipped = np.zeros((3, 8, 8), np.float32)
        flipped[:, 2:8, 0:6] = patch[:, :, ::-1]
        kinds = [np.array_equal(got, plain) or 2 * np.array_equal(got, flipped)
                 for got in top[0].data]
        assert all(kinds)
        assert set(kinds) == ({True, 2} if mirror else {True})


def test_square_mode_makes_the_window_square(tmp_path):
    """Window x 10..17 (8 wide), y 10..13 (4 high), square, no pad: half sides 4 and 4
    around centre (14, 12) -> region x 10..18, y 8..16 (9x9), warped to 8x8."""
    layer, top, image = window_layer(tmp_path, [(1, 1.0, 10, 10, 17, 13)],
                                     'crop_mode: "square" fg_fraction: 1', batch=1)
    layer.run_forward([], top)
    np.testing.assert_array_equal(top[0].data[0], chw_resize(image, (10, 8, 18, 16), (8, 8)))


def test_background_then_foreground_windows(tmp_path):
    """batch 4, fg_fraction 0.5: 2 background windows (label forced to 0), then 2 of the
    foreground; windows between the thresholds are dropped."""
    windows = [(5, 0.7, 0, 0, 7, 7), (4, 0.1, 8, 8, 15, 15), (6, 0.4, 16, 16, 23, 23)]
    layer, top, image = window_layer(tmp_path, windows, 'fg_threshold: 0.5 bg_threshold: 0.3 '
                                     'fg_fraction: 0.5', batch=4)
    assert len(layer.fg) == 1 and len(layer.bg) == 1
    layer.run_forward([], top)
    np.testing.assert_array_equal(top[1].data, [0, 0, 5, 5])
    np.testing.assert_array_equal(top[0].data[0], image[:, 8:16, 8:16])
    np.testing.assert_array_equal(top[0].data[3], image[:, 0:8, 0:8])


def test_c_round_halves_away_from_zero():
    assert [c_round(v) for v in (0.5, 1.5, 2.5, -0.5, -2.5, 2.4999)] == [1, 2, 3, -1, -3, 2]


def test_catch_window_file_errors(tmp_path):
    with pytest.raises(DataRecordError, match='foreground classes must be > 0'):
        window_layer(tmp_path, [(0, 0.9, 0, 0, 7, 7)])
    with pytest.raises(LayerSetupError, match='crop_size must be positive'):
        window_layer(tmp_path, [(1, 0.9, 0, 0, 7, 7)], transform='')
    (tmp_path / 'bad.txt').write_text('# 0\nw.png\n3\n40\nforty\n0\n')
    with pytest.raises(DataRecordError, match=r'expected width, got "forty"'):
        make_layer(f'type: "WindowData" window_data_param {{ source: "{tmp_path}/bad.txt" '
                   f'batch_size: 1 }} transform_param {{ crop_size: 4 }}', [], ntop=2)
    with pytest.raises(DataSourceError, match='cannot open window_data_param.source'):
        make_layer('type: "WindowData" window_data_param { source: "/no/w.txt" '
                   'batch_size: 1 } transform_param { crop_size: 4 }', [], ntop=2)


def test_catch_window_outside_image_and_no_foreground(tmp_path):
    layer, top, _ = window_layer(tmp_path, [(1, 0.9, 30, 30, 45, 45)], 'fg_fraction: 1')
    with pytest.raises(DataRecordError, match=r'window \(30, 30, 45, 45\) .* does not lie '
                                              r'inside its 40x40 pixels'):
        layer.run_forward([], top)
    layer, top, _ = window_layer(tmp_path, [(1, 0.1, 0, 0, 7, 7)], 'fg_fraction: 0.5')
    with pytest.raises(DataRecordError, match='has no foreground window'):
        layer.run_forward([], top)


def test_catch_window_kind_missing_even_where_no_item_draws_it(tmp_path):
    """Caffe's load_batch checks CHECK_GT(fg_windows_.size(), 0) and the same of the
    background list before it samples, so fg_fraction 1 without a background window (or 0
    without a foreground one) aborts although no item would draw from the empty list."""
    layer, top, _ = window_layer(tmp_path, [(1, 0.9, 0, 0, 7, 7)], 'fg_fraction: 1',
                                 background=False)
    with pytest.raises(DataRecordError, match='has no background window'):
        layer.run_forward([], top)
    layer, top, _ = window_layer(tmp_path, [(1, 0.1, 0, 0, 7, 7)], 'fg_fraction: 0')
    with pytest.raises(DataRecordError, match='has no foreground window'):
        layer.run_forward([], top)


def test_mean_file_from_its_centre_and_cached_images(tmp_path):
    """mean_file 3x12x12, crop 8: mean_off = (12 - 8) / 2 = 2, so an unpadded window takes
    mean[:, 2:10, 2:10]; cache_images gives the same values."""
    from caffe_torch import formats, io
    mean = RNG.uniform(0, 255, (1, 3, 12, 12)).astype(np.float32)
    formats.write_binaryproto(io.array_to_blobproto(mean), tmp_path / 'mean.binaryproto')
    outs = []
    for cache in ('false', 'true'):
        RNG.seed(21)
        layer, top, image = window_layer(
            tmp_path, [(1, 0.9, 3, 5, 10, 12)], f'fg_fraction: 1 cache_images: {cache}',
            f'crop_size: 8 mean_file: "{tmp_path}/mean.binaryproto"', batch=1)
        layer.run_forward([], top)
        expected = image[:, 5:13, 3:11].astype(np.float64) - mean[0][:, 2:10, 2:10]
        np.testing.assert_allclose(top[0].data[0], expected, rtol=0, atol=1e-4)
        outs.append(top[0].data.copy())
    np.testing.assert_array_equal(outs[0], outs[1])
