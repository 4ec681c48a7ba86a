"""solve.vis: the VOC colour map, overlays, paletted PNGs and class histograms."""
import numpy as np
import pytest
from PIL import Image

from solve import vis


def test_voc_palette_first_entries():
    """make_palette reproduces the PASCAL VOC colour map."""
    palette = vis.make_palette(21)
    assert palette.shape == (21, 3) and palette.dtype == np.uint8
    expected = {0: (0, 0, 0), 1: (128, 0, 0), 2: (0, 128, 0), 3: (128, 128, 0), 4: (0, 0, 128),
                5: (128, 0, 128), 8: (64, 0, 0), 15: (192, 128, 128), 20: (0, 64, 128)}
    for k, rgb in expected.items():
        assert tuple(palette[k]) == rgb


def test_void_colour():
    """Entry 255 of the full map is VOC's void colour."""
    assert tuple(vis.make_palette(256)[255]) == (224, 224, 192)


def test_color_seg_void_with_short_palette():
    """A 21-class palette still colours void 255, with the VOC void colour."""
    rgb = vis.color_seg(np.array([[0, 1], [15, 255]]), vis.make_palette(21))
    assert rgb.shape == (2, 2, 3)
    assert [tuple(c) for c in rgb.reshape(-1, 3)] == \
        [(0, 0, 0), (128, 0, 0), (192, 128, 128), (224, 224, 192)]


def test_vis_seg_blends_labelled_pixels_only():
    """Background keeps the image; labelled pixels are (1-a)*image + a*colour, truncated."""
    image = np.array([[[100, 100, 100], [101, 50, 0]]], dtype=np.uint8)
    seg = np.array([[0, 1]])
    out = vis.vis_seg(image, seg, vis.make_palette(21), alpha=0.5)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, [[[100, 100, 100], [114, 25, 0]]])  # 50.5+64 -> 114


def test_label_png_round_trip(tmp_path):
    """A saved label PNG reads back with the same indices and the VOC palette."""
    seg = np.array([[0, 1, 2], [20, 255, 3]], dtype=np.uint8)
    path = tmp_path / 'label.png'
    vis.save_label_png(path, seg, vis.make_palette(21))
    image = Image.open(path)
    assert image.mode == 'P'
    np.testing.assert_array_equal(np.array(image), seg)
    palette = np.array(image.getpalette()).reshape(-1, 3)
    np.testing.assert_array_equal(palette, vis.make_palette(256))
    assert [p.name for p in tmp_path.iterdir()] == ['label.png']


def test_class_histogram_sorted():
    """Counts per class, most frequent first, with unnamed labels by number."""
    seg = np.array([[0, 0, 0, 2], [2, 255, 1, 0]])
    assert vis.class_histogram(seg, ['bg', 'cat', 'dog']) == \
        [('bg', 4), ('dog', 2), ('cat', 1), ('label 255', 1)]


def test_catch_palette_size():
    """make_palette refuses more colours than a paletted PNG holds."""
    with pytest.raises(ValueError, match=r'num_classes must be in \[1, 256\], got 300'):
        vis.make_palette(300)


def test_catch_float_label_map():
    """Raw scores are not a label map."""
    with pytest.raises(TypeError, match='argmax'):
        vis.color_seg(np.zeros((2, 2)), vis.make_palette(21))


def test_catch_overlay_shape():
    """The image must be the label map's size with 3 channels."""
    with pytest.raises(ValueError, match=r'image shape \(2, 2\) does not match'):
        vis.vis_seg(np.zeros((2, 2), np.uint8), np.zeros((2, 2), int), vis.make_palette(21))
