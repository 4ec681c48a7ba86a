"""pycaffe's init_log and log (_caffe.cpp's InitLog* and Log) on the engine's logger.

init_log(), init_log(level) and init_log(level, stderr), by position only as the three
boost.python overloads: `level` is glog's FLAGS_minloglevel (0 INFO, 1 WARNING, 2 ERROR,
3 FATAL) and `stderr` its FLAGS_logtostderr, which defaults to the GLOG_logtostderr
environment variable. Logging to stderr, every line goes there. Otherwise, as glog after
InitGoogleLogging, lines go to the file <log_dir>/<program>.<host>.<user>.log.INFO.
<yyyymmdd-hhmmss>.<pid> (log_dir: GLOG_log_dir, else the temp folder) and stderr keeps
ERROR and above (glog's stderrthreshold). Differences: a second init_log reconfigures
where glog aborts, one INFO file holds every severity, and <program> is the script's
name where pycaffe's empty InitGoogleLogging("") argument leaves it blank.
"""
import faulthandler
import getpass
import logging
import os
import socket
import sys
import tempfile
import time

from caffe_torch import logs

_LOGGER = 'caffe_torch'
_MIN_LEVELS = (logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL)


def init_log(level=None, stderr=None, /):
    """Start glog-style logging (see the module docstring); also enables faulthandler on
    the process's stderr, as InitLog installs glog's failure signal handler."""
    logger = logs.install(_LOGGER)
    if level is not None:
        logger.setLevel(_MIN_LEVELS[min(max(int(level), 0), 3)])
    if stderr is None:
        stderr = os.environ.get('GLOG_logtostderr', '0').lower() in ('1', 'true', 'yes')
    console = next((h for h in logger.handlers if isinstance(h, logging.StreamHandler)
                    and isinstance(h.formatter, logs.GlogFormatter)
                    and not getattr(h, '_glog_file', False)), None)
    if console is None:  # the application removed it
        console = logging.StreamHandler()
        console.setFormatter(logs.GlogFormatter())
        logger.addHandler(console)
    console.setStream(sys.stderr)
    for handler in [h for h in logger.handlers if getattr(h, '_glog_file', False)]:
        logger.removeHandler(handler)
        handler.close()
    console.setLevel(logging.NOTSET if stderr else logging.ERROR)
    if not stderr:
        logger.addHandler(_file_handler())
    if not faulthandler.is_enabled() and sys.__stderr__ is not None:
        try:
            faulthandler.enable(sys.__stderr__)
        except (OSError, ValueError):  # no file descriptor behind stderr
            pass


def log(message):
    """LOG(INFO) << message."""
    logging.getLogger(_LOGGER).info(str(message))


def _file_handler():
    folder = os.environ.get('GLOG_log_dir') or tempfile.gettempdir()
    program = os.path.basename(sys.argv[0] if sys.argv and sys.argv[0] else 'python')
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = 'invalid-user'  # glog's name when it finds none
    name = (f'{program}.{socket.gethostname()}.{user}.log.INFO.'
            f'{time.strftime("%Y%m%d-%H%M%S")}.{os.getpid()}')
    handler = logging.FileHandler(os.path.join(folder, name))
    handler.setFormatter(logs.GlogFormatter())
    handler._glog_file = True
    return handler
