"""gflags' command line for `caffe` (tools/caffe.cpp's flags): -flag=value, --flag=value,
-flag value and --flag value; glog's flags that caffe::GlobalInit accepts; `ERROR: ...` and
exit status 1 for an unknown flag or a bad value, as gflags does."""
import sys

USAGE = """command line brew
usage: caffe <command> <args>

commands:
  train           train or finetune a model
  test            score a model
  device_query    show GPU diagnostic information
  time            benchmark model execution time"""

# name: (type, default, help) as tools/caffe.cpp defines them
FLAGS = {
    'gpu': (str, '', "Optional; run in GPU mode on given device IDs separated by ','.Use "
                     "'-gpu all' to run on all available GPUs. The effective training "
                     "batch size is multiplied by the number of devices."),
    'solver': (str, '', 'The solver definition protocol buffer text file.'),
    'model': (str, '', 'The model definition protocol buffer text file.'),
    'phase': (str, '', "Optional; network phase (TRAIN or TEST). Only used for 'time'."),
    'level': (int, 0, 'Optional; network level.'),
    'stage': (str, '', "Optional; network stages (not to be confused with phase), "
                       "separated by ','."),
    'snapshot': (str, '', 'Optional; the snapshot solver state to resume training.'),
    'weights': (str, '', "Optional; the pretrained weights to initialize finetuning, "
                         "separated by ','. Cannot be set simultaneously with snapshot."),
    'iterations': (int, 50, 'The number of iterations to run.'),
    'sigint_effect': (str, 'stop', 'Optional; action to take when a SIGINT signal is '
                                   'received: snapshot, stop or none.'),
    'sighup_effect': (str, 'snapshot', 'Optional; action to take when a SIGHUP signal is '
                                       'received: snapshot, stop or none.'),
}
# glog's own flags, which caffe::GlobalInit accepts too
GLOG_FLAGS = {'minloglevel': int, 'logtostderr': bool, 'alsologtostderr': bool,
              'log_dir': str, 'v': int, 'colorlogtostderr': bool}


class UsageError(Exception):
    """gflags' own errors (unknown flag, bad value): `ERROR: ...` on stderr, status 1."""


def parse_flags(argv, spec=None, usage_text=None):
    """gflags' parsing against `spec` ({name: (type, default, help)}, the caffe tool's by
    default): returns (flags dict, positional arguments). Bool flags take -x, -x=true,
    -nox; -help prints the usage and exits."""
    spec = FLAGS if spec is None else spec
    flags = {name: entry[1] for name, entry in spec.items()}
    positional, i = [], 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == '--':
            positional.extend(argv[i:])
            break
        if not arg.startswith('-') or arg == '-':
            positional.append(arg)
            continue
        name, eq, value = arg.lstrip('-').partition('=')
        if name in ('help', 'helpshort', 'h', '?'):
            raise SystemExit(usage(0, spec, usage_text))
        if name == 'version':
            print('caffe version 1.0.0 (caffe_torch)')
            raise SystemExit(0)
        known = {n: e[0] for n, e in spec.items()}
        known.update({n: k for n, k in GLOG_FLAGS.items() if n not in known})
        kind = known.get(name)
        if kind is None and name.startswith('no') and known.get(name[2:]) is bool:
            name, kind, eq, value = name[2:], bool, '=', 'false'
        if kind is None:
            raise UsageError(f"unknown command line flag '{name}'")
        if not eq:
            if kind is bool:
                value = 'true'
            elif i < len(argv):
                value, i = argv[i], i + 1
            else:
                raise UsageError(f"flag '{name}' is missing its argument; flag "
                                 f"description: {spec.get(name, ('', '', ''))[2]}")
        flags[name] = _convert(name, kind, value)
    return flags, positional


def _convert(name, kind, value):
    if kind is int:
        try:
            return int(value)
        except ValueError:
            raise UsageError(f"illegal value '{value}' specified for int32 flag "
                             f"'{name}'") from None
    if kind is bool:
        if value.lower() not in ('true', 'false', '1', '0', 't', 'f', 'yes', 'no'):
            raise UsageError(f"illegal value '{value}' specified for bool flag '{name}'")
        return value.lower() in ('true', '1', 't', 'yes')
    return value


def usage(status, spec=None, text=None, source='tools/caffe.cpp'):
    """Print the usage message and the flags (gflags' -help), return `status`."""
    spec = FLAGS if spec is None else spec
    lines = [USAGE if text is None else text, '', f'  Flags from {source}:']
    types = {str: 'string', int: 'int32', bool: 'bool'}
    for name, (kind, default, help_text) in spec.items():
        shown = f'"{default}"' if kind is str else str(default).lower() \
            if kind is bool else default
        lines.append(f'    -{name} ({help_text}) type: {types[kind]} default: {shown}')
    print('\n'.join(lines), file=sys.stderr)
    return status
