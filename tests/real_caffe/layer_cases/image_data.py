"""ImageData and WindowData: PNG images (written with cv2) in the case folder.

ImageData: a source list of "path label" lines (paths with spaces, labels with a sign or
trailing text, as atoi reads them, CRLF endings, no final newline), images grey, BGR or BGRA
read with is_color true or false, under root_folder; new_height/new_width (resized as Caffe
resizes); crop_size in TEST (central), mean_value, mean_file, scale; batches that wrap
round the list (forwards=3); rand_skip 1 (Caffe draws rand() % 1 = 0); shuffle off. Without
resize or crop, images of different sizes go in batches of one. TRAIN only where nothing
is drawn: no crop, or a crop of the whole resized image (Caffe's Rand(1) offsets are 0).
Caffe aborts on new_height without new_width, an empty list, a first image that is
missing, and a crop larger than it.

WindowData draws every window of a batch at random (PrefetchRand() % the size of the
foreground or background list) even in TEST, and needs both lists non-empty. The rule here:
mirror is false, and each list a batch draws from (background for batch_size - num_fg
items, foreground for num_fg = int(batch_size * fg_fraction)) holds exactly one window, so
rand % 1 = 0 picks it whatever Caffe draws; the other windows of the file have overlaps
between bg_threshold and fg_threshold (ignored), or belong to a list no item draws from.
Overlaps equal to a threshold test the >= / < sides. Then: several images, context_pad,
crop_mode warp or square, windows reaching the border (clipped, the rest padded with 0),
scale, mean_value or mean_file (its centre crop), cache_images, root_folder, TRAIN or TEST.
Caffe aborts on a foreground window of class 0 and on an empty background list.
"""
import numpy as np

from real_caffe.cases import Case, layer, net
from real_caffe.layer_cases.db_data import _mean_writer


def _png_writer(pixels):
    def write(path):
        import cv2
        assert cv2.imwrite(str(path), pixels)
    return write


def _image(rng, channels, h, w):
    shape = (h, w) if channels == 1 else (h, w, channels)
    return rng.integers(0, 256, shape).astype(np.uint8)


def image_data(rng, i):
    is_color = i % 4 != 1
    resize = i % 3 == 1
    crop = i % 4 == 2 or (resize and i % 2 == 0)
    full = i in (4, 10)  # a TRAIN crop of the whole (resized) image: Rand(1) offsets are 0
    n = int(rng.integers(1, 6))
    base = [int(rng.integers(3, 8)), int(rng.integers(3, 8))]
    varied = not resize and i % 5 in (0, 3)
    sizes = [[d + int(rng.integers(0, 3)) for d in base] if varied else base for _ in range(n)]
    root = 'imgs/' if i % 2 else ''
    files, lines = {}, []
    for k, (h, w) in enumerate(sizes):
        name = f'im {k}.png' if i % 6 == 5 else f'im{k}.png'
        files[root + name] = _png_writer(_image(rng, int(rng.choice([1, 3, 4])), h, w))
        label = ['{}', '+{}', '{}abc', '{}'][k % 4].format(int(rng.integers(-3, 50)))
        lines.append(f'{name} {label}')
    ending = '\r\n' if i % 7 == 4 else '\n'
    files['list.txt'] = ending.join(lines) + ('' if i % 4 == 3 else ending)
    param = {'source': 'list.txt', 'batch_size': 1 if varied and not crop else
             int(rng.integers(1, 8)), 'is_color': is_color, 'shuffle': False}
    if root:
        param['root_folder'] = root
    if i % 8 == 6:
        param['rand_skip'] = 1
    out = base
    if resize:
        out = [int(rng.integers(2, 9)), int(rng.integers(2, 9))]
        if full:
            out[1] = out[0]
        param['new_height'], param['new_width'] = out
    channels = 3 if is_color else 1
    transform = {'scale': float(rng.choice([1.0, 0.5, 0.00390625])), 'mirror': False}
    if crop:
        transform['crop_size'] = out[0] if full else int(rng.integers(1, min(min(s) for s in
                                                         ([out] if resize else sizes)) + 1))
    mean = int(rng.integers(0, 3))
    if mean == 1:
        transform['mean_value'] = [float(v) for v in rng.uniform(0, 255, int(
            rng.choice([1, channels])))]
    elif mean == 2 and not varied:
        files['mean.binaryproto'] = _mean_writer(
            rng.uniform(0, 255, (channels, *out)).astype(np.float32), bool(i % 2))
        transform['mean_file'] = 'mean.binaryproto'
    if i == 16:
        param['new_height'], param['new_width'] = 4, 0
    if i == 17:
        files['list.txt'] = ''
    if i == 18:
        files['list.txt'] = 'absent.png 1\n' + files['list.txt']
    if i == 19:
        transform['crop_size'] = max(max(s) for s in sizes) + 9
    body = layer('d', 'ImageData', top=['data', 'label'], image_data_param=param,
                 transform_param=transform)
    abort = i >= 16
    phase = 'TEST' if (crop and not full) or i % 2 else 'TRAIN'
    return Case(net({}, body), files=files, phase=phase,
                forwards=1 if abort else 3, backward=not abort)


