"""Convert an ImageNet classifier caffemodel into an FCN initialisation, without Caffe.

The classifier's convolutions are copied, its fc6/fc7 reshaped into convolutions, its
1000-way classifier dropped (surgery.transplant); the result holds only the trunk, so any
FCN of any class count loads it with copy_from and keeps its zero-initialised scorers.
The reference implementation asks for vgg16-fcn.caffemodel but never shipped a way to make
it; this is that step.

Examples:
  python -m weights.convert vgg16                  # VGG_ILSVRC_16_layers -> vgg16-fcn
  python -m weights.convert caffenet --input bvlc_reference_caffenet.caffemodel
  python -m weights.convert custom --classifier-net cls.prototxt --fcn-net fcn.prototxt \\
      --input cls.caffemodel --output fcn-init.caffemodel
"""
import argparse
import pathlib
import sys
from typing import NamedTuple

from backend import files

NETS = pathlib.Path(__file__).resolve().parent.parent / 'nets'



class Conversion(NamedTuple):
    """A released classifier and the FCN initialisation made from it: nets relative to
    nets/, weights by their manifest names."""
    classifier_net: str     # its deploy net
    fcn_net: str            # the FCN whose layers receive the weights
    source: str             # manifest name of the classifier's caffemodel
    output: str             # manifest name of the initialisation written


CONVERSIONS = {
    'vgg16': Conversion('ilsvrc-nets/vgg16-ilsvrc-deploy.prototxt',
                        'voc-fcn32s/deploy.prototxt', 'vgg16-ilsvrc', 'vgg16-fcn'),
    'caffenet': Conversion('ilsvrc-nets/caffenet-ilsvrc-deploy.prototxt',
                           'voc-fcn-alexnet/deploy.prototxt', 'caffenet-ilsvrc', 'alexnet-fcn'),
    'googlenet': Conversion('ilsvrc-nets/googlenet-ilsvrc-deploy.prototxt',
                            'voc-fcn-googlenet/deploy.prototxt', 'googlenet-ilsvrc',
                            'googlenet-fcn'),
}


def convert(classifier_net, fcn_net, source_weights, output, verbose=True):
    """Transplant `source_weights` (run through `classifier_net`) into `fcn_net` and save
    the transplanted layers to `output`; returns the surgery report."""
    from backend import caffe
    from surgery import transplant
    from surgery.transplants import COPIED, RESHAPED
    source = caffe.Net(str(classifier_net), caffe.TEST, weights=str(source_weights))
    net = caffe.Net(str(fcn_net), caffe.TEST)
    report = transplant(net, source, verbose=verbose)
    carried = {row.target for row in report if row.action in (COPIED, RESHAPED)}
    param = _net_param(net, output)
    kept = [layer for layer in param.layer if layer.name in carried]
    del param.layer[:]
    param.layer.extend(kept)
    files.write_binary(param, output)
    return report


def _net_param(net, output):
    """The net with its weights as a NetParameter: the engine's to_proto, or on pycaffe
    what Net.save writes (to a hidden file beside `output`, removed after)."""
    if hasattr(net, 'to_proto'):
        return net.to_proto()
    scratch = pathlib.Path(output).with_name(f'.{pathlib.Path(output).name}.full')
    try:
        net.save(str(scratch))
        return files.read_binary(scratch)
    finally:
        scratch.unlink(missing_ok=True)


def _resolve(args):
    if args.classifier == 'custom':
        missing = [f for f in ('classifier_net', 'fcn_net', 'input', 'output')
                   if getattr(args, f) is None]
        if missing:
            raise SystemExit(f'custom conversion needs --{", --".join(missing)}'.replace('_',
                                                                                         '-'))
        return args.classifier_net, args.fcn_net, args.input, args.output
    return named(args.classifier, args.classifier_net, args.fcn_net, args.input, args.output)


def named(classifier, classifier_net=None, fcn_net=None, source=None, output=None):
    """(classifier net, FCN net, source weights, output) of CONVERSIONS[classifier], each
    taken from the arguments where given; the source must be in the weights folder."""
    conversion = CONVERSIONS[classifier]
    from weights import manifest
    return (classifier_net or NETS / conversion.classifier_net,
            fcn_net or NETS / conversion.fcn_net,
            source or manifest.require(conversion.source),
            output or manifest.weights_dir() / f'{conversion.output}.caffemodel')


def convert_named(classifier, verbose=False):
    """Convert the released classifier `classifier` (a key of CONVERSIONS) into its FCN
    initialisation in the weights folder; returns the file written."""
    classifier_net, fcn_net, source, output = named(classifier)
    convert(classifier_net, fcn_net, source, output, verbose=verbose)
    return pathlib.Path(output)


def get_args_parser():
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0], epilog=__doc__.split('Examples:')[1],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('classifier', choices=sorted(CONVERSIONS) + ['custom'])
    parser.add_argument('--input', help='classifier caffemodel (default: from the manifest)')
    parser.add_argument('--output', help='FCN initialisation to write (default: weights dir)')
    parser.add_argument('--classifier-net', help='classifier deploy prototxt')
    parser.add_argument('--fcn-net', help='FCN prototxt whose layers receive the weights')
    parser.add_argument('--quiet', action='store_true', help='do not print the report')
    return parser


def main(args):
    import backend
    try:
        classifier_net, fcn_net, source, output = _resolve(args)
        report = convert(classifier_net, fcn_net, source, output, verbose=not args.quiet)
    except (OSError, ValueError, *backend.input_errors()) as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    print(f'wrote {output}: {len({r.target for r in report if r.target and r.source})} '
          f'layers transplanted')
    return 0


if __name__ == '__main__':
    sys.exit(main(get_args_parser().parse_args()))
