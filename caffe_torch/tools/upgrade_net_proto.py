"""Upgrade a V0/V1 net (prototxt or caffemodel) to the current format, like Caffe's
upgrade_net_proto_text and upgrade_net_proto_binary tools.

Examples:
  python -m caffe_torch.tools.upgrade_net_proto VGG_ILSVRC_16_layers_deploy.prototxt vgg16.prototxt
  python -m caffe_torch.tools.upgrade_net_proto --binary VGG_ILSVRC_16_layers.caffemodel vgg16.caffemodel
"""
import argparse
import sys

from caffe_torch import formats
from caffe_torch.errors import CaffeError


def get_args_parser():
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0], epilog=__doc__.split('\n\n', 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('input', help='legacy or current net file')
    parser.add_argument('output', help='where to write the upgraded net')
    parser.add_argument('--binary', action='store_true',
                        help='input and output are binary caffemodels, not prototxt')
    return parser


def main(args):
    if args.binary:
        net = formats.read_net_binary(args.input)
        formats.write_binaryproto(net, args.output)
    else:
        net = formats.read_net(args.input)
        formats.write_prototxt(net, args.output)
    print(f'wrote {args.output}: {len(net.layer)} layers in the current format')
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main(get_args_parser().parse_args()))
    except (CaffeError, FileNotFoundError) as e:
        sys.exit(f'error: {e}')
