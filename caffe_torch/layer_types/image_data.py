"""ImageData and WindowData (image_data_layer.cpp, window_data_layer.cpp): images read from
files with OpenCV, as Caffe reads them.

Images are read with cv2.imread (IMREAD_COLOR: 3-channel BGR, or IMREAD_GRAYSCALE), resized
with cv2.resize (INTER_LINEAR, Caffe's default), and kept in OpenCV's channel order (BGR),
so the values are those of Caffe built against the same OpenCV (OpenCV 3.1 and later,
this one included, turn JPEGs by their EXIF orientation on reading). Caffe reads in a prefetch
thread; these layers read when forward runs, in the same order. Random draws (shuffles,
rand_skip, window sampling, mirroring) come from the engine's generator.
"""
import os

import numpy as np

from caffe_torch.data_transformer import (DataTransformer, hwc_to_chw, rand_uint32,
                                          read_mean, shuffle)
from caffe_torch.errors import DataRecordError, DataSourceError
from caffe_torch.layer import Layer
from caffe_torch.layer_factory import register
from caffe_torch.layer_types.db_data import fill_tops, positive_batch_size, where
from caffe_torch.layer_types.hdf5_layers import read_list


def read_image(layer, path, flag, line=''):
    """cv2.imread(path, flag); DataSourceError naming the file when it cannot be read."""
    import cv2
    image = cv2.imread(path, flag)
    if image is None:
        reason = 'no such file' if not os.path.exists(path) else \
            'not an image OpenCV can decode'
        raise DataSourceError(f'{where(layer)}: could not load "{path}"{line}: {reason} '
                              f'(relative paths start at {os.getcwd()}; check root_folder)')
    return image


def atoi(text):
    """C's atoi: optional blanks, sign and digits; 0 when there are none."""
    text = text.lstrip(' \t\n\v\f\r')
    end = 1 if text[:1] in ('+', '-') else 0
    while end < len(text) and text[end].isdigit():
        end += 1
    try:
        return int(text[:end])
    except ValueError:
        return 0


@register('ImageData')
class ImageDataLayer(Layer):
    """Images listed in image_data_param.source, one "path label" per line (the label after
    the last space; paths may hold spaces), read from root_folder + path.

    params: batch_size, new_height/new_width (resize both, or neither), is_color, shuffle
      (at set-up and after every pass), rand_skip (start at a random line below it),
      transform_param as Caffe's DataTransformer.
    bottoms: none. tops: data (batch_size x C x H x W; C = 3 or 1 as is_color) and label
      (batch_size). Each batch takes its shape from its first image; the rest must match.
    """
    exact_bottoms = 0
    exact_tops = 2

    def setup(self, bottom, top):
        import cv2
        param = self.layer_param.image_data_param
        if (param.new_height > 0) != (param.new_width > 0):
            self.fail(f'new_height and new_width must be set together (both positive, or '
                      f'both 0); got new_height {param.new_height}, new_width '
                      f'{param.new_width}')
        self.flag = cv2.IMREAD_COLOR if param.is_color else cv2.IMREAD_GRAYSCALE
        self.size = (int(param.new_width), int(param.new_height))
        self.lines = self._read_lines(param.source)
        self.transformer = DataTransformer(self.layer_param.transform_param, self.phase,
                                           where(self))
        if param.shuffle:
            shuffle(self.lines)
        self.lines_id = 0
        if param.rand_skip:
            skip = rand_uint32() % param.rand_skip
            if skip >= len(self.lines):
                self.fail(f'not enough points to skip: rand_skip drew {skip} for '
                          f'{len(self.lines)} lines; lower rand_skip below the line count')
            self.lines_id = skip
        self.batch_size = positive_batch_size(self, param.batch_size,
                                              'image_data_param.batch_size')
        shape = self.transformer.infer_shape(self._load(self.lines_id))
        top[0].reshape(self.batch_size, *shape)
        top[1].reshape(self.batch_size)

    def reshape(self, bottom, top):
        """Tops are shaped by each forward's batch."""

    def forward(self, bottom, top):
        images, labels, shape = [], [], None
        for _ in range(self.batch_size):
            array = self._load(self.lines_id)
            if shape is None:
                shape = self.transformer.infer_shape(array)
            image = self.transformer.transform(array)
            if image.shape != shape:
                raise DataRecordError(
                    f'{where(self)}: "{self.lines[self.lines_id][0]}" gives a '
                    f'{"x".join(map(str, image.shape))} image but the batch\'s first gives '
                    f'{"x".join(map(str, shape))}; set new_height/new_width or crop_size so '
                    f'that all images have one size')
            images.append(image)
            labels.append(self.lines[self.lines_id][1])
            self.lines_id += 1
            if self.lines_id >= len(self.lines):
                self.lines_id = 0
                if self.layer_param.image_data_param.shuffle:
                    shuffle(self.lines)
        fill_tops(top, np.stack(images), labels)

    def _read_lines(self, source):
        text = read_list(source, self, 'image_data_param.source')
        rows = text.split('\n')
        if rows and rows[-1] == '':
            rows.pop()  # getline: a final newline ends the last line, it starts none
        lines = []
        for number, line in enumerate(rows, start=1):
            if not line.strip():
                self.fail(f'line {number} of "{source}" is empty; each line is "path label"')
            pos = line.rfind(' ')
            lines.append((line[:pos] if pos >= 0 else line, atoi(line[pos + 1:])))
        if not lines:
            self.fail(f'image list "{source}" is empty; list one "path label" per line')
        return lines

    def _load(self, index):
        import cv2
        path = self.layer_param.image_data_param.root_folder + self.lines[index][0]
        image = read_image(self, path, self.flag)
        if self.size[0] > 0:
            image = cv2.resize(image, self.size, interpolation=cv2.INTER_LINEAR)
        return hwc_to_chw(image, f'{where(self)}: "{path}"')


