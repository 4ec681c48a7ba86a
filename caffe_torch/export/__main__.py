"""Export a Caffe net and caffemodel: TorchScript (.pt), torch.export (.pt2) or ONNX (.onnx).

The file holds the net's forward (TEST phase) from its inputs to its outputs, with the
caffemodel's weights. With --dynamic, height and width may differ from --input-shape at run
time (FCN's crops read the sizes as they run; only the offsets are fixed). An ONNX file is
run once in onnxruntime, where installed, and compared with the engine's module.

Examples:
  python -m caffe_torch.export nets/voc-fcn8s/deploy.prototxt fcn8s-heavy-pascal.caffemodel \\
      --to fcn8s.onnx --input-shape 1,3,500,500 --dynamic
  python -m caffe_torch.export deploy.prototxt net.caffemodel --to net.pt2 --dynamic
"""
import argparse
import os
import pathlib
import sys

import numpy as np
import torch

from atomic_files import replacing

FORMATS = ('.pt', '.pt2', '.onnx')


class ExportError(ValueError):
    """Options or files that do not make an export."""


class Flat(torch.nn.Module):
    """The module with positional inputs and a tuple of outputs, as exporters want."""

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, *inputs):
        return tuple(self.module(*inputs).values())


def example_inputs(net, module, shape=None):
    """Random inputs of the net's input shapes, or N, H, W of `shape` (and its C for the
    first input)."""
    rng, inputs = np.random.default_rng(0), []
    for i, name in enumerate(module.inputs):
        dims = list(net.blobs[name].shape)
        if shape is not None:
            if len(dims) != 4:
                raise ExportError(f'--input-shape sets N,C,H,W, but input {name} has shape '
                                  f'{tuple(dims)}')
            dims = [shape[0], shape[1] if i == 0 else dims[1], shape[2], shape[3]]
        inputs.append(torch.from_numpy(rng.standard_normal(dims).astype(np.float32)))
    return tuple(inputs)


def export(net, path, shape=None, dynamic=False):
    """Write the net's module to `path` (its suffix picks the format), atomically;
    returns (module, example inputs)."""
    from caffe_torch.export import to_module
    path = pathlib.Path(path)
    if path.suffix not in FORMATS:
        raise ExportError(f'--to {path}: the suffix picks the format, one of '
                          f'{", ".join(FORMATS)}')
    module = to_module(net).eval()
    inputs = example_inputs(net, module, shape)
    with replacing(path) as tmp:
        _WRITERS[path.suffix](Flat(module), inputs, tmp, module, dynamic)
    return module, inputs


def _torchscript(flat, inputs, tmp, module, dynamic):
    torch.jit.trace(flat, inputs).save(tmp)


def _torch_export(flat, inputs, tmp, module, dynamic):
    auto = {2: torch.export.Dim.AUTO, 3: torch.export.Dim.AUTO}
    shapes = tuple(auto if dynamic and x.dim() == 4 else None for x in inputs)
    # Flat.forward(*inputs) is one variadic argument: its shapes nest one level down
    torch.export.save(torch.export.export(flat, inputs, dynamic_shapes=(shapes,)), tmp)


def _onnx(flat, inputs, tmp, module, dynamic):
    axes = {name: {2: 'height', 3: 'width'} for name in module.inputs + module.outputs}
    torch.onnx.export(flat, inputs, tmp, input_names=module.inputs,
                      output_names=module.outputs, opset_version=17, dynamo=False,
                      dynamic_axes=axes if dynamic else None)


_WRITERS = {'.pt': _torchscript, '.pt2': _torch_export, '.onnx': _onnx}


def check_onnx(path, module, inputs):
    """The largest relative L2 error of onnxruntime's outputs against the module's, or
    None where onnxruntime is not installed."""
    try:
        import onnxruntime
    except ImportError:
        return None
    session = onnxruntime.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    got = session.run(None, {name: x.numpy() for name, x in zip(module.inputs, inputs)})
    with torch.no_grad():
        want = [y.numpy() for y in module(*inputs).values()]
    return max(float(np.linalg.norm(g - w) / max(np.linalg.norm(w), 1e-30))
               for g, w in zip(got, want))


def _shape(text):
    try:
        dims = [int(v) for v in text.split(',')]
    except ValueError:
        dims = []
    if len(dims) != 4 or min(dims) < 1:
        raise argparse.ArgumentTypeError(f'expected N,C,H,W (four positive integers), got '
                                         f'{text!r}')
    return dims


def get_args_parser():
    parser = argparse.ArgumentParser(prog='python -m caffe_torch.export',
                                     description=__doc__.split('\n\n')[0],
                                     epilog='Examples:' + __doc__.split('Examples:')[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('net', help='the net prototxt (a deploy net: Input layers)')
    parser.add_argument('weights', help='its caffemodel (binary, or HDF5 .h5)')
    parser.add_argument('--to', required=True, type=pathlib.Path,
                        help=f'output file; its suffix is the format: {", ".join(FORMATS)}')
    parser.add_argument('--input-shape', type=_shape, metavar='N,C,H,W',
                        help='the example input the export traces (default: the net\'s)')
    parser.add_argument('--dynamic', action='store_true',
                        help='height and width free at run time (.pt2 and .onnx)')
    return parser


def main(args):
    import caffe_torch as caffe
    from caffe_torch.export import NoFunctionalForm
    try:
        if not os.path.isfile(args.weights):
            raise ExportError(f'{args.weights}: no such caffemodel')
        net = caffe.Net(args.net, caffe.TEST, weights=args.weights)
        module, inputs = export(net, args.to, args.input_shape, args.dynamic)
    except (ExportError, NoFunctionalForm, OSError, caffe.CaffeError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    print(f'wrote {args.to}: inputs {", ".join(module.inputs)}, outputs '
          f'{", ".join(module.outputs)}')
    if args.to.suffix == '.onnx':
        error = check_onnx(args.to, module, inputs)
        print('onnxruntime not installed: not run' if error is None else
              f'onnxruntime: outputs within relative L2 {error:.1e} of the engine\'s')
    return 0


if __name__ == '__main__':
    sys.exit(main(get_args_parser().parse_args()))
