"""Resumable HTTP downloads into `<file>.part`, shared by weights.download and data_layers.fetch.

`transfer` streams a URL into a .part file. An interrupted download resumes from the .part
with an HTTP Range request; a server that ignores Range answers 200 and the download restarts
from byte 0. Checking the bytes and renaming the .part to its final name are the caller's:
only the caller knows the digests a file must have. Progress is tqdm's byte counter on a
terminal; elsewhere (a log, a pipe) one line says the outcome.
"""
import argparse
import hashlib
import http.client
import math
import os
import re
import sys
import time
import urllib.error
import urllib.request

CHUNK = 1 << 20
MB = 1e6
AGENT = 'fcn-caffe-torch'


class DownloadError(RuntimeError):
    """A file could not be fetched or verified; the message says what to do instead."""


class UnreachableError(DownloadError):
    """The server could not be reached or refused the file (offline, firewall, 404):
    `reason` says why; the caller says where else to get the file."""

    def __init__(self, reason):
        super().__init__(str(reason))
        self.reason = reason


def transfer(name, url, part, size=None, timeout=60.0, out=None, again='Run the command again'):
    """Stream `url` into `part`, resuming what it holds; return the total size the server
    announced (else `size`). `size`, when known, is the file's expected length: a server
    announcing another is refused before a byte is written. `again` is the command that
    resumes, for the messages."""
    out = out or sys.stderr
    offset = part.stat().st_size if part.exists() else 0
    if size is not None and offset >= size:
        if offset == size:
            return size
        part.unlink()
        offset = 0
    try:
        response = _open(url, offset, timeout)
    except urllib.error.HTTPError as e:
        if e.code != 416 or not offset:
            raise UnreachableError(f'HTTP {e.code} {e.reason}') from None
        print(f'{name}: the server refused to resume at byte {offset}; restarting', file=out)
        part.unlink()
        return transfer(name, url, part, size, timeout, out, again)
    except (urllib.error.URLError, OSError) as e:
        raise UnreachableError(getattr(e, 'reason', e)) from None
    with response:
        offset, total = _resume_point(name, url, size, response, offset, part, again, out)
        start, progress = time.monotonic(), progress_bar(name, offset, total, out)
        with open(part, 'ab' if offset else 'wb') as f:
            for block in iter(lambda: _read(name, response, part, progress, again), b''):
                _write(name, f, block, part, progress, again)
                progress.update(len(block))
            _write(name, f, None, part, progress, again)
            done = f.tell()
        progress.close()
    if total is not None and done < total:
        raise DownloadError(f'{name}: only {done} of {total} bytes arrived; {part} keeps them. '
                            f'{again} to resume.')
    seconds = max(time.monotonic() - start, 1e-6)
    print(f'{name}: {(done - offset) / MB:.1f} MB in {seconds:.1f} s '
          f'({(done - offset) / MB / seconds:.1f} MB/s)', file=out)
    return total


def discard_unverifiable(part, verifiable, name, out=None):
    """Without a digest to check the whole file against, a .part left by an earlier run
    (cut short, or damaged on disk) cannot be trusted to resume: delete it so the download
    starts from byte 0."""
    if part.exists() and not verifiable:
        print(f'{name}: no digest is recorded to check a resumed download against, so the '
              f'partial {part} is discarded and the download starts afresh',
              file=out or sys.stderr)
        part.unlink()


def timeout_seconds(text):
    """argparse type of --timeout: seconds, a finite number > 0 (0 or less would fail every
    connection at once, which reads as being offline)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f'expected seconds to wait for a server, a number '
                                         f'greater than 0, got {text!r}')
    return value


def digests(path, names=('sha1',)):
    """{algorithm: hex digest} of the file at `path`, all in one read."""
    hashes = {n: hashlib.new(n) for n in names}
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(CHUNK), b''):
            for h in hashes.values():
                h.update(block)
    return {n: h.hexdigest() for n, h in hashes.items()}


def _read(name, response, part, progress, again):
    try:
        return response.read(CHUNK)
    except (OSError, http.client.HTTPException) as e:
        progress.close()
        raise DownloadError(f'{name}: the connection broke ({e}); {part} keeps what arrived. '
                            f'{again} to resume.') from None


def _write(name, f, block, part, progress, again):
    """Write `block` (None: flush to disk); a failing disk is said to be the disk's."""
    try:
        if block is None:
            f.flush()
            os.fsync(f.fileno())
        else:
            f.write(block)
    except OSError as e:
        progress.close()
        raise DownloadError(f'{name}: cannot write {part}: {e.strerror or e} (disk full or not '
                            f'writable?). Free space or choose another folder, then '
                            f'{again[0].lower() + again[1:]} to resume.') from None


def _open(url, offset, timeout):
    headers = {'User-Agent': AGENT}
    if offset:
        headers['Range'] = f'bytes={offset}-'
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                  timeout=timeout)


def _resume_point(name, url, size, response, offset, part, again, out):
    """(offset to write from, total size or None), after checking the server's answer."""
    status = response.status
    if offset and status == 206:
        span = re.fullmatch(r'bytes (\d+)-\d+/(\d+|\*)',
                            response.headers.get('Content-Range', '').strip())
        if not span or int(span[1]) != offset:
            raise DownloadError(
                f'{name}: asked {url} for bytes {offset}- and got Content-Range '
                f'{response.headers.get("Content-Range")!r}. Delete {part}; {again[0].lower()}'
                f'{again[1:]} to download from the start.')
        total = None if span[2] == '*' else int(span[2])
        print(f'{name}: resuming at byte {offset}', file=out)
    elif status == 200:
        if offset:
            print(f'{name}: the server ignored the Range request (answered 200); restarting '
                  f'from byte 0', file=out)
        offset = 0
        length = response.headers.get('Content-Length')
        total = int(length) if length and length.isdigit() else None
    else:
        raise DownloadError(f'{name}: {url} answered HTTP {status}, expected 200 or 206')
    if None not in (total, size) and total != size:
        raise DownloadError(f'{name}: {url} serves {total} bytes where the manifest records '
                            f'{size}: a different file, so it was not downloaded.')
    return offset, total if total is not None else size


def table(title, rows):
    """`title`, then `rows` (the first one the header) in aligned columns, the last left
    free (it holds prose): what the --list of weights.download and data_layers.fetch prints."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return '\n'.join([title] + ['  '.join(c.ljust(w) for c, w in zip(row, widths)) + '  '
                                 + row[-1] for row in rows])


def progress_bar(name, done, total, out):
    """tqdm's byte counter (percent and ETA when the total is known, MB/s), on a terminal
    only; where `out` is a log or a pipe, the caller says the outcome in one line instead."""
    from tqdm import tqdm
    try:
        terminal = out.isatty()
    except (AttributeError, ValueError):
        terminal = False
    return tqdm(total=total, initial=done, desc=name, unit='B', unit_scale=True,
                unit_divisor=1000, file=out, mininterval=0.25, disable=not terminal)
