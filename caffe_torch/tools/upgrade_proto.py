"""Caffe's upgrade tools (tools/upgrade_net_proto_text.cpp, upgrade_net_proto_binary.cpp,
upgrade_solver_proto_text.cpp) on the engine's upgrade rules (caffe_torch.upgrade):

    python -m caffe_torch.tools.upgrade_net_proto_text OLD.prototxt NEW.prototxt
    python -m caffe_torch.tools.upgrade_net_proto_binary OLD.caffemodel NEW.caffemodel
    python -m caffe_torch.tools.upgrade_solver_proto_text OLD_solver.prototxt NEW.prototxt

Exit status as Caffe's: 1 for a wrong argument count or a failed upgrade, 2 for an input
that does not parse; a file already in the current format is written as it is, with
Caffe's "File already in latest proto format" error line. Unlike Caffe, a failed upgrade
writes nothing (Caffe writes the partly upgraded message).
"""
import logging
import sys

from caffe_torch import formats, upgrade
from caffe_torch.errors import CaffeError
from caffe_torch.proto import caffe_pb2

log = logging.getLogger('caffe_torch.tools.upgrade_proto')


def _run(argv, usage, read, needs_upgrade, do_upgrade, write, kind):
    argv = sys.argv[1:] if argv is None else list(argv)
    if len(argv) != 2:
        log.error('Usage: %s', usage)
        return 1
    source, target = argv
    try:
        message = read(source)
    except (CaffeError, OSError) as e:
        log.error('Failed to parse input %s: %s (%s)', kind, source, e)
        return 2
    if needs_upgrade(message):
        try:
            do_upgrade(message, source)
        except CaffeError as e:
            log.error('%s', e)
            log.error('Encountered error(s) while upgrading prototxt; see details above.')
            return 1
    else:
        log.error('File already in latest proto format: %s', source)
    write(message, target)
    name = type(message).DESCRIPTOR.name
    log.info('Wrote upgraded %s %s proto to %s', name,
             'binary' if kind.startswith('binary') else 'text', target)
    return 0


def net_text_main(argv=None):
    return _run(argv, 'upgrade_net_proto_text v0_net_proto_file_in net_proto_file_out',
                lambda p: formats.read_prototxt(p, caffe_pb2.NetParameter),
                upgrade.net_needs_upgrade, upgrade.upgrade_net, formats.write_prototxt,
                'text file as NetParameter')


def net_binary_main(argv=None):
    return _run(argv, 'upgrade_net_proto_binary v0_net_proto_file_in net_proto_file_out',
                lambda p: formats.read_binaryproto(p, caffe_pb2.NetParameter),
                upgrade.net_needs_upgrade, upgrade.upgrade_net, formats.write_binaryproto,
                'binary file as NetParameter')


def solver_text_main(argv=None):
    return _run(argv, 'upgrade_solver_proto_text old_solver_proto_file_in '
                      'solver_proto_file_out',
                lambda p: formats.read_prototxt(p, caffe_pb2.SolverParameter),
                lambda s: s.HasField('solver_type'), upgrade.upgrade_solver,
                formats.write_prototxt, 'text file as SolverParameter')
