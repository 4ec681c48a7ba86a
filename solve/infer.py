"""Segment images of any size with a model's deploy net, as fcn's infer.py does.

Per image: RGB -> float32 -> BGR minus the dataset mean of its data layer (data_layers.*)
-> C x H x W; each Input of the deploy net is reshaped to the image; a head's label map is
the argmax over its score channels. Written under --out, for image <id>:

    <id>.png           label map as a paletted PNG: pixel values are classes, colours VOC's
    <id>_overlay.png   the labels blended over the image (vis.vis_seg, alpha 0.5)

Two-headed nets (SIFT Flow: score_sem, score_geo) write <id>_sem.png, <id>_geo.png and their
overlays. Nets with several inputs (NYUD color-hha, color-d) take the first input from the
positional images and the others from --extra NAME=FILE_OR_FOLDER (same file stem as the
image when a folder). NYUD HHA images keep their channel order and depth images are 16-bit
PNGs turned into log depth, as in data_layers.nyud.
"""
import argparse
import importlib
import io
import pathlib
import sys

import numpy as np
from PIL import Image

import atomic_files
import backend
from backend import caffe
from backend.files import FormatError, atomic_write
from data_layers import nyud
from data_layers.base import SegDataLayer
from nets.datasets import DATASETS
from nets.generate import NETS
from nets.models import MODELS
from solve import classes, results, vis
from solve.results import WeightsError
from solve.console import (GPUError, HelpFormatter, nonempty_path, positive_int, progress_bar,
                           use_gpu)

# FCN-8s (VGG16) in the engine peaks at about 2 GB for a 500 x 500 TEST forward: 8 KB a
# pixel; 2.5 megapixels (1580 x 1580) then take about 20 GB
KB_PER_PIXEL, MAX_PIXELS = 8, 2_500_000
IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.ppm', '.pgm', '.tif', '.tiff', '.webp')
EXAMPLES = """examples:
  python -m solve.infer --model voc-fcn8s demo/image.jpg --out out/demo
  python -m solve.infer --model voc-fcn32s --weights out/voc-fcn32s/voc-fcn32s.caffemodel \\
      photos/ --out out/photos --histogram
  python -m solve.infer --model nyud-fcn32s-color-hha nyud/data/images/ \\
      --extra hha=nyud/data/hha/ --out out/nyud --gpu 0
  python -m solve.infer --model siftflow-fcn16s coast.jpg --out out/siftflow
"""


class InferError(ValueError):
    """Inputs that do not fit the net: missing or extra inputs, unreadable images, weights
    that leave layers empty or hold NaN."""


# Pillow's modes of 8 bits a channel: what the nets were trained on (JPEG and PNG photos).
# Grey, palette and alpha images convert to RGB exactly; 16-bit, 32-bit integer and float
# modes have no such rule (a float TIFF in [0, 1] would saturate to 255), so they are refused.
EIGHT_BIT_MODES = frozenset('1 L LA La P PA RGB RGBA RGBa RGBX CMYK YCbCr LAB HSV'.split())


def read_image(path, rgb=True):
    """float32 H x W x 3 RGB (8-bit grey, palette and alpha images converted), or as stored
    (the depth images of NYUD, 16-bit)."""
    try:
        with Image.open(path) as im:
            if rgb and im.mode not in EIGHT_BIT_MODES:
                raise InferError(
                    f'{path}: an image of mode {im.mode} ({_mode_words(im.mode)}); the nets '
                    f'take 8-bit color images, as their training data was. Convert it to '
                    f'8-bit RGB first, choosing how its range maps to 0-255 (e.g. PIL: '
                    f'Image.fromarray(np.clip(a * 255, 0, 255).astype(np.uint8)) for floats '
                    f'in [0, 1]).')
            return np.array(im.convert('RGB') if rgb else im, dtype=np.float32)
    except OSError as e:  # missing, unreadable or not an image
        raise InferError(f'cannot read the image {path}: {e}') from None
    except Image.DecompressionBombError as e:
        raise InferError(f'{path}: {e} Pillow refuses it as a possible decompression bomb; '
                         f'downscale the image first') from None


def _mode_words(mode):
    if mode.startswith('F'):
        return '32-bit float, which may hold NaN or Inf'
    return f'{16 if "16" in mode else 32}-bit integer'


def read_rgb(path):
    return read_image(path)


def _bgr(mean, scale=1.0):
    """As the data layers: BGR minus the mean, times the layer's 'scale' (the demo's)."""
    return lambda path: SegDataLayer.bgr_minus_mean(read_rgb(path), np.float32(mean), scale)


