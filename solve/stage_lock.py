"""One run per stage folder: a run holds <stage>/run.lock while it trains.

The lock is an flock on the file, which the kernel releases when its process ends, however
it ends: a second run finds it held and says by whom; a lock left by a killed run is free,
and the next run takes it over (and says so). The file names the holder: pid, host, start
time and command line.
"""
import contextlib
import logging

import atomic_files

log = logging.getLogger('fcn.solve')
NAME = 'run.lock'


class StageBusyError(OSError):
    """Another run is training in this stage folder."""


@contextlib.contextmanager
def holding(folder):
    """Hold folder/run.lock for the block, or raise StageBusyError naming its holder."""
    path = folder / NAME
    try:
        with atomic_files.holding(path, f'{folder} is in use by another run') as left:
            if left:
                log.info('taking over %s, left by a run that ended without releasing it (%s)',
                         path, left)
            yield path
    except atomic_files.LockedError as e:
        raise StageBusyError(f'{e}. Wait for it to end, or give this run another --out.'
                             ) from None
