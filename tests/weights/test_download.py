"""weights.download against a local HTTP server on 127.0.0.1: resume, restart, verify, fail.

The server is http_fixtures' (Range answered with 206 unless a test turns ranges off, bodies
cut short on request). A test manifest points at it, so no test touches the real URLs.
"""
import hashlib
import json
import os
import random
import re
import socket

import pytest

import http_fixtures
from http_fixtures import no_proxy, served  # noqa: F401 (no_proxy: an autouse fixture)
from weights import download, manifest as mf

N = 3_000_123  # three 1 MiB reads and a remainder
PAYLOAD = random.Random(0).randbytes(N)
SHA1 = hashlib.sha1(PAYLOAD).hexdigest()
FILE = 'blob.caffemodel'


@pytest.fixture
def server(tmp_path):
    """The test server serving PAYLOAD as /blob.caffemodel."""
    root = tmp_path / 'served'
    root.mkdir()
    (root / FILE).write_bytes(PAYLOAD)
    with served(root) as httpd:
        yield httpd


def url_of(httpd, name=FILE):
    return http_fixtures.url_of(httpd, name)


def entry(url, sha1=SHA1, size=N, name='blob', kind='fcn-release'):
    checks = 'computed from the test payload' if sha1 or size else None
    e = {'name': name, 'file': f'{name}.caffemodel', 'kind': kind, 'url': url, 'size': size,
         'sha1': sha1, 'provenance': {'released_by': 'the test', 'source': 'the test'},
         'licence': 'test', 'format': 'bytes', 'metric': None}
    if checks:
        e['checks_source'] = checks
    e.update({'fcn-release': {'model': 'voc-fcn32s'}, 'ilsvrc-classifier': {'init_for': []},
              'derived': {'init_for': [], 'produced_by': 'python -m make.it', 'from': 'cls'}
              }[kind])
    return e


def run(tmp_path, *entries, args=('blob',)):
    """Write a test manifest holding `entries` and run the CLI into tmp_path/dest."""
    path = tmp_path / 'manifest.json'
    path.write_text(json.dumps({'schema': 1, 'about': 'test', 'files': list(entries),
                                'not_released': {}}), encoding='utf-8')
    dest = tmp_path / 'dest'
    return download.main(['--manifest', str(path), '--dest', str(dest), *args]), dest


def test_full_download_verifies_and_renames(server, tmp_path, capsys):
    """A fresh download verifies size and sha1, leaves only the final file and, where
    stderr is not a terminal, says what it fetched in one line (no bar frames)."""
    rc, dest = run(tmp_path, entry(url_of(server)))
    err = capsys.readouterr().err
    assert rc == 0
    assert (dest / 'blob.caffemodel').read_bytes() == PAYLOAD
    assert not (dest / 'blob.caffemodel.part').exists()
    assert server.requests == [('/' + FILE, None)]
    assert re.search(r'^blob: 3\.0 MB in [\d.]+ s \([\d.]+ MB/s\)$', err, re.M)
    assert '\r' not in err
    assert 'size and sha1 verified' in err


def test_resume_requests_only_the_remaining_bytes(server, tmp_path, capsys):
    """A .part file is resumed with a Range request; only the missing bytes travel."""
    dest = tmp_path / 'dest'
    dest.mkdir()
    (dest / 'blob.caffemodel.part').write_bytes(PAYLOAD[:1_234_567])
    rc, _ = run(tmp_path, entry(url_of(server)))
    assert rc == 0
    assert server.requests == [('/' + FILE, 'bytes=1234567-')]
    assert server.sent == N - 1_234_567
    assert (dest / 'blob.caffemodel').read_bytes() == PAYLOAD
    assert 'resuming at byte 1234567' in capsys.readouterr().err


def test_broken_connection_keeps_the_part_and_resumes(server, tmp_path, capsys):
    """A body cut short keeps its bytes in .part (no final file); the next run resumes."""
    server.cut_after = 1_500_000
    rc, dest = run(tmp_path, entry(url_of(server), size=None))
    kept = (dest / 'blob.caffemodel.part').stat().st_size
    assert rc == 2 and not (dest / 'blob.caffemodel').exists()
    assert 0 < kept <= 1_500_000
    assert re.search(r'only \d+ of 3000123 bytes arrived.*again to resume',
                     capsys.readouterr().err)
    server.cut_after = None
    rc, _ = run(tmp_path, entry(url_of(server), size=None))
    assert rc == 0 and server.requests[-1][1] == f'bytes={kept}-'
    assert (dest / 'blob.caffemodel').read_bytes() == PAYLOAD


