"""One run per stage folder: a run holds <stage>/run.lock while it trains.

The lock is an flock on the file, which the kernel releases when its process ends, however
it ends: a second run finds it held and says by whom; a lock left by a killed run is free,
and the next run takes it over (and says so). The file names the holder: pid, host, start
time and command line.
"""
import contextlib
import fcntl
import json
import logging
import os
import socket
import sys
import time

log = logging.getLogger('fcn.solve')
NAME = 'run.lock'


class StageBusyError(OSError):
    """Another run is training in this stage folder."""


@contextlib.contextmanager
def holding(folder):
    """Hold folder/run.lock for the block, or raise StageBusyError naming its holder."""
    path = folder / NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StageBusyError(
                f'{folder} is in use by another run ({_holder(fd)}). Wait for it to end, or '
                f'give this run another --out.') from None
        left = _holder(fd, quiet=True)
        if left:
            log.info('taking over %s, left by a run that ended without releasing it (%s)',
                     path, left)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({'pid': os.getpid(), 'host': socket.gethostname(),
                                  'started': time.strftime('%Y-%m-%d %H:%M:%S'),
                                  'command': sys.argv}).encode(), 0)
        yield path
        os.unlink(path)  # still held: no other run can have taken it meanwhile
    finally:
        os.close(fd)


def _holder(fd, quiet=False):
    """Who the file says holds it ('' when it says nothing and `quiet`)."""
    try:
        record = json.loads(os.pread(fd, 65536, 0) or b'{}')
        return (f'pid {record["pid"]} on {record["host"]} since {record["started"]}: '
                f'{" ".join(record["command"])}')
    except (ValueError, KeyError, TypeError):
        return '' if quiet else 'a run that has not written its name yet'
