"""data_layers.unpack: archives read by content, unsafe members refused before anything of
them is written outside, damaged archives and full disks named as such."""
import io
import os
import subprocess
import sys
import tarfile
import zipfile

import pytest

from data_layers import unpack


def add(t, name, data=b'x', kind=tarfile.REGTYPE, link=''):
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, link, len(data) if kind == tarfile.REGTYPE else 0
    t.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def make_tar(path, members, mode='w'):
    with tarfile.open(path, mode) as t:
        add(t, 'top/ok.txt', b'fine')
        for member in members:
            add(t, *member)
    return path


@pytest.mark.parametrize('mode,name', [('w', 'a.tar'), ('w:gz', 'a.tar.gz'),
                                       ('w:gz', 'b.tgz'), ('w', 'plain.tgz'),
                                       ('w:bz2', 'c.tar.bz2'), ('w:xz', 'd.tar.xz')])
def test_tar_formats_are_read_by_content(tmp_path, mode, name):
    archive = make_tar(tmp_path / name, [('top/sub/b.bin', b'\0\1\2'),
                                         ('top/link', b'', tarfile.SYMTYPE, 'ok.txt')], mode)
    assert unpack.extract(archive, tmp_path / 'out') == (2, 7)
    assert (tmp_path / 'out/top/sub/b.bin').read_bytes() == b'\0\1\2'
    assert os.readlink(tmp_path / 'out/top/link') == 'ok.txt'


def test_zip_is_read(tmp_path):
    with zipfile.ZipFile(tmp_path / 'a.zip', 'w') as z:
        z.writestr('Top/Images/x.jpg', b'\xff\xd8')
        z.writestr('Top/Empty/', b'')
    assert unpack.extract(tmp_path / 'a.zip', tmp_path / 'out') == (1, 2)
    assert (tmp_path / 'out/Top/Empty').is_dir()


UNSAFE_TAR = {
    'dotdot': (('../../escaped.txt',), '".." component'),
    'inner dotdot': (('top/../../escaped.txt',), '".." component'),
    'absolute': (('/tmp/escaped.txt',), 'absolute path'),
    'symlink out': (('top/evil', b'', tarfile.SYMTYPE, '../../outside'), 'outside the dataset'),
    'absolute symlink': (('top/evil', b'', tarfile.SYMTYPE, '/etc/passwd'),
                         'outside the dataset'),
    'hard link out': (('top/evil', b'', tarfile.LNKTYPE, '../outside'),
                      'hard link to \'../outside\''),
    'device': (('top/dev', b'', tarfile.CHRTYPE), 'device or FIFO'),
    'fifo': (('top/fifo', b'', tarfile.FIFOTYPE), 'device or FIFO'),
}


# chains of links that stay inside by name but lead out on disk
UNSAFE_TAR.update({
    'link chain out': ((('top/x', b'', tarfile.SYMTYPE, '.'), ('top/x/y', b'', tarfile.SYMTYPE,
                                                               '..'),
                        ('top/x/y/evil', b'', tarfile.SYMTYPE, '..')), 'through links'),
    'file over a link': ((('top/evil', b'', tarfile.SYMTYPE, 'ok.txt'),
                          ('top/evil', b'boom')), 'over a link'),
})


@pytest.mark.parametrize('python_filter', [True, False], ids=['with-data-filter', 'without'])
@pytest.mark.parametrize('case', list(UNSAFE_TAR))
def test_catch_unsafe_tar_members(tmp_path, monkeypatch, case, python_filter):
    """Refused by the module's own checks, with Python's 'data' filter and without it (as on
    Debian 12's Python 3.11.2, which lacks it)."""
    if not python_filter:
        monkeypatch.setattr(unpack, 'DATA_FILTER', {})
    members, why = UNSAFE_TAR[case]
    members = members if isinstance(members[0], tuple) else (members,)
    member = members[-1]
    archive = make_tar(tmp_path / 'evil.tar', list(members))
    out = tmp_path / 'deep' / 'er' / 'out'
    with pytest.raises(unpack.UnsafeArchiveError, match=why) as info:
        unpack.extract(archive, out)
    assert 'nothing of it was installed' in str(info.value) and member[0] in str(info.value)
    assert not (tmp_path / 'escaped.txt').exists() and not (tmp_path / 'deep/escaped.txt'
                                                             ).exists()
    if len(members) == 1:  # earlier, harmless members of a chain were written
        assert not list(out.rglob('evil')) and not list(out.rglob('dev'))


@pytest.mark.parametrize('name,why', [('../escaped.txt', '".." component'),
                                      ('/abs.txt', 'absolute path'),
                                      ('C:/win.txt', 'absolute path'),
                                      ('top\\..\\..\\escaped.txt', '".." component')])
def test_catch_unsafe_zip_names(tmp_path, name, why):
    with zipfile.ZipFile(tmp_path / 'evil.zip', 'w') as z:
        z.writestr(name, b'x')
    with pytest.raises(unpack.UnsafeArchiveError, match=why):
        unpack.extract(tmp_path / 'evil.zip', tmp_path / 'out')


def test_catch_zip_symlink(tmp_path):
    info = zipfile.ZipInfo('top/link')
    info.external_attr = (0o120777 << 16)
    with zipfile.ZipFile(tmp_path / 'evil.zip', 'w') as z:
        z.writestr(info, '../../outside')
    with pytest.raises(unpack.UnsafeArchiveError, match='symbolic link'):
        unpack.extract(tmp_path / 'evil.zip', tmp_path / 'out')


@pytest.mark.parametrize('content', [b'', b'not an archive at all' * 50])
def test_catch_not_an_archive(tmp_path, content):
    (tmp_path / 'x.tar').write_bytes(content)
    with pytest.raises(unpack.ArchiveError, match='neither a tar .* nor a zip'):
        unpack.extract(tmp_path / 'x.tar', tmp_path / 'out')


@pytest.mark.parametrize('mode', ['w', 'w:gz'])
def test_catch_truncated_archive(tmp_path, mode):
    archive = make_tar(tmp_path / 'a.tar', [('top/big.bin', os.urandom(200_000))], mode)
    data = archive.read_bytes()
    archive.write_bytes(data[:len(data) // 2])
    with pytest.raises(unpack.ArchiveError, match='damaged or not a complete archive'):
        unpack.extract(archive, tmp_path / 'out')


def test_catch_full_disk(tmp_path):
    """A write that fails (RLIMIT_FSIZE makes it EFBIG, as a full disk makes it ENOSPC) is
    an UnpackWriteError naming the archive and the folder, not a damaged archive."""
    archive = make_tar(tmp_path / 'a.tar', [('top/big.bin', b'y' * 300_000)])
    code = ('import signal, resource, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); '
            'resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000)); '
            'from data_layers import unpack\n'
            'try:\n unpack.extract(sys.argv[1], sys.argv[2])\n'
            'except unpack.UnpackWriteError as e:\n print(e); sys.exit(3)')
    done = subprocess.run([sys.executable, '-c', code, str(archive), str(tmp_path / 'out')],
                          capture_output=True, text=True, timeout=60,
                          cwd=os.path.dirname(os.path.dirname(unpack.__file__)))
    assert done.returncode == 3, done.stderr
    assert 'cannot unpack a.tar into' in done.stdout and 'disk full?' in done.stdout