def _hha(path):
    return (read_rgb(path) - np.float32(nyud.HHA_MEAN)).transpose(2, 0, 1)


def _depth(path):
    depth = read_image(path, rgb=False)
    if depth.ndim != 2 or (depth <= 0).any():
        raise InferError(f'{path}: a depth input must be a one-channel (16-bit) PNG with every '
                         f'value > 0, as NYUDv2\'s filled depth maps; got shape {depth.shape}')
    return (np.log(depth) - np.float32(nyud.LOG_DEPTH_MEAN))[np.newaxis]


def preparers(dataset, model_id=None):
    """{input blob: image file -> C x H x W float32} as the dataset's data layer prepares
    its tops: the BGR mean is the layer's (or the dataset's param_str 'mean'), as is the
    scale after it (param_str 'scale', default 1). A one-stream NYUD net reads its
    modality into `data`."""
    spec = DATASETS[dataset]
    layer = getattr(importlib.import_module(spec['module']), spec['val'][0])
    mean = spec['extra'].get('mean', layer.mean)
    if dataset != 'nyud':
        return {'data': _bgr(mean, spec['extra'].get('scale', 1.0))}
    prepare = {'color': _bgr(mean), 'hha': _hha, 'depth': _depth}
    modality = MODELS[model_id].modalities if model_id else None
    if modality in prepare:
        prepare['data'] = prepare[modality]
    return prepare


def list_images(paths):
    """Image files of `paths` (folders expanded, sorted), checked for clashing ids."""
    files = []
    for path in map(pathlib.Path, paths):
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            files.append(path)
        else:
            raise InferError(f'{path} is neither an image file nor a folder')
    if not files:
        raise InferError(f'no images ({", ".join(IMAGE_SUFFIXES)}) in {", ".join(paths)}')
    ids = [p.stem for p in files]
    clash = sorted({i for i in ids if ids.count(i) > 1})
    if clash:
        raise InferError(f'several images have the id (file stem) {clash[0]}; the outputs '
                         f'would overwrite each other. Segment them in separate runs.')
    return files


def parse_extras(items):
    extras = {}
    for item in items:
        name, sep, path = item.partition('=')
        if not sep or not name or not path:
            raise InferError(f'--extra {item!r}: expected NAME=FILE_OR_FOLDER, e.g. '
                             f'hha=nyud/data/hha/')
        extras[name] = pathlib.Path(path)
    return extras


def check_inputs(net, model_id, dataset, extras):
    """The net's inputs must be the positional images plus exactly the --extra names."""
    prepare = preparers(dataset, model_id)
    inputs = list(net.inputs)
    if not inputs:
        raise InferError(f'the net of {model_id} has no input blob (no Input layer): pass '
                         f'a deploy prototxt, whose Input layers take the images')
    unknown = [name for name in inputs if name not in prepare]
    if unknown:
        raise InferError(f'input blob {unknown[0]} of the net has no preprocessing for dataset '
                         f'{dataset}; known inputs: {", ".join(prepare)}')
    wanted, given = inputs[1:], sorted(extras)
    if sorted(wanted) != given:
        hint = ' '.join(f'--extra {name}=FILE_OR_FOLDER' for name in wanted) or 'no --extra'
        raise InferError(f'{model_id} takes the inputs {", ".join(inputs)}: the images feed '
                         f'{inputs[0]}, so give {hint} (got --extra for '
                         f'{", ".join(given) or "nothing"}). An HHA image encodes depth as '
                         f'Gupta et al. do (NYUDv2: data/hha/img_<id>.png).')


def extra_file(path, image, several):
    if path.is_dir():
        matches = [p for p in path.iterdir() if p.stem == image.stem]
        if len(matches) != 1:
            raise InferError(f'{len(matches)} files named {image.stem}.* in {path} for the '
                             f'image {image}; expected one')
        return matches[0]
    if several:
        raise InferError(f'--extra {path} is one file but there are several images; give a '
                         f'folder holding a file with each image\'s stem')
    return path


def segment(net, arrays):
    """Reshape every Input to its array, forward, and return {head: H x W label map}."""
    for name, array in arrays.items():
        net.blobs[name].reshape(1, *array.shape)
        net.blobs[name].data[...] = array
    net.forward()
    return {name: net.blobs[name].data[0].argmax(axis=0).astype(np.uint8)
            for name in net.outputs if net.blobs[name].data.ndim == 4}


def head_suffix(head, heads):
    return '' if len(heads) == 1 else '_' + head.removeprefix('score_')


