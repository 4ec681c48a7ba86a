"""The demo's data: procedural scenes in the real on-disk formats, the same for every seed.

    make_segmentation_set(root, ...)    PASCAL VOC's layout (dataset 'demo_voc'):
        JPEGImages/<id>.jpg, SegmentationClass/<id>.png (mode P, VOC palette, void 255),
        ImageSets/Segmentation/{train,val}.txt, labels.txt (the class names)
    make_classification_set(root, ...)  an ImageNet-style set (dataset 'demo_classes'):
        <class>/<class>_<split>_<k>.jpg, {train,val}.txt of "<relative path> <label>" lines
        (Caffe's ImageData source), labels.txt with the class names in label order

Scenes (160 x 160 by default) hold 3-5 large and 3-6 small objects of five shape classes on
a textured background: discs, squares, triangles, bars (groups of 1-3 parallel bars, 1-3 px
wide) and rings (2-7 px thick around a hole of background). Colours and textures (flat,
stripes, checks, smooth noise) are drawn for every object and background alike, whatever
the class, only contrasting in brightness with the ground: colour does not tell a class,
shape does. Thin bars, ring holes and small objects are what 32-pixel upsampling cannot
draw; the skips of FCN-16s and FCN-8s can. Labels are those of the visible object at each
pixel, with a void (255) band VOID_WIDTH px wide on the outer side of each visible object's
boundary, as VOC outlines its objects (the objects keep every pixel, so a 1-px bar keeps
its label; where an occluded object's edge meets its occluder, that edge turns void too).

Classification images (128 x 128) hold one large object, of the scenes' sizes, within 16 px
(half a stride of FCN-32s's score grid) of the centre: a window of a scene as the FCN's
score_fr sees it, which the classifier's features carry over to.

Everything comes from np.random.default_rng(seed): the same seed writes the same files.
"""
import pathlib

import numpy as np
from PIL import Image
from scipy import ndimage

from solve import vis

CLASSES = ('background', 'disc', 'square', 'triangle', 'bar', 'ring')
SHAPES = CLASSES[1:]        # classification labels 0-4 are segmentation classes 1-5
VOID, VOID_WIDTH = 255, 1
JPEG_QUALITY = 90
MIN_LUMA_CONTRAST = 60      # an object's colour differs this much in luma from the ground


# -- drawing ------------------------------------------------------------------------------
def _luma(rgb):
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def _texture(rng, shape, base, contrast):
    """H x W x 3 float: colour `base` modulated by a random pattern of `contrast` (0-1)."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    kind = rng.integers(4)
    if kind == 0:      # flat
        pattern = np.zeros((h, w), np.float32)
    elif kind == 1:    # stripes of period 4-10 px, any orientation
        angle, period = rng.uniform(0, np.pi), rng.uniform(4, 10)
        pattern = np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period)
    elif kind == 2:    # checks
        period = rng.integers(3, 8)
        pattern = 2.0 * ((xx // period + yy // period) % 2) - 1
    else:              # smooth noise
        pattern = ndimage.gaussian_filter(rng.standard_normal((h, w)).astype(np.float32),
                                          rng.uniform(1, 3))
        pattern /= np.abs(pattern).max() + 1e-6
    other = rng.uniform(0, 255, 3).astype(np.float32)
    weight = (contrast * (pattern + 1) / 2)[..., None]
    return base * (1 - weight) + other * weight


def _colour_against(rng, ground):
    """A random RGB colour whose luma differs from `ground`'s by MIN_LUMA_CONTRAST."""
    while True:
        colour = rng.uniform(0, 255, 3).astype(np.float32)
        if abs(_luma(colour) - _luma(ground)) >= MIN_LUMA_CONTRAST:
            return colour


