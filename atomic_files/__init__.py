"""How the engine and the toolkit write files: atomically, under one temporary-name scheme,
and never through a symbolic link that leads out of the folder they write to.

A write goes to `.<name>.<8 random characters>.tmp` beside its target, is flushed to disk,
then replaces the target in one step: a crash leaves the old file or the new one, never a
torn one, and `sweep` knows every leftover by its name. This module imports nothing of the
engine or of a backend, so both (and the toolkit on real pycaffe) share it.
"""
import contextlib
import fcntl
import json
import os
import re
import socket
import stat
import sys
import tempfile
import time

TEMPORARY = re.compile(r'\..+\.[a-z0-9_]{8}\.tmp')


class OutsideFolderError(OSError):
    """An output path that resolves, through a symbolic link, outside its output folder."""


def is_temporary(name):
    """Whether a file name is one this module's interrupted writes leave."""
    return TEMPORARY.fullmatch(name) is not None


@contextlib.contextmanager
def replacing(path):
    """Yield a temporary path beside `path` to write; on success it replaces `path` (mode
    0666 less the umask, as open() gives), on failure it is removed. An OSError names
    `path`, not the temporary file."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=f'.{os.path.basename(path)}.', suffix='.tmp',
                                   dir=folder)
    except OSError as e:
        raise type(e)(e.errno, f'cannot write {path}: {e.strerror}') from None
    os.close(fd)
    try:
        yield tmp
        _flush(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as e:
        _remove(tmp)
        raise type(e)(e.errno, f'cannot write {path}: {e.strerror}') from None
    except BaseException:
        _remove(tmp)
        raise


def write_bytes(path, data):
    """Replace `path` by `data` (bytes) in one step."""
    with replacing(path) as tmp, open(tmp, 'wb') as f:
        f.write(data)


def _flush(path):
    with open(path, 'rb+') as f:
        os.fsync(f.fileno())


def _remove(path):
    with contextlib.suppress(OSError):
        os.unlink(path)


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def sweep(folder, on_remove=None):
    """Remove what interrupted writes left in `folder` (not below it); `on_remove(path)` is
    told of each. Returns the paths removed."""
    removed = []
    for entry in os.scandir(folder) if os.path.isdir(folder) else ():
        if entry.is_file(follow_symlinks=False) and is_temporary(entry.name):
            if on_remove:
                on_remove(entry.path)
            os.unlink(entry.path)
            removed.append(entry.path)
    return removed


def file_problem(path):
    """Why `path` cannot be read as a file ('does not exist', 'is a folder, not a file', ...),
    or None when it can: a folder where a file belongs is not said to be missing."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return 'does not exist'
    except OSError as e:
        return f'cannot be read ({e.strerror})'
    if stat.S_ISDIR(mode):
        return 'is a folder, not a file'
    if not stat.S_ISREG(mode):
        return 'is not a regular file (a device, FIFO or socket)'
    return None


def inside(path, root):
    """`path`, after checking that it does not lead out of the folder `root` through a
    symbolic link (the link itself, or one of the folders between): a link planted in an
    output folder must not make a write land elsewhere."""
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if os.path.commonpath([real, real_root]) != real_root:
        raise OutsideFolderError(
            f'refusing to write {path}: a symbolic link makes it {real}, outside the output '
            f'folder {root}. Remove the link, or choose another output folder.')
    return path


class LockedError(OSError):
    """Another process holds a lock file; the message names it."""


@contextlib.contextmanager
def holding(path, busy):
    """Hold an flock on the file `path` for the block, writing the holder (pid, host, start,
    command line) into it; the kernel releases it when the process ends, however it ends.
    Held elsewhere: raise LockedError('<busy> (<holder>)'). Yields the holder the file named
    when a run that ended without releasing it left one, else ''."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockedError(f'{busy} ({_holder(fd)})') from None
        left = _holder(fd, quiet=True)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({'pid': os.getpid(), 'host': socket.gethostname(),
                                  'started': time.strftime('%Y-%m-%d %H:%M:%S'),
                                  'command': sys.argv}).encode(), 0)
        yield left
        os.unlink(path)  # still held: no other process can have taken it meanwhile
    finally:
        os.close(fd)


def _holder(fd, quiet=False):
    """Who the lock file says holds it ('' when it says nothing and `quiet`)."""
    try:
        record = json.loads(os.pread(fd, 65536, 0) or b'{}')
        return (f'pid {record["pid"]} on {record["host"]} since {record["started"]}: '
                f'{" ".join(record["command"])}')
    except (ValueError, KeyError, TypeError):
        return '' if quiet else 'a process that has not written its name yet'