def make_palette(spec, dataset):
    """--palette: a nets.datasets key (the VOC colour map for its class count, as the
    reference's vis.make_palette; shifted by one where label 0 is a class, not background,
    so that it is not black) or a paletted PNG whose colours to copy."""
    if spec == 'dataset' or spec in DATASETS:
        name = dataset if spec == 'dataset' else spec
        count = int(max(np.atleast_1d(DATASETS[name]['classes'])))
        if classes.has_background(name):
            return vis.make_palette(count)
        return vis.make_palette(count + 1)[1:]  # label 0 is a class: VOC's black skipped
    with Image.open(spec) as im:
        if im.mode != 'P':
            raise InferError(f'--palette {spec}: not a paletted (mode P) PNG, but mode {im.mode}')
        return np.array(im.getpalette(), dtype=np.uint8).reshape(-1, 3)[:vis.PALETTE_SIZE]


def save_outputs(folder, image_id, rgb, labels, palette, background=0):
    for head, seg in labels.items():
        stem = folder / f'{image_id}{head_suffix(head, labels)}'
        for path in (f'{stem}.png', f'{stem}_overlay.png'):
            atomic_files.inside(path, folder)  # a planted link must not lead a write out
        vis.save_label_png(f'{stem}.png', seg, palette)
        buffer = io.BytesIO()
        overlay = vis.vis_seg(rgb.astype(np.uint8), seg, palette, background=background)
        Image.fromarray(overlay).save(buffer, format='PNG')
        atomic_write(f'{stem}_overlay.png', buffer.getvalue())


def histogram_lines(image_id, labels, dataset):
    lines = []
    for head, seg in labels.items():
        lines.append(f'{image_id} {head}: {seg.size} pixels')
        for name, count in vis.class_histogram(seg, classes.class_names(dataset, head)):
            lines.append(f'  {name:<16} {count:>9}  {100 * count / seg.size:5.1f}%')
    return lines


def load_net(model_id, net_path=None, weights=None, out_root=None, gpu=None):
    """The deploy net (default nets/<model>/deploy.prototxt) with `weights` (default: the
    released or trained ones, results.default_weights), checked to fill every layer."""
    net_path = net_path or NETS / model_id / 'deploy.prototxt'
    weights = weights or results.default_weights(model_id, out_root)
    problem = atomic_files.file_problem(weights)
    if problem:
        raise FileNotFoundError(f'--weights {weights} {problem}; give a .caffemodel (or .h5) '
                                f'file')
    if gpu is not None:
        use_gpu(gpu)
    print(f'net {net_path}\nweights {weights}', file=sys.stderr)
    net = caffe.Net(str(net_path), caffe.TEST, weights=str(weights))
    results.check_weights(net, weights)
    backend.keep_blobs(net, [])  # segment() reads the outputs only
    return net


def check_size(image, size, max_pixels):
    """Refuse an image whose forward would not fit in memory (a 13000 x 13000 photo would
    take hundreds of GB), saying what to do."""
    height, width = size
    if height * width > max_pixels:
        need = height * width * KB_PER_PIXEL / 2 ** 20
        raise InferError(f'{image} is {width} x {height} = {height * width} pixels, more than '
                         f'--max-pixels {max_pixels}: its forward would need about '
                         f'{need:.0f} GB. Downscale it (FCNs work at any size), or raise '
                         f'--max-pixels where the memory is there.')


def run(args):
    segment_files(args.model, args.images, args.out, weights=args.weights, net_path=args.net,
                  extra=args.extra, palette=args.palette, histogram=args.histogram,
                  gpu=args.gpu, out_root=args.out_root, max_pixels=args.max_pixels)


def segment_files(model_id, images, out, weights=None, net_path=None, extra=(),
                  palette='dataset', histogram=False, gpu=None, out_root=None,
                  max_pixels=MAX_PIXELS):
    """Segment `images` (files or folders) with `model_id` into `out` (<id>.png and
    <id>_overlay.png); the keywords are the command's options (`extra`: 'NAME=PATH'
    strings). Raises InferError (and OSError, FormatError) with what to fix."""
    dataset, out = MODELS[model_id].dataset, pathlib.Path(out)
    extras = parse_extras(extra)
    files = list_images(images)
    palette = make_palette(palette, dataset)
    net = load_net(model_id, net_path, weights, out_root, gpu)
    check_inputs(net, model_id, dataset, extras)
    prepare, first = preparers(dataset, model_id), net.inputs[0]
    out.mkdir(parents=True, exist_ok=True)
    report = []
    failed = []
    with progress_bar(len(files), desc='segmenting') as bar:
        for image in files:
            try:
                arrays = inputs_of(image, prepare, first, extras, len(files) > 1, max_pixels)
            except InferError as e:  # this image is bad: say so, segment the others
                failed.append(str(e))
                print(f'skipped: {e}', file=sys.stderr)
                bar.update(1)
                continue
            labels = segment(net, arrays)
            save_outputs(out, image.stem, read_rgb(image), labels, palette,
                         background=0 if classes.has_background(dataset) else None)
            if histogram:
                report += histogram_lines(image.stem, labels, dataset)
            bar.update(1)
    done = len(files) - len(failed)
    print('\n'.join(report + [f'wrote {done} segmentation(s) to {out}']))
    if failed:
        raise InferError(f'{len(failed)} of {len(files)} image(s) could not be segmented:\n  '
                         + '\n  '.join(failed))