def _mask(rng, kind, shape, cy, cx, scale):
    """Boolean H x W mask of one object of class `kind` centred at (cy, cx); `scale` ~ its
    radius in px (bars: half their length)."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    angle = rng.uniform(0, 2 * np.pi)
    u = (xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle)
    v = -(xx - cx) * np.sin(angle) + (yy - cy) * np.cos(angle)
    radius = np.hypot(u, v)
    if kind == 'disc':
        return radius <= scale
    if kind == 'square':
        half = scale / np.sqrt(2) * 1.1
        return (np.abs(u) <= half) & (np.abs(v) <= half)
    if kind == 'triangle':  # equilateral, circumradius `scale`
        inside = np.ones(shape, bool)
        for k in range(3):
            a = 2 * np.pi * k / 3
            inside &= u * np.cos(a) + v * np.sin(a) <= scale / 2
        return inside
    if kind == 'ring':
        thickness = rng.uniform(2, 2 + scale / 8)   # 2-3.5 px small, up to 7.5 large
        return (radius <= scale) & (radius >= scale - thickness)
    if kind == 'bar':       # 1-3 parallel bars, 1-3 px wide, 4-7 px apart
        count, gap = rng.integers(1, 4), rng.uniform(4, 7)
        inside = np.zeros(shape, bool)
        for k in range(count):
            offset, width = (k - (count - 1) / 2) * gap, rng.integers(1, 4)
            inside |= (np.abs(v - offset) <= width / 2) & (np.abs(u) <= scale)
        return inside
    raise ValueError(f'unknown shape class {kind!r}; known: {", ".join(SHAPES)}')


LARGE, SMALL, BAR = (16, 44), (5, 12), (15, 50)   # radius (bars: half length) ranges, px


def _scale(rng, kind, large):
    """An object's radius (a bar group's half length), in px."""
    low, high = BAR if kind == 'bar' else LARGE if large else SMALL
    return rng.uniform(low, high)


def _finish(rng, image):
    """A light blur and sensor noise, as uint8 RGB."""
    image = ndimage.gaussian_filter(image, (0.6, 0.6, 0))
    image += rng.normal(0, 6, image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def _background(rng, shape):
    ground = rng.uniform(80, 176, 3).astype(np.float32)   # mid-level: bounded colour DC
    return _texture(rng, shape, ground, rng.uniform(0.05, 0.25)), ground


def _paint(rng, image, mask, ground):
    colour = _colour_against(rng, ground)
    fill = _texture(rng, image.shape[:2], colour, rng.uniform(0, 0.2))
    image[mask] = fill[mask]


def draw_scene(rng, size, large=(3, 5), small=(3, 6)):
    """(H x W x 3 uint8 RGB, H x W uint8 label) of one scene `size` = (H, W): `large` and
    `small` (ranges of counts) objects of random classes, the large ones first."""
    image, ground = _background(rng, size)
    depth = np.full(size, -1, np.int32)   # index of the visible object, -1 for background
    label = np.zeros(size, np.uint8)
    sizes = [True] * rng.integers(large[0], large[1] + 1) + \
            [False] * rng.integers(small[0], small[1] + 1)
    for index, is_large in enumerate(sizes):
        kind = SHAPES[rng.integers(len(SHAPES))]
        cy, cx = rng.uniform(0, size[0]), rng.uniform(0, size[1])
        mask = _mask(rng, kind, size, cy, cx, _scale(rng, kind, is_large))
        if not mask.any():
            continue
        _paint(rng, image, mask, ground)
        depth[mask], label[mask] = index, CLASSES.index(kind)
    above = ndimage.maximum_filter(depth, size=2 * VOID_WIDTH + 1, mode='nearest')
    label[above > depth] = VOID   # the outer band of every visible object's boundary
    return _finish(rng, image), label


def draw_object(rng, kind, size=128, jitter=16):
    """H x W x 3 uint8 RGB: one large object of class `kind` (at most 40% of `size`) within
    `jitter` px of the centre of a background, half a stride of the FCN's score grid."""
    shape = (size, size)
    image, ground = _background(rng, shape)
    cy, cx = size / 2 + rng.uniform(-jitter, jitter, 2)
    scale = min(_scale(rng, kind, True), 0.4 * size)
    _paint(rng, image, _mask(rng, kind, shape, cy, cx, scale), ground)
    return _finish(rng, image)


# -- writing ------------------------------------------------------------------------------
def _save_jpeg(path, rgb):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path, quality=JPEG_QUALITY)


def _write_lines(path, lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(''.join(f'{line}\n' for line in lines))


def make_segmentation_set(root, n_train=200, n_val=50, size=160, seed=0):
    """Write n_train + n_val scenes of `size` (an int, or (H, W)) in VOC's layout under
    `root`; ids are demo_<split>_<k>. Returns the root as a pathlib.Path."""
    root, rng = pathlib.Path(root), np.random.default_rng(seed)
    shape = (size, size) if np.isscalar(size) else tuple(size)
    palette = vis.make_palette(len(CLASSES))
    (root / 'SegmentationClass').mkdir(parents=True, exist_ok=True)
    for split, count in (('train', n_train), ('val', n_val)):
        ids = [f'demo_{split}_{k:04d}' for k in range(count)]
        for sample_id in ids:
            image, label = draw_scene(rng, shape)
            _save_jpeg(root / 'JPEGImages' / f'{sample_id}.jpg', image)
            vis.save_label_png(root / 'SegmentationClass' / f'{sample_id}.png', label, palette)
        _write_lines(root / 'ImageSets' / 'Segmentation' / f'{split}.txt', ids)
    _write_lines(root / 'labels.txt', CLASSES)
    return root


def make_classification_set(root, n_per_class=192, size=128, seed=0, n_val_per_class=None):
    """Write an ImageNet-style set under `root`: n_per_class training and n_val_per_class
    (default n_per_class // 4, at least 1) validation images of each shape class, listed in
    train.txt / val.txt in class-interleaved order. Returns the root as a pathlib.Path."""
    root, rng = pathlib.Path(root), np.random.default_rng(seed)
    n_val = max(1, n_per_class // 4) if n_val_per_class is None else n_val_per_class
    for split, count in (('train', n_per_class), ('val', n_val)):
        lines = []
        for k in range(count):
            for label, kind in enumerate(SHAPES):
                relative = f'{kind}/{kind}_{split}_{k:04d}.jpg'
                _save_jpeg(root / relative, draw_object(rng, kind, size))
                lines.append(f'{relative} {label}')
        _write_lines(root / f'{split}.txt', lines)
    _write_lines(root / 'labels.txt', SHAPES)
    return root
