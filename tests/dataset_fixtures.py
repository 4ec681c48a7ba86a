"""Tiny datasets in the real on-disk formats, for tests of data layers, nets and solving.

Each make_* writes into `root` (created if needed) and returns its path; point the toolkit at
it with `dataset_env` (a context manager) or `set_dataset_env(monkeypatch, ...)`:

    voc = make_voc(tmp_path / 'voc', sizes=(6, 8))
    set_dataset_env(monkeypatch, voc=voc)
    net = data_net(tmp_path, 'data_layers.voc', 'VOCSegDataLayer',
                   "{'split': 'seg11valid', 'randomize': False}", ['data', 'label'])

Common arguments: `ids` (the image ids), `sizes` ((H, W) for every id, or {id: (H, W)}),
`splits` ({split name: ids}; the defaults are the splits the nets use), `seed` (images and
labels are drawn from np.random.default_rng(seed)). Label arguments ({id: array}) replace
the random labels of those ids and are written with the file's dtype, so tests can plant
bad values. Formats and dtypes written:

  make_voc         JPEGImages/{id}.jpg; SegmentationClass/{id}.png, mode P with the VOC
                   palette, indices 0-20 and 255; ImageSets/Segmentation/{split}.txt
  make_sbdd        img/{id}.jpg; cls/{id}.mat with the 1x1 struct GTcls {Segmentation uint8,
                   Boundaries (20x1 cell of sparse), CategoriesPresent uint8}; {split}.txt
  make_nyud        data/images/img_{id}.png RGB; data/depth/img_{id}.png 16-bit (uint16 > 0);
                   data/hha/img_{id}.png RGB; segmentation/img_{id}.mat 'segmentation'
                   uint8 (0 void, 1-40); {split}.txt
  make_siftflow    Images|SemanticLabels|GeoLabels/<CATEGORY>/{id}.jpg|.mat with 'S' as
                   MATLAB double (sem 0 void, 1-33; geo -1 void, 1-3) and 'names'; {split}.txt
  make_pascal_context  VOC2010-style JPEGImages/{id}.jpg and ImageSets/Main/{split}.txt;
                   trainval/{id}.mat 'LabelMap' uint16 of full-list ids; labels.txt
                   (CONTEXT_FULL) and 59_labels.txt (CONTEXT_59), as "id: name" lines
"""
import contextlib
import os
import pathlib

import numpy as np
import scipy.io
import scipy.sparse
from PIL import Image

from data_layers.paths import env_var

SIFTFLOW_CATEGORY = 'spatial_envelope_256x256_static_8outdoorcategories'

# PASCAL-Context's 59-class task in 59_labels.txt order and spelling (fcn's classes-59.txt).
CONTEXT_59 = (
    'aeroplane bicycle bird boat bottle bus car cat chair cow diningtable dog horse motorbike '
    'person pottedplant sheep sofa train tvmonitor bag bed bench book building cabinet ceiling '
    'clothes computer cup door fence floor flower food grass ground keyboard light mountain '
    'mouse curtain platform sign plate road rock shelves sidewalk sky snow bedcloth track tree '
    'truck wall water window wood').split()
_FULL_SPELLING = {'diningtable': 'table', 'bedcloth': 'bedclothes', 'clothes': 'cloth'}
# A shortened full list: the 59 in labels.txt spelling plus classes outside the task (some
# with spaces, as the real 459-line list), sorted as the real one is.
CONTEXT_FULL = tuple(sorted([_FULL_SPELLING.get(n, n) for n in CONTEXT_59]
                            + ['accordion', 'air conditioner', 'baby carriage', 'unknown',
                               'wool']))


