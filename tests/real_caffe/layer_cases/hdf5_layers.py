"""HDF5Data and HDF5Output, with their files in the case folder (paths relative to it).

HDF5Data: 1 to 4 files in the source list (whitespace of every kind between names, a file
listed twice, files in a subfolder), 1 to 5 rows a file, batches of 1 to 7 that cross file
boundaries and wrap round, forwards=3; 1 to 3 tops, each reading the dataset of its name,
0 to 3 trailing axes, float32/float64/float16/int32/int64/uint8 datasets; TRAIN or TEST;
shuffle off (it draws from Caffe's generator). Caffe aborts (in set-up, so that the engine
must refuse at once too) on a first file lacking a top's dataset, on datasets of unequal
row counts, on transform_param, and on an empty source list.
HDF5Output: two bottoms of 0 to 4 axes with one num (written as legacy 4-d datasets
"data" and "label"), fed by Input or through a Power layer, the file in the case folder or a
subfolder of it. Caffe aborts on bottoms of different num and on a 5-d bottom.
"""
import numpy as np

from real_caffe.cases import Case, layer, net, text

DTYPES = [np.float32, np.float64, np.float16, np.int32, np.int64, np.uint8]


def _dataset(rng, rows, trailing, dtype):
    if np.dtype(dtype).kind in 'iu':
        low = 0 if np.dtype(dtype).kind == 'u' else -1000
        return rng.integers(low, 256, (rows, *trailing)).astype(dtype)
    return (rng.standard_normal((rows, *trailing)) * 10).astype(dtype)


def _h5_writer(datasets):
    def write(path):
        import h5py
        with h5py.File(path, 'w') as f:
            for name, value in datasets.items():
                f.create_dataset(name, data=value)
    return write


def _source_text(rng, names):
    """The list as Caffe's `source_file >> line` reads it: any whitespace between names."""
    out = ''
    for name in names:
        out += str(rng.choice(['\n', ' ', '\t', '\n\n', '  \n'])) + name
    return out.lstrip() + str(rng.choice(['\n', '', ' \n']))


def hdf5_data(rng, i):
    tops = ['data', 'label', 'weight'][:int(rng.integers(1, 4))]
    if i % 7 == 5:
        tops = ['x_' + top for top in tops]
    trailing = {top: [int(d) for d in rng.integers(1, 4, int(rng.integers(0, 4)))]
                for top in tops}
    dtypes = {top: DTYPES[int(rng.integers(0, len(DTYPES)))] for top in tops}
    num_files = int(rng.integers(1, 5))
    folder = 'h5/' if i % 3 == 2 else ''
    files, names = {}, []
    for k in range(num_files):
        name = f'{folder}f{k}.h5'
        rows = int(rng.integers(1, 6))
        files[name] = _h5_writer({top: _dataset(rng, rows, trailing[top], dtypes[top])
                                  for top in tops})
        names.append(name)
    if i % 5 == 3:  # a file listed twice
        names.append(names[0])
    param = {'source': 'source.txt', 'batch_size': int(rng.integers(1, 8)), 'shuffle': False}
    extra = {}
    if i == 16:  # the first file lacks the last top's dataset
        tops = tops + ['missing']
    if i == 17:  # datasets of one file with different row counts
        files[names[0]] = _h5_writer({top: _dataset(rng, 2 + k, [2], np.float32)
                                      for k, top in enumerate(tops + ['more'])})
        tops = tops + ['more']
    if i == 18:
        extra['transform_param'] = {'scale': 0.5}
    if i == 19:
        names = []
    files['source.txt'] = _source_text(rng, names) if names else '\n'
    body = layer('data', 'HDF5Data', top=tops, hdf5_data_param=param, **extra)
    abort = i >= 16
    return Case(net({}, body), files=files, forwards=1 if abort else 3,
                backward=not abort, phase='TEST' if i % 2 else 'TRAIN')


def hdf5_output(rng, i):
    num = int(rng.integers(1, 4))
    shapes = []
    for _ in range(2):
        axes = int(rng.integers(0, 5)) if num == 1 else int(rng.integers(1, 5))
        shapes.append([num] + [int(d) for d in rng.integers(1, 4, axes - 1)] if axes else [])
    if i == 18:  # different nums
        shapes[1] = [num + 1] + shapes[1][1:]
    if i == 19:  # a 5-d bottom has no legacy shape
        shapes[0] = [num, 2, 1, 2, 3]
    names = [['data', 'label'], ['a', 'b'], ['y', 'x']][i % 3]
    file_name = 'out/written.h5' if i % 4 == 1 else 'output.h5'
    files = {'out/README': 'the folder HDF5Output writes into\n'} if i % 4 == 1 else {}
    bottoms = {name: rng.standard_normal(shape).astype(np.float32)
               for name, shape in zip(names, shapes)}
    body = []
    feeds = list(names)
    if i % 5 == 2:  # the data bottom is computed
        body.append(layer('p', 'Power', [names[0]], top=['p'],
                          power_param={'scale': 2.0, 'shift': -1.0}))
        feeds[0] = 'p'
    body.append(text({'layer': {'name': 'out', 'type': 'HDF5Output', 'bottom': feeds,
                                'hdf5_output_param': {'file_name': file_name}}}))
    return Case(net(dict(zip(names, shapes)), *body), bottoms, files=files,
                output_file=file_name, backward=i % 2 == 0, phase='TEST' if i % 3 else 'TRAIN')


GENERATORS = {'HDF5Data': hdf5_data, 'HDF5Output': hdf5_output}