def test_server_without_range_support_restarts(server, tmp_path, capsys):
    """A server that answers a Range request with 200 makes the download start over."""
    server.ranges = False
    dest = tmp_path / 'dest'
    dest.mkdir()
    (dest / 'blob.caffemodel.part').write_bytes(b'x' * 1000)
    rc, _ = run(tmp_path, entry(url_of(server)))
    assert rc == 0
    assert server.requests == [('/' + FILE, 'bytes=1000-')] and server.sent == N
    assert (dest / 'blob.caffemodel').read_bytes() == PAYLOAD
    assert 'ignored the Range request' in capsys.readouterr().err


def test_part_longer_than_the_file_restarts(server, tmp_path):
    """A .part past the end (HTTP 416) is discarded and the file downloaded afresh."""
    dest = tmp_path / 'dest'
    dest.mkdir()
    (dest / 'blob.caffemodel.part').write_bytes(PAYLOAD + b'junk')
    rc, _ = run(tmp_path, entry(url_of(server), size=None))
    assert rc == 0 and [r for _, r in server.requests] == [f'bytes={N + 4}-', None]
    assert (dest / 'blob.caffemodel').read_bytes() == PAYLOAD


def test_present_verified_file_is_skipped(server, tmp_path, capsys):
    """A file already present with the right size and sha1 is not downloaded again."""
    dest = tmp_path / 'dest'
    dest.mkdir()
    (dest / 'blob.caffemodel').write_bytes(PAYLOAD)
    rc, _ = run(tmp_path, entry(url_of(server)))
    assert rc == 0 and server.requests == []
    assert 'already present, verified' in capsys.readouterr().err


def test_all_fetches_every_url_and_lists(server, tmp_path, capsys):
    """--all downloads the entries with a URL only; --list shows what is here."""
    derived = entry(None, sha1=None, size=None, name='made', kind='derived')
    classifier = entry(url_of(server), name='cls', kind='ilsvrc-classifier')
    (tmp_path / 'served' / 'cls.caffemodel').write_bytes(PAYLOAD)
    rc, dest = run(tmp_path, classifier, derived, args=('--all',))
    assert rc == 0 and sorted(p.name for p in dest.iterdir()) == ['cls.caffemodel']
    rc, _ = run(tmp_path, classifier, derived, args=('--list',))
    table = capsys.readouterr().out
    assert rc == 0 and re.search(r'cls\s+ilsvrc-classifier\s+3\s+yes\s+yes', table)
    assert re.search(r'made\s+derived\s+\?\s+-\s+make', table)


def test_catch_checksum_mismatch(server, tmp_path, capsys):
    """A sha1 mismatch leaves no final file and no .part, and says what happened."""
    rc, dest = run(tmp_path, entry(url_of(server), sha1=hashlib.sha1(b'other').hexdigest()))
    err = capsys.readouterr().err
    assert rc == 2
    assert not (dest / 'blob.caffemodel').exists()
    assert not (dest / 'blob.caffemodel.part').exists()
    assert re.search(r'has sha1 [0-9a-f]{40} where the manifest records', err)
    assert 'nothing was written to' in err and 'Traceback' not in err


def test_catch_server_size_differs_from_manifest(server, tmp_path, capsys):
    """A server announcing another size than the manifest's is refused before any byte."""
    rc, dest = run(tmp_path, entry(url_of(server), size=N + 1))
    assert rc == 2 and not any(dest.iterdir())
    assert f'serves {N} bytes where the manifest records {N + 1}' in capsys.readouterr().err


