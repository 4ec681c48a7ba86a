"""What the command-line tools share: their help layout and their progress bar."""
import argparse
import sys
import time


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


class ProgressBar:
    """`label [=====>    ] 123/736 2.1 img/s` on stderr, redrawn in place with '\\r'."""

    def __init__(self, total, unit='img', label='', width=30, stream=None):
        self.total, self.unit, self.label, self.width = total, unit, label, width
        self.stream = stream or sys.stderr
        self.start = time.perf_counter()

    def update(self, done):
        filled = self.width * done // self.total
        arrow = '=' * filled + ('>' if filled < self.width else '')
        rate = done / max(time.perf_counter() - self.start, 1e-9)
        prefix = f'{self.label} ' if self.label else ''
        self.stream.write(f'\r{prefix}[{arrow:<{self.width}}] {done}/{self.total} '
                          f'{rate:.1f} {self.unit}/s')
        if done == self.total:
            self.stream.write('\n')
        self.stream.flush()