def c_round(value):
    """C's round(): halves away from zero (NumPy rounds them to even)."""
    value = float(value)
    return int(np.copysign(np.floor(abs(value) + 0.5), value))


def warp_geometry(box, image_hw, crop_size, context_pad, square, mirror):
    """WindowDataLayer's crop arithmetic in float32 as Caffe's Dtype: the window (x1, y1,
    x2, y2, inclusive) grown by context_pad (and made square) then clipped to the image;
    returns (clipped box, (warp width, warp height), pad_w, pad_h)."""
    f = np.float32
    x1, y1, x2, y2 = box
    rows, cols = image_hw
    size = (crop_size, crop_size)
    pad_w = pad_h = 0
    if context_pad > 0 or square:
        context_scale = f(crop_size) / f(crop_size - 2 * context_pad)
        half_height = f(y2 - y1 + 1) / f(2)
        half_width = f(x2 - x1 + 1) / f(2)
        center_x, center_y = f(x1) + half_width, f(y1) + half_height
        if square:
            half_width = half_height = max(half_width, half_height)
        x1 = c_round(center_x - half_width * context_scale)
        x2 = c_round(center_x + half_width * context_scale)
        y1 = c_round(center_y - half_height * context_scale)
        y2 = c_round(center_y + half_height * context_scale)
        unclipped_h, unclipped_w = y2 - y1 + 1, x2 - x1 + 1
        pad_x1, pad_y1 = max(0, -x1), max(0, -y1)
        pad_x2, pad_y2 = max(0, x2 - cols + 1), max(0, y2 - rows + 1)
        x1, x2, y1, y2 = x1 + pad_x1, x2 - pad_x2, y1 + pad_y1, y2 - pad_y2
        scale_x = f(crop_size) / f(unclipped_w)
        scale_y = f(crop_size) / f(unclipped_h)
        width = c_round(f(x2 - x1 + 1) * scale_x)
        height = c_round(f(y2 - y1 + 1) * scale_y)
        pad_x1, pad_x2 = c_round(f(pad_x1) * scale_x), c_round(f(pad_x2) * scale_x)
        pad_h = c_round(f(pad_y1) * scale_y)
        pad_w = pad_x2 if mirror else pad_x1
        height = min(height, crop_size - pad_h)
        width = min(width, crop_size - pad_w)
        size = (width, height)
    return (x1, y1, x2, y2), size, pad_w, pad_h