def _box(rng, h, w):
    x1, y1 = int(rng.integers(0, w)), int(rng.integers(0, h))
    return x1, y1, int(rng.integers(x1, w)), int(rng.integers(y1, h))


def window_data(rng, i):
    batch = int(rng.integers(1, 6))
    fg_fraction = float(rng.choice([0.0, 0.25, 0.5, 1.0, 0.7])) if i != 19 else 1.0
    num_fg = int(np.float32(batch) * np.float32(fg_fraction))
    fg_t, bg_t = float(rng.choice([0.5, 0.7])), float(rng.choice([0.3, 0.5]))
    crop = int(rng.integers(2, 9))
    n_images = int(rng.integers(1, 4))
    shapes = [(int(rng.integers(3, 12)), int(rng.integers(3, 12))) for _ in range(n_images)]
    if i % 4 == 3:  # sections listed out of index order: windows of any image fit all
        shapes = shapes[:1] * n_images
    root = 'w/' if i % 3 == 1 else ''
    files = {f'{root}img{k}.png': _png_writer(_image(rng, int(rng.choice([1, 3, 4])), h, w))
             for k, (h, w) in enumerate(shapes)}
    windows = [[] for _ in range(n_images)]

    def add(kind, many):
        for _ in range(int(rng.integers(2, 4)) if many else 1):
            k = int(rng.integers(0, n_images))
            if kind == 'fg':
                label, overlap = int(rng.integers(1, 6)), float(rng.choice([fg_t, 0.9, 1.0]))
            elif kind == 'bg':
                label, overlap = int(rng.integers(0, 6)), float(rng.choice([0.0, bg_t - 0.1]))
            else:  # between the thresholds, or equal to bg_threshold: ignored
                label, overlap = int(rng.integers(0, 6)), bg_t
            windows[k].append((label, overlap, *_box(rng, *shapes[k])))
    add('fg', num_fg == 0)
    if i != 19:  # without a background window Caffe aborts, even when no item needs one
        add('bg', num_fg == batch)
    if fg_t > bg_t:
        add('ignored', True)
    if i == 18:  # a foreground window of class 0
        windows[0].append((0, 1.0, 0, 0, 0, 0))
    order = list(range(n_images))
    if i % 4 == 3:
        rng.shuffle(order)  # sections listed out of index order
    text = []
    for k in order:
        h, w = shapes[k]
        text.append(f'# {k}\nimg{k}.png\n3\n{h}\n{w}\n{len(windows[k])}')
        text += [' '.join(str(v) for v in window) for window in windows[k]]
    files['windows.txt'] = '\n'.join(text) + '\n'
    param = {'source': 'windows.txt', 'batch_size': batch, 'fg_threshold': fg_t,
             'bg_threshold': bg_t, 'fg_fraction': fg_fraction,
             'context_pad': int(rng.integers(0, (crop + 1) // 2)) if i % 2 else 0,
             'crop_mode': 'square' if i % 5 in (1, 2) else 'warp',
             'scale': float(rng.choice([1.0, 0.5, 0.00390625])), 'cache_images': i % 6 == 4}
    if root:
        param['root_folder'] = root
    transform = {'crop_size': crop, 'mirror': False}
    if i % 4 == 1:
        transform['mean_value'] = [float(v) for v in rng.uniform(0, 255, int(
            rng.choice([1, 3])))]
    elif i % 4 == 2:
        side = crop + 2 * int(rng.integers(0, 3))
        files['mean.binaryproto'] = _mean_writer(
            rng.uniform(0, 255, (3, side, side)).astype(np.float32), False)
        transform['mean_file'] = 'mean.binaryproto'
    body = layer('d', 'WindowData', top=['data', 'label'], window_data_param=param,
                 transform_param=transform)
    abort = i >= 18
    return Case(net({}, body), files=files, phase='TEST' if i % 2 else 'TRAIN',
                forwards=1 if abort else 3, backward=not abort)


GENERATORS = {'ImageData': image_data, 'WindowData': window_data}
