"""SegDataLayer: the one base of the FCN data layers, one image (and its labels) per forward.

Lifecycle (as fcn's voc_layers.py; batch 1 at native size, so nets pad and crop):
  setup:    check param_str against the class schema, read the split list, pick the start
  reshape:  load sample indices[idx] and reshape each top to 1 x C x H x W
  forward:  copy the sample into the tops, move to the next index
  backward: nothing; a data layer takes no bottoms

Order comes from the `randomize` and `seed` params only, never from the split name (the
reference turned randomization off whenever 'train' was not in the split name).
  randomize=False  sequential from index 0, wrapping after the last id
  randomize=True   the reference's draws: a random start index at setup, then each forward
                   draws randint(0, n - 1), uniformly WITH replacement (no epochs)
The draws come from a random.Random(seed) owned by each layer. The reference seeded the global
`random` module, which its train and test layers shared; ours differ from it only in not
sharing that state, so one random layer draws exactly the reference's sequence.
In data-parallel training (caffe.solver_count() > 1), a TRAIN-phase layer of rank r draws with
seed + r, or reads ids r, r + count, r + 2 count, ... so the ranks see different images.

Images: PIL -> float32 -> RGB to BGR -> minus the mean -> HWC to CHW. Labels: 1 x H x W
(uint8 class indices, 255 = void), written into the float tops. Subclasses: see SegDataLayer.
Bad data raises BadDataError or SampleMissingError, naming the file and the id.
"""
import random
import struct
import zlib

import numpy as np
import scipy.io
from PIL import Image

import atomic_files
from backend import caffe
from data_layers.param_str import (  # noqa: F401 (the layers' and users' names for them)
    COMMON_KEYS, REQUIRED, DataLayerSetupError, Key, ParamStrError, dataset_key, is_mean,
    parse_param_str, scale_key)
from data_layers.paths import (DatasetMissingError, dataset_dir, incomplete_message, reinstall,
                               split_list)

VOID = 255


class BadDataError(ValueError):
    """A dataset file that is unreadable or inconsistent with its sample or its task."""


class SampleMissingError(DatasetMissingError):
    """A file of an id listed in a split list is not on disk."""


