"""HDF5Data and HDF5Output (hdf5_data_layer.cpp, hdf5_output_layer.cpp), through h5py.

HDF5Data reads one file at a time, whole, as Caffe does; rows are taken in order, a batch
continuing into the next file (and from the last file round to the first) when a file runs
out. HDF5Output creates its file when the net is set up and writes on forward.
"""
import os

import numpy as np
import torch

from caffe_torch import mode
from caffe_torch.data_transformer import shuffle
from caffe_torch.errors import DataRecordError, DataSourceError
from caffe_torch.layer import Layer
from caffe_torch.layer_factory import register
from caffe_torch.layer_types.db_data import positive_batch_size, where
from caffe_torch.proto import caffe_pb2


def read_list(path, layer, field):
    """The text file `path` named by `field`; DataSourceError when it cannot be read."""
    try:
        with open(path, encoding='utf-8', errors='surrogateescape') as f:
            return f.read()
    except OSError as e:
        raise DataSourceError(f'{where(layer)}: cannot open {field} "{path}": '
                              f'{e.strerror} (relative paths start at {os.getcwd()})') \
            from None


@register('HDF5Data')
class HDF5DataLayer(Layer):
    """Rows of HDF5 datasets: hdf5_data_param.source (a text file listing .h5 files,
    separated by whitespace as Caffe reads it), batch_size, shuffle.

    bottoms: none. tops: one per dataset, named after the top (top "label" reads dataset
      "label"): batch_size x (the dataset's trailing dimensions). Every top's dataset must
      have as many rows as the first; float and integer datasets are converted to float32.
    shuffle: the file order is shuffled at set-up and at every pass over the files, and
      the rows of each file when it is loaded and at each pass over it (as Caffe: a file's
      rows stay together). No transform_param (Caffe refuses it).
    """
    exact_bottoms = 0
    min_tops = 1

    def setup(self, bottom, top):
        if self.layer_param.HasField('transform_param'):
            self.fail('HDF5Data does not transform data; remove transform_param (scale or '
                      'subtract the mean when writing the HDF5 files)')
        param = self.layer_param.hdf5_data_param
        self.batch_size = positive_batch_size(self, param.batch_size,
                                              'hdf5_data_param.batch_size')
        self.shuffle = bool(param.shuffle)
        self.filenames = read_list(param.source, self, 'hdf5_data_param.source').split()
        if not self.filenames:
            self.fail(f'must have at least 1 HDF5 filename listed in "{param.source}"; the '
                      f'file is empty')
        self.file_permutation = list(range(len(self.filenames)))
        if self.shuffle:
            shuffle(self.file_permutation)
        self.current_file, self.current_row, self.offset = 0, 0, 0
        self.trailing = None
        self._load(self.filenames[self.file_permutation[0]])
        for blob, data in zip(top, self.data):
            blob.reshape(self.batch_size, *data.shape[1:])

    def reshape(self, bottom, top):
        """The tops keep their set-up shape."""

    def forward(self, bottom, top):
        if self._within_file():  # the batch is the next rows of this file: one slice
            end = self.current_row + self.batch_size
            index = self.permutation[self.current_row:end]
            self.current_row, self.offset = end, self.offset + self.batch_size
            for blob, array in zip(top, self.data):
                blob.data_tensor.copy_(torch.from_numpy(np.take(array, index, axis=0)))
            return
        rows = []
        for _ in range(self.batch_size):
            while self._skip():
                self._next()
            rows.append((self.data, self.permutation[self.current_row]))
            self._next()
        if all(data is rows[0][0] for data, _ in rows):  # one file: one gather per top
            index = np.fromiter((row for _, row in rows), np.int64, len(rows))
            batches = [np.take(array, index, axis=0) for array in rows[0][0]]
        else:
            batches = [np.stack([data[j][row] for data, row in rows]) for j in range(len(top))]
        for blob, batch in zip(top, batches):
            blob.data_tensor.copy_(torch.from_numpy(batch))

    def _within_file(self):
        """Whether the batch takes every row (one solver, or TEST) and ends before the file
        does (the row after it exists), so no file change or reshuffle falls inside it."""
        every_row = mode.solver_count() == 1 or self.phase == caffe_pb2.TEST
        return every_row and self.current_row + self.batch_size < len(self.permutation)

    def _skip(self):
        keep = self.offset % mode.solver_count() == mode.solver_rank() or \
            self.phase == caffe_pb2.TEST
        return not keep

    def _next(self):
        self.current_row += 1
        if self.current_row == len(self.permutation):
            if len(self.filenames) > 1:
                self.current_file += 1
                if self.current_file == len(self.filenames):
                    self.current_file = 0
                    if self.shuffle:
                        shuffle(self.file_permutation)
                self._load(self.filenames[self.file_permutation[self.current_file]])
            self.current_row = 0
            if self.shuffle:
                shuffle(self.permutation)
        self.offset += 1

    def _load(self, filename):
        """Read every top's dataset from `filename` (Caffe's LoadHDF5FileData)."""
        import h5py
        try:
            handle = h5py.File(filename, 'r')
        except (OSError, ValueError) as e:
            raise DataSourceError(
                f'{where(self)}: failed opening HDF5 file "{filename}" (listed in '
                f'"{self.layer_param.hdf5_data_param.source}"): {e}; relative paths start '
                f'at {os.getcwd()}, not at the list file') from None
        with handle:
            self.data = [self._dataset(handle, filename, name) for name in
                         self.layer_param.top]
        rows = len(self.data[0])
        for name, data in zip(self.layer_param.top, self.data):
            if len(data) != rows:
                raise DataRecordError(
                    f'{where(self)}: in "{filename}" dataset "{name}" has {len(data)} rows '
                    f'but "{self.layer_param.top[0]}" has {rows}; every top\'s dataset needs '
                    f'one row per example')
        trailing = [d.shape[1:] for d in self.data]
        if self.trailing is not None and trailing != self.trailing:
            raise DataRecordError(
                f'{where(self)}: the datasets of "{filename}" have per-row shapes '
                f'{trailing}, those of the first file {self.trailing}; all files must agree')
        self.trailing = trailing
        self.permutation = list(range(rows))
        if self.shuffle:
            shuffle(self.permutation)

    def _dataset(self, handle, filename, name):
        if name not in handle or not hasattr(handle[name], 'dtype'):
            found = ', '.join(sorted(handle)) or 'none'
            raise DataRecordError(
                f'{where(self)}: failed to find HDF5 dataset "{name}" in "{filename}" '
                f'(datasets there: {found}); a top reads the dataset of its own name')
        dataset = handle[name]
        if dataset.dtype.kind not in 'fiu':
            raise DataRecordError(
                f'{where(self)}: dataset "{name}" in "{filename}" has type {dataset.dtype}; '
                f'Caffe reads float and integer datasets only')
        if dataset.ndim < 1 or dataset.shape[0] == 0:
            raise DataRecordError(
                f'{where(self)}: dataset "{name}" in "{filename}" has shape '
                f'{dataset.shape}; it needs at least 1 axis and 1 row')
        return np.asarray(dataset[()], dtype=np.float32)