def voc_palette():
    """The 256-colour VOC palette as PIL wants it (768 ints): bits of k spread over RGB."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    for k in range(256):
        label, shift = k, 7
        while label:
            for channel in range(3):
                palette[k, channel] |= ((label >> channel) & 1) << shift
            label >>= 3
            shift -= 1
    return palette.reshape(-1).tolist()


def make_voc(root, ids=('2007_000032', '2007_000039', '2007_000063'), sizes=(6, 8),
             splits=None, labels=None, seed=0):
    """PASCAL VOC 2011 layout (dataset 'voc'); default splits train and seg11valid."""
    root, rng = pathlib.Path(root), np.random.default_rng(seed)
    for i in ids:
        h, w = _size(sizes, i)
        _jpeg(root / 'JPEGImages' / f'{i}.jpg', rng, h, w)
        label = _pick(labels, i, lambda: _voc_label(rng, h, w))
        png = Image.fromarray(np.asarray(label, dtype=np.uint8), mode='P')
        png.putpalette(voc_palette())
        _save(png, root / 'SegmentationClass' / f'{i}.png')
    _splits(root / 'ImageSets' / 'Segmentation', splits or {'train': ids, 'seg11valid': ids})
    return root


def make_sbdd(root, ids=('2008_000002', '2008_000003', '2008_000007'), sizes=(6, 8),
              splits=None, labels=None, seed=0):
    """SBD's dataset/ layout (dataset 'sbdd'); default splits train and val."""
    root, rng = pathlib.Path(root), np.random.default_rng(seed)
    for i in ids:
        h, w = _size(sizes, i)
        _jpeg(root / 'img' / f'{i}.jpg', rng, h, w)
        seg = np.asarray(_pick(labels, i, lambda: _voc_label(rng, h, w, void=False)),
                         dtype=np.uint8)
        boundaries = np.empty((20, 1), dtype=object)
        for k in range(20):
            boundaries[k, 0] = scipy.sparse.csc_matrix((seg == k + 1).astype(float))
        present = np.unique(seg[(seg > 0) & (seg < 21)]).astype(np.uint8)[:, None]
        _mat(root / 'cls' / f'{i}.mat', GTcls={'Segmentation': seg, 'Boundaries': boundaries,
                                               'CategoriesPresent': present})
    _splits(root, splits or {'train': ids, 'val': ids})
    return root


def make_nyud(root, ids=('5001', '5002', '5003'), sizes=(6, 8), splits=None, labels=None,
              depths=None, seed=0):
    """FCN's NYUDv2 layout (dataset 'nyud'); default splits trainval and test."""
    root, rng = pathlib.Path(root), np.random.default_rng(seed)
    for i in ids:
        h, w = _size(sizes, i)
        _save(Image.fromarray(_rgb(rng, h, w)), root / 'data' / 'images' / f'img_{i}.png')
        _save(Image.fromarray(_rgb(rng, h, w)), root / 'data' / 'hha' / f'img_{i}.png')
        depth = _pick(depths, i, lambda: rng.integers(500, 10000, (h, w)))
        _save(Image.fromarray(np.asarray(depth, dtype=np.uint16)),
              root / 'data' / 'depth' / f'img_{i}.png')
        label = _pick(labels, i, lambda: rng.integers(0, 41, (h, w)))
        _mat(root / 'segmentation' / f'img_{i}.mat',
             segmentation=np.asarray(label, dtype=np.uint8))
    _splits(root, splits or {'trainval': ids, 'test': ids})
    return root


def make_siftflow(root, ids=('coast_arnat59', 'forest_for15', 'mountain_land188'),
                  sizes=(8, 8), splits=None, sem=None, geo=None, seed=0):
    """SIFT Flow layout (dataset 'siftflow'; real images are 256 x 256); splits trainval, test."""
    root, rng = pathlib.Path(root), np.random.default_rng(seed)
    for i in ids:
        h, w = _size(sizes, i)
        _jpeg(root / 'Images' / SIFTFLOW_CATEGORY / f'{i}.jpg', rng, h, w)
        s = _pick(sem, i, lambda: rng.integers(0, 34, (h, w)))
        g = _pick(geo, i, lambda: rng.choice([-1, 1, 2, 3], (h, w)))
        names = np.array([f'class{k}' for k in range(1, 34)], dtype=object)
        _mat(root / 'SemanticLabels' / SIFTFLOW_CATEGORY / f'{i}.mat',
             S=np.asarray(s, dtype=np.float64), names=names)
        _mat(root / 'GeoLabels' / SIFTFLOW_CATEGORY / f'{i}.mat',
             S=np.asarray(g, dtype=np.float64),
             names=np.array(['sky', 'horizontal', 'vertical'], dtype=object))
    _splits(root, splits or {'trainval': ids, 'test': ids})
    return root