class SegDataLayer(caffe.Layer):
    """Base data layer: tops = one array per entry of `self.tops`, each 1 x C x H x W.

    Class attributes a subclass declares:
      dataset     data_layers.paths name of the folder holding the split lists
      split_file  split list path in that folder, with {split}
      files       {top: (dataset, path template with {id})}: where each top's file lives
      top_names   the tops, in order (a 'tops' param_str key overrides it)
      classes     {label top: class count}; label values must be < count or 255
      mean        BGR mean of the 'data' top (a 'mean' param_str key overrides it)
      param_keys  {key: Key} beyond split/randomize/seed (dataset_key(...) lets param_str
                  choose the dataset, e.g. another folder in the same layout)
      example     a param_str that works, shown in error messages
    """
    dataset = None
    split_file = '{split}.txt'
    files = {}
    top_names = ('data', 'label')
    classes = {}
    mean = (0.0, 0.0, 0.0)
    mean_dtype = np.float32  # the reference's: float64 where its mean came from param_str
    param_keys = {}
    example = "{'split': 'train', 'randomize': True, 'seed': 1337}"
    remap = ''  # how stored label values become the top's values, for error messages

    @property
    def where(self):
        """'layer "<name>" (<class>)'; the name is absent under pycaffe, which hides it."""
        name = getattr(getattr(self, 'layer_param', None), 'name', '?')
        return f'layer "{name}" ({type(self).__name__})'

    @classmethod
    def schema(cls):
        return {**COMMON_KEYS, **cls.param_keys}

    # -- caffe.Layer ----------------------------------------------------------------------
    def setup(self, bottom, top):
        if len(bottom):
            raise DataLayerSetupError(f'{self.where}: is a data layer and takes no bottom blobs, '
                                  f'got {len(bottom)}')
        self.params = parse_param_str(getattr(self, 'param_str', ''), self.schema(),
                                      self.where, self.example)
        if self.params['randomize'] and self.params['seed'] is None:
            raise ParamStrError(f'{self.where}: param_str has randomize=True but no seed; add '
                                f"'seed': <int> so the order can be reproduced. Example: "
                                f'param_str: "{self.example}"')
        if self.params.get('dataset'):
            self.dataset = self.params['dataset']   # the instance's, over the class's
        self.tops = list(self.params.get('tops') or self.top_names)
        if len(top) != len(self.tops):
            raise DataLayerSetupError(f'{self.where}: produces {len(self.tops)} top(s) '
                                  f'({", ".join(self.tops)}), in that order, but {len(top)} '
                                  f'top blob(s) are declared')
        self.mean_bgr = np.array(self.params.get('mean') or self.mean, dtype=self.mean_dtype)
        self.scale = np.float32(self.params.get('scale', 1.0))
        self._folders = {}
        self.indices = self.read_split()
        rank, self.stride = self._rank_and_count()
        self.rng = random.Random(self.params['seed'] + rank) if self.params['randomize'] \
            else None
        self.idx = self.rng.randint(0, len(self.indices) - 1) if self.rng \
            else rank % len(self.indices)
        self._loaded_idx = None

    def _rank_and_count(self):
        """(rank, solver count) when this TRAIN layer is one of several data-parallel
        solvers; test nets run on the root solver only and read every id."""
        count = getattr(caffe, 'solver_count', lambda: 1)()
        if count <= 1 or getattr(self, 'phase', 0) != caffe.TRAIN:
            return 0, 1
        return caffe.solver_rank(), count

    def reshape(self, bottom, top):
        if self._loaded_idx != self.idx:
            sample_id = self.indices[self.idx]
            arrays = self.load_tops(sample_id)
            self.check_sample(arrays, sample_id)
            self.sample = [arrays[name] for name in self.tops]
            self._loaded_idx = self.idx
        for i, array in enumerate(self.sample):  # pycaffe's top: len and [i] only
            top[i].reshape(1, *array.shape)

    def forward(self, bottom, top):
        for i, array in enumerate(self.sample):
            top[i].data[...] = array
        self.advance()

    # -- what a solverstate leaves out (solve.resume_state saves it beside) -------------------
    def get_state(self):
        """Read position and random state, JSON-ready."""
        return {'idx': self.idx, 'rng': _plain(self.rng.getstate()) if self.rng else None}

    def set_state(self, state):
        """Continue from `state` (of get_state): the next forward reads what it would have."""
        self.idx = int(state['idx'])
        if self.rng is not None and state['rng'] is not None:
            version, internal, gauss = state['rng']
            self.rng.setstate((version, tuple(internal), gauss))
        self.forget_loaded()

    def forget_loaded(self):
        """Drop the sample read ahead for the old position."""
        self._loaded_idx = None

    def advance(self):
        """Move to the next sample: a random draw (with replacement) or the next in order."""
        if self.rng is not None:
            self.idx = self.rng.randint(0, len(self.indices) - 1)
        else:
            self.idx = (self.idx + self.stride) % len(self.indices)

    def backward(self, top, propagate_down, bottom):
        pass

    # -- what subclasses override -----------------------------------------------------------
    def load_tops(self, sample_id):
        """{top name: C x H x W array} for one id; the default serves (data, label) layers."""
        return {'data': self.load_image(sample_id), 'label': self.load_label(sample_id)}

    def load_image(self, sample_id):
        """3 x H x W float32: the 'data' file as BGR minus the mean (times a 'scale' key's
        value, where the layer has one)."""
        return self.bgr_minus_mean(self.read_rgb('data', sample_id), self.mean_bgr, self.scale)

    def load_label(self, sample_id):
        raise NotImplementedError(f'{type(self).__name__} defines no load_label')

    # -- files ------------------------------------------------------------------------------
    def folder(self, dataset):
        """dataset_dir(dataset), with this layer's name on the error."""
        if dataset not in self._folders:
            try:
                self._folders[dataset] = dataset_dir(dataset)
            except DatasetMissingError as e:
                raise DatasetMissingError(f'{self.where}: {e}') from None
        return self._folders[dataset]

    def dataset_of(self, top):
        """The dataset holding `top`'s files: the layer's own (which a 'dataset' key may
        have chosen) for files declared under the class's dataset."""
        dataset = self.files[top][0]
        return self.dataset if dataset == type(self).dataset else dataset

    def file(self, top, sample_id):
        return self.folder(self.dataset_of(top)) / self.files[top][1].format(id=sample_id)

    def read_split(self):
        split, folder = self.params['split'], self.folder(self.dataset)
        path = split_list(self.dataset, self.split_file.format(split=split))
        if not path.is_file():
            lists = sorted(p.stem for p in path.parent.glob('*.txt'))
            raise DatasetMissingError(
                f'{self.where}: no list for split "{split}" at {path} (split lists there: '
                f'{", ".join(lists) or "none"}). Check the split name; if the list should be '
                f'there: {incomplete_message(self.dataset, path)}')
        try:
            text = path.read_text(encoding='utf-8')
        except UnicodeDecodeError as e:
            raise BadDataError(f'{self.where}: split list {path} is not UTF-8 text ({e}); it '
                               f'needs one image id per line') from None
        numbered = [(k, line.strip()) for k, line in enumerate(text.splitlines(), 1)
                    if line.strip()]
        for number, sample_id in numbered:
            if _leaves_folder(sample_id):
                raise BadDataError(
                    f'{self.where}: line {number} of split list {path}, {sample_id!r}, leads out '
                    f'of the dataset folder {folder}: ids name files inside it (no "..", no '
                    f'absolute path). Fix that line of the list.')
        indices = [sample_id for _, sample_id in numbered]
        if not indices:
            raise BadDataError(f'{self.where}: split list {path} is empty; it needs one image '
                               f'id per line')
        return indices

    def require(self, top, sample_id):
        path = self.file(top, sample_id)
        problem = atomic_files.file_problem(path)
        if problem:
            dataset = self.dataset_of(top)
            raise SampleMissingError(
                f'{self.where}: id "{sample_id}" is listed in split "{self.params["split"]}" '
                f'but its {top} file {path} {problem}. Remove the id from the list, '
                f'or: {incomplete_message(dataset, path)}')
        return path

    def read_image(self, top, sample_id):
        """The image file of `top` as a float32 array (H x W or H x W x C)."""
        path = self.require(top, sample_id)
        try:
            with Image.open(path) as im:
                return np.array(im, dtype=np.float32)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            raise BadDataError(f'{self.where}: cannot read the {top} image {path} (id '
                               f'"{sample_id}"): {e}. Replace it with the file from the '
                               f'dataset archive.') from e

    def read_rgb(self, top, sample_id):
        array = self.read_image(top, sample_id)
        if array.ndim != 3 or array.shape[2] != 3:
            raise BadDataError(f'{self.where}: the {top} image {self.file(top, sample_id)} '
                               f'(id "{sample_id}") has shape {array.shape}; expected an RGB '
                               f'image, H x W x 3')
        return array

    def read_mat(self, top, sample_id, key):
        """Variable `key` of the .mat file of `top`."""
        path = self.require(top, sample_id)
        try:
            mat = scipy.io.loadmat(str(path))
        # a damaged or truncated file fails deep in scipy's reader, with whatever it hit
        except (ValueError, OSError, NotImplementedError, scipy.io.matlab.MatReadError,
                IndexError, KeyError, TypeError, EOFError, struct.error, zlib.error) as e:
            self.damaged_mat(top, sample_id, f'{type(e).__name__}: {e}')
        if not any(not k.startswith('__') for k in mat):  # a header and nothing after it
            self.damaged_mat(top, sample_id, 'it holds no variable')
        if key not in mat:
            names = sorted(k for k in mat if not k.startswith('__'))
            raise BadDataError(f'{self.where}: the {top} file {path} (id "{sample_id}") has no '
                               f'variable "{key}"; it holds {names}')
        return mat[key]

    def damaged_mat(self, top, sample_id, why):
        path = self.file(top, sample_id)
        raise BadDataError(
            f'{self.where}: cannot read the {top} file {path} (id "{sample_id}", '
            f'{path.stat().st_size} bytes) as a MATLAB .mat file ({why}): it is damaged or '
            f'truncated. Replace it with the file from the dataset archive; '
            f'{reinstall(self.dataset_of(top))}')

    # -- conversions and checks -------------------------------------------------------------
    @staticmethod
    def bgr_minus_mean(rgb, mean, scale=1):
        """H x W x 3 RGB float32 -> 3 x H x W BGR minus `mean` (BGR), times `scale` after the
        subtraction as Caffe's transform_param (skipped at 1: the values stay bit-exact)."""
        image = (rgb[:, :, ::-1] - mean).transpose(2, 0, 1)
        if scale != 1:
            image = image * np.asarray(scale, image.dtype)
        return image.astype(np.float32, copy=False)  # one rounding, as the reference's -=

    def as_uint8(self, raw, top, sample_id):
        """An H x W label array cast to uint8, refusing values the cast would wrap."""
        raw = np.asarray(raw)
        path = self.file(top, sample_id)
        if raw.ndim != 2:
            raise BadDataError(f'{self.where}: the {top} labels in {path} (id "{sample_id}") '
                               f'have shape {raw.shape}; expected an H x W array of indices')
        if raw.dtype.kind == 'f':
            fractional = raw[~np.isfinite(raw) | (raw != np.round(raw))]
            if fractional.size:
                raise BadDataError(
                    f'{self.where}: label value {fractional.flat[0]} in {path} (id '
                    f'"{sample_id}") is not a whole number; labels are class indices, and '
                    f'a cast would silently make it another class. Fix the label file.')
        outside = raw[(raw < 0) | (raw > 255)]
        if outside.size:
            raise BadDataError(f'{self.where}: label value {outside.flat[0]} in {path} (id '
                               f'"{sample_id}") does not fit the uint8 labels (0..255)')
        return raw.astype(np.uint8)

    def check_sample(self, arrays, sample_id):
        """Every top has the same H x W; label values are < classes or 255 (void)."""
        first = self.tops[0]
        for name in self.tops[1:]:
            if arrays[name].shape[-2:] != arrays[first].shape[-2:]:
                (h, w), (h0, w0) = arrays[name].shape[-2:], arrays[first].shape[-2:]
                raise BadDataError(
                    f'{self.where}: id "{sample_id}": {name} is {h}x{w} (HxW, '
                    f'{self.file(name, sample_id)}) but {first} is {h0}x{w0} '
                    f'({self.file(first, sample_id)}); the files of one id must have the same '
                    f'size')
        for name in (n for n in self.tops if n in self.classes):
            values, count = np.unique(arrays[name]), self.classes[name]
            bad = values[(values >= count) & (values != VOID)]
            if bad.size:
                raise BadDataError(
                    f'{self.where}: label value {int(bad[0])} in {self.file(name, sample_id)} '
                    f'(id "{sample_id}", top {name}) is outside [0, {count}) and is not '
                    f'{VOID} (void){self.remap}')


def _plain(value):
    """Tuples as lists, recursively: random.Random's state as JSON."""
    return [_plain(v) for v in value] if isinstance(value, (tuple, list)) else value


def _leaves_folder(sample_id):
    """Whether a split list entry, formatted into a file name, could name a file outside its
    dataset folder: an absolute path, a '..' component (before a label, in ImageData-style
    "<path> <label>" lines), a NUL."""
    parts = [part.split()[0] for part in sample_id.replace('\\', '/').split('/') if part.split()]
    return sample_id.startswith('/') or '\0' in sample_id or '..' in parts