def inputs_of(image, prepare, first, extras, several, max_pixels):
    """{input blob: array} for one image (and its extra inputs), checked; InferError says
    what is wrong with this image."""
    arrays = {first: prepare[first](image)}
    check_size(image, arrays[first].shape[1:], max_pixels)
    for name, path in extras.items():
        arrays[name] = prepare[name](extra_file(path, image, several))
    sizes = {name: a.shape[1:] for name, a in arrays.items()}
    if len(set(sizes.values())) > 1:
        raise InferError(f'{image}: inputs differ in size (H, W): {sizes}')
    return arrays


def get_args_parser():
    parser = argparse.ArgumentParser(
        prog='python -m solve.infer', description=__doc__.split('\n\n')[0], epilog=EXAMPLES,
        formatter_class=HelpFormatter)
    parser.add_argument('images', nargs='+', metavar='IMAGE_OR_FOLDER',
                        help='image files, or folders whose images are all segmented')
    parser.add_argument('--model', required=True, metavar='MODEL',
                        choices=sorted(m for m, recipe in MODELS.items()
                                       if not recipe.is_classifier),
                        help='model id (nets/models.py): picks the deploy net, the mean, the '
                             'classes and the default weights')
    parser.add_argument('--weights', type=pathlib.Path, default=None,
                        help='caffemodel; None: the released one (weights/manifest.json, in '
                             '$FCN_WEIGHTS), else <out-root>/<model>/<model>.caffemodel')
    parser.add_argument('--out', type=nonempty_path, required=True,
                        help='folder for <id>.png and <id>_overlay.png')
    parser.add_argument('--net', type=pathlib.Path, default=None,
                        help='deploy prototxt; None: nets/<model>/deploy.prototxt')
    parser.add_argument('--extra', action='append', default=[], metavar='NAME=PATH',
                        help='a further net input from a file or a folder of same-stem files '
                             '(e.g. hha=nyud/data/hha/); repeatable')
    parser.add_argument('--palette', default='dataset',
                        help='"dataset" (the model\'s), a dataset (voc, nyud, siftflow, '
                             'pascalcontext) or a paletted PNG to take the colours from')
    parser.add_argument('--histogram', action='store_true',
                        help='print each label map\'s pixels per class, with class names')
    parser.add_argument('--gpu', type=int, default=None, metavar='N',
                        help='CUDA device to run on; None: the CPU')
    parser.add_argument('--out-root', type=nonempty_path, default=None,
                        help='training output root, for the default weights; None: $FCN_OUT, '
                             'else out/ in this checkout')
    parser.add_argument('--max-pixels', type=positive_int, default=MAX_PIXELS, metavar='N',
                        help='refuse images of more pixels (an FCN-VGG16 forward needs about '
                             f'{KB_PER_PIXEL} KB per pixel)')
    return parser


def main(args):
    return guarded(run, args)


def guarded(function, *args, **kwargs):
    """0 after function(*args, **kwargs), or 2 with the error's line on stderr (130 when
    interrupted): what the command and solve.demo report."""
    try:
        function(*args, **kwargs)
    # OSError: an unwritable --out, a bad palette
    except (InferError, WeightsError, OSError, FormatError, GPUError,
            *backend.input_errors()) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as e:
        if not isinstance(e, MemoryError) and 'alloc' not in str(e).lower():
            raise
        print(f'error: out of memory ({str(e).splitlines()[0][:200]}): the net or the image '
              f'is too big for this machine; downscale the images or use a GPU with more '
              f'memory', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print('interrupted', file=sys.stderr)
        return 130
    return 0


if __name__ == '__main__':
    sys.exit(main(get_args_parser().parse_args()))
