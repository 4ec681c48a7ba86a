"""What the command-line tools share: their help layout and their progress bar."""
import argparse
import pathlib
import os
import sys


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter,
                    argparse.RawDescriptionHelpFormatter):
    """Defaults shown in --help (not for on/off flags), the epilog's examples as written."""

    def _get_help_string(self, action):
        return action.help if action.nargs == 0 else super()._get_help_string(action)


class GPUError(RuntimeError):
    """The GPU a --gpu option names is not there."""


def use_gpu(device):
    """Caffe's GPU mode on `device`, or GPUError saying why not (no CUDA, no such id)."""
    from backend import caffe
    try:
        caffe.set_device(device)
        caffe.set_mode_gpu()
    except (RuntimeError, ValueError) as e:
        raise GPUError(f'--gpu {device}: {e}') from None


def positive_int(text):
    """argparse type: an int > 0 (iterations, steps)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f'expected a positive integer, got {text!r}')
    return value


def nonempty_path(text):
    """argparse type: a path, refusing '' (what an unset shell variable gives, as in
    --out "$OUT"), which would otherwise mean the default or the current folder silently."""
    if not text.strip():
        raise argparse.ArgumentTypeError(
            f'{text!r} names no file or folder (an unset shell variable?); give a path, or '
            f'leave the option out for its default')
    return pathlib.Path(text)


def stderr_is_terminal():
    """Whether stderr reaches a terminal; on pycaffe, solve.logs puts a pipe on fd 2 while a
    stage trains and passes what it reads to `terminal_fd`, the real one."""
    try:
        return os.isatty(terminal_fd if terminal_fd is not None else sys.stderr.fileno())
    except (AttributeError, ValueError, OSError):
        return False


terminal_fd = None


def progress_bar(total, unit='img', desc=None, enabled=True):
    """tqdm's bar on stderr (count, rate, ETA), drawn only where stderr is a terminal: logs
    and CI output get no carriage-return frames. `enabled` False (--no-progress) hides it
    on a terminal too. Advance it with .update(1); close it, or use it in a with block."""
    from tqdm import tqdm
    return tqdm(total=total, unit=unit, desc=desc, file=sys.stderr, dynamic_ncols=True,
                mininterval=0.5, leave=False, disable=not (enabled and stderr_is_terminal()))