def make_pascal_context(voc2010_root, context_root, ids=('2008_000002', '2008_000007'),
                        sizes=(6, 8), splits=None, labels=None, seed=0):
    """VOC2010 images (dataset 'voc2010') and PASCAL-Context labels (dataset
    'pascal_context'); default splits train and val. Returns (voc2010_root, context_root)."""
    voc, context = pathlib.Path(voc2010_root), pathlib.Path(context_root)
    rng = np.random.default_rng(seed)
    for i in ids:
        h, w = _size(sizes, i)
        _jpeg(voc / 'JPEGImages' / f'{i}.jpg', rng, h, w)
        label = _pick(labels, i, lambda: rng.integers(1, len(CONTEXT_FULL) + 1, (h, w)))
        _mat(context / 'trainval' / f'{i}.mat', LabelMap=np.asarray(label, dtype=np.uint16))
    _splits(voc / 'ImageSets' / 'Main', splits or {'train': ids, 'val': ids})
    _write(context / 'labels.txt',
           ''.join(f'{k}: {n}\n' for k, n in enumerate(CONTEXT_FULL, 1)))
    _write(context / '59_labels.txt', ''.join(f'{k}: {n}\n' for k, n in enumerate(CONTEXT_59, 1)))
    return voc, context


def context_task_label(label_map):
    """The 59-class label of a LabelMap, computed independently of the layer (for tests)."""
    out = np.zeros(np.shape(label_map), dtype=np.uint8)
    for position, name in enumerate(CONTEXT_59, 1):
        out[np.asarray(label_map) == CONTEXT_FULL.index(_FULL_SPELLING.get(name, name)) + 1] = \
            position
    return out


@contextlib.contextmanager
def dataset_env(**folders):
    """Set FCN_<NAME>_DIR for each name=folder inside the block, then restore."""
    saved = {env_var(n): os.environ.get(env_var(n)) for n in folders}
    os.environ.update({env_var(n): str(f) for n, f in folders.items()})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def set_dataset_env(monkeypatch, **folders):
    """The same with pytest's monkeypatch (undone after the test)."""
    for name, folder in folders.items():
        monkeypatch.setenv(env_var(name), str(folder))


def data_net(folder, module, layer, param_str, tops, phase=None, name='data'):
    """A net of one Python data layer, written to `folder`/<name>.prototxt and built."""
    from backend import caffe
    escaped = param_str.replace('\\', '\\\\').replace('"', '\\"')
    text = (f'name: "{name}_net"\nlayer {{ name: "{name}" type: "Python" '
            + ''.join(f'top: "{t}" ' for t in tops)
            + f'python_param {{ module: "{module}" layer: "{layer}" '
              f'param_str: "{escaped}" }} }}\n')
    path = pathlib.Path(folder) / f'{name}.prototxt'
    path.write_text(text)
    return caffe.Net(str(path), caffe.TRAIN if phase is None else phase)


def read_rgb(path):
    """An image file as float32 H x W x C, as PIL decodes it (the reference's first step)."""
    with Image.open(path) as im:
        return np.array(im, dtype=np.float32)


# -- writing helpers ----------------------------------------------------------------------
def _size(sizes, i):
    return tuple(sizes[i] if isinstance(sizes, dict) else sizes)


def _pick(given, i, make):
    return given[i] if given and i in given else make()


def _rgb(rng, h, w):
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _voc_label(rng, h, w, void=True):
    label = rng.integers(0, 21, (h, w)).astype(np.uint8)
    if void:
        label[0, :] = 255  # VOC outlines objects with void
    return label


def _jpeg(path, rng, h, w):
    _save(Image.fromarray(_rgb(rng, h, w)), path, quality=95)


def _save(image, path, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **kwargs)


def _mat(path, **variables):
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(str(path), variables)


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _splits(folder, splits):
    for split, ids in splits.items():
        _write(pathlib.Path(folder) / f'{split}.txt', ''.join(f'{i}\n' for i in ids))
