"""train.log: the lines Caffe prints while a stage trains, and the toolkit's own, in glog's
format (`I1201 09:35:44.123456 4242 solver.cpp:239] Iteration 20, loss = 3.04`), which
solve.curves and Caffe's own log parsers read.

    engine   its `caffe_torch` logger is Python logging: a file handler takes its lines
    pycaffe  Caffe's glog writes from C++ straight to the process's stderr (fd 2), out of
             Python's reach: `glog_to` puts a pipe on fd 2 while the stage trains, passes
             every byte on to the real stderr and copies glog's lines into train.log

The toolkit's own lines name their file without a line number (`loop.py]`), so the copy
never takes them twice; C++ glog lines always carry one (`sgd_solver.cpp:106]`).
"""
import contextlib
import logging
import os
import re
import sys
import threading
import time

import backend
from solve import console

# glog 0.6 and later put the year in the date by default (I20261201 09:35:44...)
CAFFE_LINE = re.compile(rb'[IWEF](?:\d{4})?\d{4} \d\d:\d\d:\d\d\.\d{6} +\d+ [^\s\]]+:\d+\] ')
_SEVERITY = {logging.WARNING: 'W', logging.ERROR: 'E', logging.CRITICAL: 'F'}


class GlogFormatter(logging.Formatter):
    """glog's line layout for Python log records (severity letter, date, microseconds,
    process id, file)."""

    def format(self, record):
        when = time.strftime('%m%d %H:%M:%S', time.localtime(record.created))
        letter = _SEVERITY.get(record.levelno, 'I')
        micros = round(record.created % 1 * 1e6) % 1000000
        return f'{letter}{when}.{micros:06d} {record.process} {record.filename}] ' \
               f'{record.getMessage()}'


@contextlib.contextmanager
def train_log(path):
    """While the block runs, the toolkit's `fcn` lines (also shown on stderr) and Caffe's
    own go to `path` as well."""
    handler = logging.FileHandler(path)
    handler.setFormatter(GlogFormatter())
    loggers = [logging.getLogger('fcn')]
    if backend.is_engine:
        loggers.append(logging.getLogger('caffe_torch'))
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    _show_on_stderr(loggers[0])
    try:
        with contextlib.nullcontext() if backend.is_engine else glog_to(path):
            yield
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
        handler.close()


def _show_on_stderr(logger):
    if not any(type(h) is logging.StreamHandler for h in logger.handlers):
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(GlogFormatter())
        logger.addHandler(stream)


@contextlib.contextmanager
def glog_to(path):
    """While the block runs, append the glog lines written to fd 2 to `path`; everything
    written to fd 2 still reaches the original stderr, byte for byte."""
    sys.stderr.flush()
    terminal = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    console.terminal_fd = terminal  # progress bars ask the real stderr whether it is a tty
    pump = threading.Thread(target=_pump, args=(read_end, terminal, path), daemon=True)
    pump.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(terminal, 2)  # closes the pipe's write end: the pump reads to EOF and stops
        console.terminal_fd = None
        pump.join()
        os.close(terminal)


def _pump(read_end, terminal, path):
    """Drain the pipe to the end whatever fails (a full pipe would block Caffe's writes):
    a log that cannot be written is given up, the terminal's output kept."""
    try:
        log = open(path, 'ab')
    except OSError:
        log = None
    pending = b''
    with os.fdopen(read_end, 'rb', buffering=0) as pipe:
        while True:
            chunk = pipe.read(1 << 16)
            if not chunk:
                break
            try:
                _write_all(terminal, chunk)
            except OSError:
                pass
            *lines, pending = (pending + chunk).split(b'\n')
            found = (CAFFE_LINE.search(line) for line in lines)  # maybe after a progress bar
            caffe_lines = [m.string[m.start():] for m in found if m]
            if caffe_lines and log is not None:
                try:
                    log.write(b'\n'.join(caffe_lines) + b'\n')
                    log.flush()
                except OSError:
                    log.close()
                    log = None
    if log is not None:
        log.close()


def _write_all(fd, data):
    while data:
        data = data[os.write(fd, data):]
