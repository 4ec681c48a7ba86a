"""Caffe-style log lines on stderr for the `caffe_torch` loggers, as glog prints them:

    I1123 17:20:57.123456 12345 solver.py] Iteration 20 (2.1 iter/s, 9.5s/20 iters), loss = 3.04

Log parsers written for Caffe's output (loss curves from "Iteration N ... loss = X") read
them unchanged. GLOG_minloglevel works as in Caffe (0 INFO, 1 WARNING, 2 ERROR); an
application that configures `logging` itself can remove the handler or raise the level.
"""
import logging
import os
import sys
import time

_LEVELS = {logging.DEBUG: 'I', logging.INFO: 'I', logging.WARNING: 'W',
           logging.ERROR: 'E', logging.CRITICAL: 'F'}


class GlogFormatter(logging.Formatter):
    def format(self, record):
        stamp = time.strftime('%m%d %H:%M:%S', time.localtime(record.created))
        micros = int((record.created % 1) * 1e6)
        return (f'{_LEVELS.get(record.levelno, "I")}{stamp}.{micros:06d} {record.process} '
                f'{os.path.basename(record.pathname)}] {record.getMessage()}')


def install(logger_name='caffe_torch'):
    """Attach the glog-style stderr handler once; level from GLOG_minloglevel."""
    logger = logging.getLogger(logger_name)
    if any(isinstance(h.formatter, GlogFormatter) for h in logger.handlers):
        return logger
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(GlogFormatter())
    logger.addHandler(handler)
    minimum = os.environ.get('GLOG_minloglevel', '0')
    levels = {'0': logging.INFO, '1': logging.WARNING, '2': logging.ERROR, '3': logging.CRITICAL}
    logger.setLevel(levels.get(minimum, logging.INFO))
    return logger
