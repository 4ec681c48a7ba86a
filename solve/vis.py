"""Colouring segmentations: the PASCAL VOC colour map, overlays and paletted label PNGs.

VOC stores labels as mode-'P' PNGs whose palette is the bit-interleaved colour map below, so
a prediction saved with it opens in any viewer looking like the ground truth, and reading it
back with PIL gives the class indices, not colours. Void (255) is (224, 224, 192) in that map.
"""
import io

import numpy as np
from PIL import Image

from backend.files import atomic_write

PALETTE_SIZE = 256  # a mode-'P' PNG indexes 256 colours


def make_palette(num_classes):
    """The PASCAL VOC colour map: (num_classes, 3) uint8 RGB.

    Class i's bits 0, 1, 2 become the most significant bits of red, green and blue, its bits
    3, 4, 5 the next ones, and so on: 1 -> (128, 0, 0), 2 -> (0, 128, 0), 255 -> (224, 224, 192).
    """
    if not 0 < num_classes <= PALETTE_SIZE:
        raise ValueError(f'make_palette: num_classes must be in [1, {PALETTE_SIZE}], '
                         f'got {num_classes}')
    palette = np.zeros((num_classes, 3), dtype=np.uint8)
    for k in range(num_classes):
        label, shift = k, 7
        while label:
            for channel in range(3):
                palette[k, channel] |= ((label >> channel) & 1) << shift
            label >>= 3
            shift -= 1
    return palette


def full_palette(palette):
    """`palette` completed to 256 entries with the VOC colours, so that any uint8 label,
    void 255 included, has a colour however few classes the palette names."""
    palette = np.asarray(palette, dtype=np.uint8)
    if palette.ndim != 2 or palette.shape[1] != 3 or len(palette) > PALETTE_SIZE:
        raise ValueError(f'palette must be (K, 3) RGB with K <= {PALETTE_SIZE}, '
                         f'got shape {palette.shape}')
    return np.concatenate([palette, make_palette(PALETTE_SIZE)[len(palette):]])


def color_seg(seg, palette):
    """Label map (H, W) of class indices -> RGB image (H, W, 3) uint8."""
    return full_palette(palette)[_as_labels(seg)]


def vis_seg(image, seg, palette, alpha=0.5, background=0):
    """Overlay a segmentation on an RGB image (H, W, 3), as fcn's vis.vis_seg does.

    Labelled pixels (seg != background, void included) become (1 - alpha) * image +
    alpha * colour; background keeps the image (background None: every pixel is coloured,
    for datasets whose label 0 is a class). The float result is truncated to uint8 like
    the reference.
    """
    image = np.asarray(image)
    seg = _as_labels(seg)
    if image.shape != seg.shape + (3,):
        raise ValueError(f'vis_seg: image shape {image.shape} does not match the label map '
                         f'{seg.shape}; expected {seg.shape + (3,)}')
    vis = image.astype(np.float32)
    mask = seg != background if background is not None else np.ones(seg.shape, bool)
    vis[mask] *= 1. - alpha
    vis[mask] += alpha * full_palette(palette)[seg[mask]]
    return vis.astype(np.uint8)


def label_png_bytes(seg, palette):
    """Encode a label map (H, W) as a mode-'P' PNG with the palette (256 entries)."""
    seg = _as_labels(seg)
    # frombytes, not fromarray(mode='P'): the latter's mode argument is deprecated in Pillow 11.3
    image = Image.frombytes('P', seg.shape[::-1], seg.astype(np.uint8).tobytes())
    image.putpalette(full_palette(palette).tobytes())
    buffer = io.BytesIO()
    image.save(buffer, format='PNG')
    return buffer.getvalue()


def save_label_png(path, seg, palette):
    """Write a label map as a paletted PNG, atomically: a reader (or a scorer resumed after a
    crash) never sees a half-written file."""
    atomic_write(path, label_png_bytes(seg, palette))


def class_histogram(seg, class_names):
    """Pixel counts per label, most frequent first: [(name, count), ...] for the labels
    present. Labels without a name (void 255) are listed as 'label <value>'."""
    counts = np.bincount(_as_labels(seg).ravel(), minlength=len(class_names))
    names = [class_names[k] if k < len(class_names) else f'label {k}'
             for k in range(len(counts))]
    present = [k for k in np.argsort(-counts, kind='stable') if counts[k]]
    return [(names[k], int(counts[k])) for k in present]


def _as_labels(seg):
    """Check a label map holds integer labels in [0, 255] and return it as intp."""
    seg = np.asarray(seg)
    if seg.ndim != 2:
        raise ValueError(f'label map must be 2-D (H, W), got shape {seg.shape}')
    if seg.dtype.kind not in 'iub':
        raise TypeError(f'label map must hold integer class indices, got dtype {seg.dtype}; '
                        f'take the argmax over the score channels first')
    if seg.size and (seg.min() < 0 or seg.max() >= PALETTE_SIZE):
        raise ValueError(f'label values must lie in [0, {PALETTE_SIZE - 1}], got '
                         f'[{seg.min()}, {seg.max()}]')
    return seg.astype(np.intp)
