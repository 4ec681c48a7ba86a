"""Run a program written for pycaffe on the engine: `import caffe` in it gives caffe_torch.

    python -m caffe_torch.run SCRIPT [ARGS...]       # as `python SCRIPT ARGS...`
    python -m caffe_torch.run -m MODULE [ARGS...]    # as `python -m MODULE ARGS...`

The engine is installed as `caffe` (install_as_caffe), then the program runs through runpy as
Python runs it: as `__main__`, with sys.argv = [its file, ARGS...], sys.path[0] the script's
folder (for -m, the current folder), its exit status (sys.exit codes and messages), and an
uncaught exception printed as Python prints it, without the runner's frames, exit status 1.
One difference: sys.argv[0] is the script's absolute path (Python keeps it as typed;
__file__ is absolute in both).
"""
import importlib.util
import os
import runpy
import sys

USAGE = 'usage: python -m caffe_torch.run (SCRIPT | -m MODULE) [ARGS...]'
# runpy's frames read '<frozen runpy>' where the standard library is frozen (3.11+)
_RUNNER_FILES = {os.path.abspath(__file__), os.path.abspath(runpy.__file__),
                 '<frozen runpy>'}


def parse_args(argv):
    """(kind, target, args) with kind 'script', 'module' or 'help'; None where argv names
    no program. By hand, as Python's own command line: everything after SCRIPT or MODULE is
    the program's, whatever it looks like (argparse would take its flags)."""
    if not argv or argv[0] == '-m' and len(argv) < 2:
        return None
    if argv[0] in ('-h', '--help'):
        return 'help', None, []
    if argv[0] == '-m':
        return 'module', argv[1], argv[2:]
    return 'script', argv[0], argv[1:]


def main(argv=None):
    parsed = parse_args(sys.argv[1:] if argv is None else argv)
    if parsed is None:
        print(USAGE, file=sys.stderr)
        return 2
    kind, target, args = parsed
    if kind == 'help':
        print(USAGE + '\n\n' + (__doc__ or '').split('\n\n')[-1].strip())
        return 0
    from caffe_torch import install_as_caffe
    install_as_caffe()
    if kind == 'module':
        return _run_module(target, args)
    return _run_script(target, args)


def _run_script(path, args):
    full = os.path.abspath(path)
    if not os.path.exists(full):
        print(f"{sys.executable}: can't open file '{full}': [Errno 2] No such file or "
              f"directory", file=sys.stderr)
        return 2
    sys.argv = [full, *args]
    if os.path.isfile(full):
        sys.path[0] = os.path.dirname(os.path.realpath(full))
    else:
        del sys.path[0]  # a folder or zip with __main__.py: runpy puts it first
    return _run(runpy.run_path, full, run_name='__main__')


def _run_module(name, args):
    sys.path[0] = os.getcwd()
    try:
        spec = importlib.util.find_spec(name)
    except ImportError:
        spec = None
    if spec is None:
        print(f'{sys.executable}: No module named {name}', file=sys.stderr)
        return 1
    sys.argv = [name, *args]  # runpy sets argv[0] to the module's file
    return _run(runpy.run_module, name, run_name='__main__', alter_sys=True)


def _run(runner, *args, **kwargs):
    """runner(*args, **kwargs); an exception (but SystemExit and KeyboardInterrupt) is
    printed by sys.excepthook from the program's first frame on, and gives 1."""
    try:
        runner(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - printed as Python prints it
        tb = exc.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename in _RUNNER_FILES:
            tb = tb.tb_next
        sys.excepthook(type(exc), exc.with_traceback(tb), tb)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