@register('WindowData')
class WindowDataLayer(Layer):
    """Windows sampled from the images of a window file (R-CNN's fine-tuning input),
    warped to crop_size x crop_size.

    window_data_param.source lists, per image: `# index`, path (after root_folder),
    channels, height, width, the number of windows, then one `class overlap x1 y1 x2 y2`
    (0-based, inclusive) per window. Windows with overlap >= fg_threshold are foreground
    (their class must be > 0), those with overlap < bg_threshold background (class 0).
    Each batch holds batch_size - int(batch_size * fg_fraction) background windows, then the
    foreground ones, each drawn uniformly (with replacement); as in Caffe, a forward needs
    at least one window of each kind, even where fg_fraction draws none of that kind. A
    window is grown by context_pad pixels of context at the output size (crop_mode "square"
    first makes it square), clipped to the image, warped with cv2.resize INTER_LINEAR and
    placed where the clipped part falls; the rest stays 0. mirror flips windows with
    probability 1/2. Values: (pixel - mean) * window_data_param.scale (not
    transform_param.scale, as in Caffe), with transform_param.mean_file (indexed from its
    centre crop) or mean_value.
    bottoms: none. tops: data (batch_size x channels x crop_size x crop_size), label.
    """
    exact_bottoms = 0
    exact_tops = 2

    def setup(self, bottom, top):
        param, transform = self.layer_param.window_data_param, self.layer_param.transform_param
        DataTransformer(transform, self.phase, where(self))  # Caffe's checks of the param
        self.crop_size = int(transform.crop_size)
        if self.crop_size <= 0:
            self.fail('transform_param.crop_size must be positive: it is the size windows '
                      'are warped to')
        if param.crop_mode not in ('warp', 'square'):
            self.fail(f'crop_mode "{param.crop_mode}" is not "warp" or "square"')
        self.batch_size = positive_batch_size(self, param.batch_size,
                                              'window_data_param.batch_size')
        self.images, self.fg, self.bg = [], [], []
        self.cache = {} if param.cache_images else None
        channels = self._read_windows(param)
        self.mean = read_mean(transform.mean_file, self.fail) \
            if transform.HasField('mean_file') else None
        self.mean_values = np.array(transform.mean_value, dtype=np.float32)
        if len(self.mean_values) not in (0, 1, channels):
            self.fail(f'specify either 1 mean_value or as many as channels: {channels} '
                      f'(got {len(self.mean_values)})')
        if len(self.mean_values) == 1:
            self.mean_values = np.repeat(self.mean_values, channels)
        self.channels = channels
        top[0].reshape(self.batch_size, channels, self.crop_size, self.crop_size)
        top[1].reshape(self.batch_size)

    def reshape(self, bottom, top):
        """The tops keep their set-up shape."""

    def forward(self, bottom, top):
        param = self.layer_param.window_data_param
        num_fg = int(np.float32(self.batch_size) * np.float32(param.fg_fraction))
        data = np.zeros((self.batch_size, self.channels, self.crop_size, self.crop_size),
                        np.float32)
        labels, item = [], 0
        for windows, kind in ((self.fg, 'foreground'), (self.bg, 'background')):
            if not windows:  # Caffe checks both, whatever fg_fraction asks of them
                raise DataRecordError(
                    f'{where(self)}: the window file has no {kind} window; Caffe needs at '
                    f'least one foreground and one background window, even where a batch '
                    f'draws none of them (adjust fg_threshold/bg_threshold)')
        for windows, count in ((self.bg, self.batch_size - num_fg), (self.fg, num_fg)):
            for _ in range(count):
                window = windows[rand_uint32() % len(windows)]
                do_mirror = bool(self.layer_param.transform_param.mirror) and \
                    rand_uint32() % 2 == 1
                self._warp(window, do_mirror, data[item], param)
                labels.append(window[1])
                item += 1
        fill_tops(top, data, labels)

    def _warp(self, window, do_mirror, out, param):
        import cv2
        index, _, _, x1, y1, x2, y2 = window
        image = self._image(index)
        if image.shape[2] != self.channels:
            raise DataRecordError(f'{where(self)}: image {index} has {image.shape[2]} '
                                  f'channels, the window file says {self.channels}')
        (x1, y1, x2, y2), size, pad_w, pad_h = warp_geometry(
            (x1, y1, x2, y2), image.shape[:2], self.crop_size, int(param.context_pad),
            param.crop_mode == 'square', do_mirror)
        rows, cols = image.shape[:2]
        if not (0 <= x1 <= x2 < cols and 0 <= y1 <= y2 < rows) or min(size) <= 0:
            raise DataRecordError(
                f'{where(self)}: window ({x1}, {y1}, {x2}, {y2}) of image {index} '
                f'("{self.images[index][0]}") does not lie inside its {cols}x{rows} pixels '
                f'(x1 <= x2 < width, y1 <= y2 < height, 0-based); fix the window file')
        patch = cv2.resize(image[y1:y2 + 1, x1:x2 + 1], size, interpolation=cv2.INTER_LINEAR)
        if do_mirror:
            patch = patch[:, ::-1]
        patch = hwc_to_chw(np.ascontiguousarray(patch)).astype(np.float32)
        place = (slice(None), slice(pad_h, pad_h + patch.shape[1]),
                 slice(pad_w, pad_w + patch.shape[2]))
        if self.mean is not None:
            off = (self.mean.shape[2] - self.crop_size) // 2
            mean = self.mean[:, off + pad_h:off + pad_h + patch.shape[1],
                             off + pad_w:off + pad_w + patch.shape[2]]
            if mean.shape != patch.shape:
                raise DataRecordError(f'{where(self)}: mean_file of {self.mean.shape} is too '
                                      f'small for crop_size {self.crop_size}')
            patch = patch - mean
        elif len(self.mean_values):
            patch = patch - self.mean_values[:, None, None]
        out[place] = patch * np.float32(param.scale)

    def _image(self, index):
        import cv2
        path = self.images[index][0]
        if self.cache is None:
            return read_image(self, path, cv2.IMREAD_COLOR)
        if index not in self.cache:
            try:
                with open(path, 'rb') as f:
                    self.cache[index] = np.frombuffer(f.read(), np.uint8)
            except OSError as e:
                raise DataSourceError(f'{where(self)}: could not open or find file "{path}"'
                                      f': {e.strerror}') from None
        image = cv2.imdecode(self.cache[index], cv2.IMREAD_COLOR)
        if image is None:
            raise DataRecordError(f'{where(self)}: could not decode "{path}"')
        return image

    def _read_windows(self, param):
        """Parse the window file as Caffe's >> reads it; returns the channels."""
        tokens = read_list(param.source, self, 'window_data_param.source').split()
        pos, channels = 0, None
        fg_threshold, bg_threshold = np.float32(param.fg_threshold), \
            np.float32(param.bg_threshold)

        def take(kind, what):
            nonlocal pos
            if pos >= len(tokens):
                raise DataRecordError(f'{where(self)}: window file "{param.source}" ends '
                                      f'where {what} was expected (image {len(self.images)})')
            pos += 1
            try:
                return kind(tokens[pos - 1])
            except ValueError:
                raise DataRecordError(
                    f'{where(self)}: window file "{param.source}": expected {what}, got '
                    f'"{tokens[pos - 1]}" (image {len(self.images)}); each image is "# '
                    f'index", path, channels, height, width, count, then count lines "class '
                    f'overlap x1 y1 x2 y2"') from None
        if not tokens:
            raise DataRecordError(f'{where(self)}: window file "{param.source}" is empty')
        while pos < len(tokens):
            hashtag = take(str, 'the "#" starting an image')
            if hashtag != '#':
                raise DataRecordError(f'{where(self)}: window file "{param.source}": '
                                      f'expected "#" before image {len(self.images)}, got '
                                      f'"{hashtag}"; check the window counts above it')
            image_index = take(int, 'an image index')
            path = param.root_folder + take(str, 'an image path')
            channels, height, width = (take(int, 'channels'), take(int, 'height'),
                                       take(int, 'width'))
            self.images.append((path, (channels, height, width)))
            for _ in range(take(int, 'the number of windows')):
                label, overlap = take(int, 'a class index'), np.float32(take(float, 'overlap'))
                box = [take(int, name) for name in ('x1', 'y1', 'x2', 'y2')]
                if overlap >= fg_threshold:
                    if label <= 0:
                        raise DataRecordError(
                            f'{where(self)}: a foreground window (overlap {overlap} >= '
                            f'fg_threshold) of image {image_index} has class {label}; '
                            f'foreground classes must be > 0 (0 is background)')
                    self.fg.append((image_index, label, float(overlap), *box))
                elif overlap < bg_threshold:
                    self.bg.append((image_index, 0, 0.0, *box))
        for window in self.fg + self.bg:
            if not 0 <= window[0] < len(self.images):
                raise DataRecordError(
                    f'{where(self)}: a window refers to image index {window[0]}, but the '
                    f'file lists {len(self.images)} image(s), indexed 0 to '
                    f'{len(self.images) - 1} in order')
        return channels
