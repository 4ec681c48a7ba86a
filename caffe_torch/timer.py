"""pycaffe's Timer (caffe/util/benchmark.hpp as _caffe.cpp binds it): start(), stop() and
the read-only property ms, nothing else.

In CPU mode ms is boost's total_milliseconds of the wall-clock interval, so whole
milliseconds (2.9 ms reads 2.0); in GPU mode it is the CUDA events' elapsed time, in
fractions of a millisecond. The mode is read at start() (Caffe reads it at every call).
"""
import logging
import time

import numpy as np

from caffe_torch import mode

_log = logging.getLogger('caffe_torch')


def _now_us():
    return time.monotonic_ns() // 1000


class Timer:
    __slots__ = ('_running', '_has_run', '_gpu', '_start', '_stop')

    def __init__(self):
        self._running = self._has_run = self._gpu = False
        self._start = self._stop = None

    def start(self):
        """Start timing; a running timer keeps its first start."""
        if self._running:
            return
        self._gpu = mode.mode() == 'gpu'
        self._start = self._mark()
        self._running = self._has_run = True

    def stop(self):
        """Stop timing; a stopped timer is left alone."""
        if self._running:
            self._stop = self._mark()
            self._running = False

    @property
    def ms(self):
        """Milliseconds from start to stop; reading a running timer stops it first."""
        if not self._has_run:
            _log.warning('Timer has never been run before reading time.')
            return 0.0
        self.stop()
        if self._gpu:
            self._stop.synchronize()
            return float(np.float32(self._start.elapsed_time(self._stop)))
        return float((self._stop - self._start) // 1000)

    def _mark(self):
        if not self._gpu:
            return _now_us()
        import torch
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event