@register('HDF5Output')
class HDF5OutputLayer(Layer):
    """Writes its two bottoms to hdf5_output_param.file_name, as datasets "data" and
    "label", each reshaped to the 4-d num x channels x height x width of Caffe's legacy
    shape (a label of shape (N,) is written N x 1 x 1 x 1).

    bottoms: data and label with the same num. tops: none.
    The file is created (truncated) at set-up and closed when the layer goes. Caffe makes
    the two datasets on the first forward and aborts on the next one, as they exist by
    then; a second forward here is an error saying so.
    """
    exact_bottoms = 2
    exact_tops = 0

    def setup(self, bottom, top):
        import h5py
        self.file_name = self.layer_param.hdf5_output_param.file_name
        self.file = None
        try:
            self.file = h5py.File(self.file_name, 'w')
        except (OSError, ValueError) as e:
            raise DataSourceError(
                f'{where(self)}: failed to open HDF5 file "{self.file_name}" for writing: '
                f'{e}; check hdf5_output_param.file_name and that its folder exists and is '
                f'writable') from None

    def reshape(self, bottom, top):
        """Nothing to shape."""

    def forward(self, bottom, top):
        shapes = [self._legacy(blob, i) for i, blob in enumerate(bottom)]
        if shapes[0][0] != shapes[1][0]:
            self.fail(f'data blob and label blob must have the same batch size: '
                      f'{shapes[0][0]} vs {shapes[1][0]}')
        if 'data' in self.file or 'label' in self.file:
            raise DataSourceError(
                f'{where(self)}: "{self.file_name}" already holds this net\'s batch; Caffe\'s '
                f'HDF5Output writes one forward per file (its second write fails). Write one '
                f'batch per net, or collect the outputs from net.blobs instead')
        for name, blob, shape in zip(('data', 'label'), bottom, shapes):
            self.file.create_dataset(name, data=blob.data.reshape(shape).astype(np.float32))
        self.file.flush()

    def _legacy(self, blob, index):
        if blob.num_axes > 4:
            self.fail(f'bottom {index} has {blob.num_axes} axes {blob.shape}; HDF5Output '
                      f'writes 4-d num x channels x height x width, at most 4 axes')
        return tuple(blob.legacy_shape(axis) for axis in range(4))

    def close(self):
        handle = getattr(self, 'file', None)
        if handle is not None:
            handle.close()
            self.file = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass
