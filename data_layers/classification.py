"""An ImageNet-style classification data layer: batches of images and their class labels.

    layer { name: "data" type: "Python" top: "data" top: "label"
      python_param { module: "data_layers.classification" layer: "ClassificationDataLayer"
        param_str: "{'split': 'train', 'randomize': True, 'seed': 1337, 'batch_size': 16}" } }

param_str keys: split, randomize, seed (as every layer, data_layers.base); batch_size (default
1); mean (BGR, default the ILSVRC mean VOC_MEAN); scale (default 1, applied after the mean,
as Caffe's transform_param scale); classes (default None; an int makes labels
at or above it an error); dataset (default 'demo_classes', the demo's set; any
data_layers.paths name of a folder in this layout).

Split list <folder>/<split>.txt: one "<path> <label>" line per image, the path relative to
the folder and the label an int >= 0: the source format of Caffe's ImageData layer.

Tops: data B x 3 x H x W float (RGB to BGR, minus the mean; a grey image is read as three
equal channels, as ImageData does; the images of a batch must share their size); label (B,)
float, the class indices, as SoftmaxWithLoss and Accuracy read them.

Order: a batch holds the next B images of the sequence the base layer delivers one per
forward (random draws with replacement, or the list in order, wrapping), so batch_size 1
reads exactly as the segmentation layers do.
"""
import numpy as np

from data_layers.base import BadDataError, Key, SegDataLayer, dataset_key, is_mean, scale_key
from data_layers.voc import VOC_MEAN


def _positive_int(value):
    return type(value) is int and value > 0


class ClassificationDataLayer(SegDataLayer):
    """(data, label) batches from a list of "<path> <label>" lines (dataset 'demo_classes')."""
    dataset = 'demo_classes'
    files = {'data': ('demo_classes', '{id}')}   # the id is the path in the split list
    mean = VOC_MEAN
    param_keys = {
        'batch_size': Key(1, _positive_int, 'a positive int, the images per forward'),
        'mean': Key(VOC_MEAN, is_mean, 'three numbers, the BGR mean'),
        'scale': scale_key(),
        'classes': Key(None, lambda v: v is None or _positive_int(v),
                       'None or a positive int, the number of classes'),
        'dataset': dataset_key('demo_classes'),
    }
    example = "{'split': 'train', 'randomize': True, 'seed': 1337, 'batch_size': 16}"

    def setup(self, bottom, top):
        super().setup(bottom, top)
        self.batch = None

    def read_split(self):
        """[(relative path, label)] from the split list's "<path> <label>" lines."""
        path = self.folder(self.dataset) / self.split_file.format(split=self.params['split'])
        return [self._entry(line, k, path) for k, line in enumerate(super().read_split(), 1)]

    def _entry(self, line, number, path):
        parts = line.rsplit(None, 1)
        label = parts[1] if len(parts) == 2 else ''
        if not label.isdigit():
            raise BadDataError(f'{self.where}: entry {number} of {path}, {line!r}, is not '
                               f'"<relative image path> <label>" with a label int >= 0 (the '
                               f'format of a Caffe ImageData source)')
        classes = self.params['classes']
        if classes is not None and int(label) >= classes:
            raise BadDataError(f'{self.where}: entry {number} of {path}, {line!r}, has label '
                               f'{label}, outside [0, {classes}) (param_str classes)')
        return parts[0], int(label)

    def reshape(self, bottom, top):
        if self.batch is None:
            self.batch = self.load_batch()
        data, labels = self.batch
        top[0].reshape(*data.shape)
        top[1].reshape(len(labels))

    def forward(self, bottom, top):
        top[0].data[...], top[1].data[...] = self.batch
        self.batch = None

    def forget_loaded(self):
        self.batch = None

    def load_batch(self):
        """(B x 3 x H x W data, (B,) labels) of the next batch_size entries."""
        entries = []
        for _ in range(self.params['batch_size']):
            entries.append(self.indices[self.idx])
            self.advance()
        images = [self.load_image(image) for image, _ in entries]
        for (image, _), array in zip(entries[1:], images[1:]):
            if array.shape != images[0].shape:
                raise BadDataError(
                    f'{self.where}: {self.file("data", image)} is {array.shape[1]}x'
                    f'{array.shape[2]} (HxW) but {self.file("data", entries[0][0])}, in the '
                    f'same batch, is {images[0].shape[1]}x{images[0].shape[2]}; the images '
                    f'of a batch must share their size (or use batch_size 1)')
        labels = np.array([label for _, label in entries], dtype=np.float32)
        return np.stack(images), labels

    def load_image(self, sample_id):
        array = self.read_image('data', sample_id)
        if array.ndim == 2:
            array = np.repeat(array[:, :, np.newaxis], 3, axis=2)
        if array.ndim != 3 or array.shape[2] != 3:
            raise BadDataError(f'{self.where}: the image {self.file("data", sample_id)} has '
                               f'shape {array.shape}; expected an RGB or grey image')
        return self.bgr_minus_mean(array, self.mean_bgr, self.scale)