def test_catch_connection_refused(tmp_path, capsys):
    """An unreachable server gives the offline message: what, from where, put where."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    url = f'http://127.0.0.1:{port}/{FILE}'
    rc, dest = run(tmp_path, entry(url))
    err = capsys.readouterr().err
    assert rc == 2
    assert f'from:     {url}' in err
    assert f'put it:   {dest / "blob.caffemodel"}' in err
    assert 'refused' in err.lower() and 'Traceback' not in err


def test_catch_http_error(server, tmp_path, capsys):
    """An HTTP error status is reported with the URL and the destination."""
    rc, _ = run(tmp_path, entry(url_of(server, 'missing.caffemodel')))
    err = capsys.readouterr().err
    assert rc == 2 and 'HTTP 404' in err and 'missing.caffemodel' in err


def test_catch_present_file_that_fails_verification(server, tmp_path, capsys):
    """A wrong file under the final name is left alone and reported, not overwritten."""
    dest = tmp_path / 'dest'
    dest.mkdir()
    (dest / 'blob.caffemodel').write_bytes(b'mine')
    rc, _ = run(tmp_path, entry(url_of(server)))
    assert rc == 2 and (dest / 'blob.caffemodel').read_bytes() == b'mine'
    assert 'is present but has 4 bytes' in capsys.readouterr().err
    assert server.requests == []


def test_catch_derived_entry(tmp_path, capsys):
    """Asking to download a derived file names the command that makes it instead."""
    derived = entry(None, sha1=None, size=None, name='made', kind='derived')
    classifier = entry('http://127.0.0.1:9/cls.caffemodel', name='cls',
                       kind='ilsvrc-classifier')
    rc, _ = run(tmp_path, classifier, derived, args=('made',))
    assert rc == 2 and '`python -m make.it`' in capsys.readouterr().err


def test_catch_unknown_name(tmp_path, capsys):
    """An unknown name exits 2 listing the known ones."""
    rc, _ = run(tmp_path, entry('http://127.0.0.1:9/x.caffemodel'), args=('nope',))
    assert rc == 2 and 'known: blob' in capsys.readouterr().err


def test_catch_no_names():
    """Without names, --all or --list the CLI stops with a usage error."""
    with pytest.raises(SystemExit) as info:
        download.main([])
    assert info.value.code == 2


def test_help_has_examples():
    """--help works offline and ends with example commands."""
    text = download.get_args_parser().format_help()
    assert 'examples:' in text and 'python -m weights.download --all' in text


def test_shipped_manifest_lists_offline(tmp_path, capsys):
    """--list on the real manifest touches no network and shows every entry."""
    assert download.main(['--list', '--dest', str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in mf.load().entries)


def test_a_file_without_sha1_is_saved_as_not_verified(server, tmp_path, capsys):
    """Without a sha1 in the manifest, a resumed or fresh file is not called verified: the
    message says so and prints the file's sha1 to compare with a trusted copy."""
    rc, dest = run(tmp_path, entry(url_of(server), sha1=None, size=None))
    err = capsys.readouterr().err
    assert rc == 0 and (dest / 'blob.caffemodel').read_bytes() == PAYLOAD
    assert f'NOT verified: the manifest has no sha1 for it, size checked against the ' \
           f"server's; its sha1 is {SHA1}" in err


@pytest.mark.skipif(not os.path.exists('/dev/full'), reason='needs /dev/full')
def test_catch_disk_full_is_not_a_broken_connection(server, tmp_path, capsys):
    """A write that fails (ENOSPC: the .part is /dev/full) is reported as the disk's
    fault, not the network's."""
    dest = tmp_path / 'dest'
    dest.mkdir()
    (dest / 'blob.caffemodel.part').symlink_to('/dev/full')
    rc, _ = run(tmp_path, entry(url_of(server)))
    err = capsys.readouterr().err
    assert rc != 0 and 'cannot write' in err and 'disk full or not writable?' in err
    assert 'connection broke' not in err


def test_catch_dest_that_is_a_file(tmp_path, capsys):
    (tmp_path / 'dest').write_text('not a folder')
    rc, _ = run(tmp_path, entry('http://127.0.0.1:9/none'))
    assert rc != 0
    assert 'is a file; pass a folder' in capsys.readouterr().err


@pytest.mark.parametrize('timeout', ['0', '-1', 'nan', 'inf', 'soon'])
def test_catch_bad_timeout(tmp_path, timeout, capsys):
    """--timeout -1 gave a traceback and 0 a misleading "fetch it on a machine that is
    online": both are refused as arguments."""
    with pytest.raises(SystemExit) as exit_info:
        run(tmp_path, entry('http://127.0.0.1:9/none'), args=('blob', '--timeout', timeout))
    assert exit_info.value.code == 2
    assert 'a number greater than 0' in capsys.readouterr().err


def test_without_sha1_a_damaged_part_is_not_resumed(server, tmp_path, capsys):
    """No sha1 to check a resumed file: a .part left behind is discarded, so damaged bytes
    in it can never reach the final file."""
    dest = tmp_path / 'dest'
    dest.mkdir()
    (dest / 'blob.caffemodel.part').write_bytes(b'\0' * 1000)
    rc, _ = run(tmp_path, entry(url_of(server), sha1=None, size=None))
    assert rc == 0 and 'the download starts afresh' in capsys.readouterr().err
    assert server.requests == [('/' + FILE, None)]
    assert (dest / 'blob.caffemodel').read_bytes() == PAYLOAD


def test_without_sha1_a_body_cut_short_never_becomes_the_file(server, tmp_path, capsys):
    """The server announces N bytes and sends fewer: without a sha1 or a manifest size, the
    announced length alone keeps the file a .part."""
    server.cut_after = 1_000_000
    rc, dest = run(tmp_path, entry(url_of(server), sha1=None, size=None))
    assert rc == 2 and not (dest / 'blob.caffemodel').exists()
    assert f'only 1000000 of {N} bytes arrived' in capsys.readouterr().err
