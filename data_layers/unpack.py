"""Unpack a dataset archive without trusting it: tar (plain, gzip, bzip2, xz) or zip.

The format is read from the bytes, not the name (SBD's benchmark.tgz is a plain tar). Every
member is checked before it is written: no absolute path, no `..`, no link leading out of the
destination (by name, and on disk through links earlier members made), no device or FIFO,
nothing but files, folders and links. A refused member stops the unpack; the caller unpacks
into a temporary folder and removes it, so nothing of a refused archive is installed. Tar
members stream (one pass over a multi-GB archive); Python's own 'data' filter runs as a
second guard where the Python has it.
"""
import errno
import os
import pathlib
import posixpath
import stat
import tarfile
import zipfile
import zlib


# Python's 'data' filter (3.12, and 3.11.4+ / 3.10.12+) as a second guard where it exists;
# Debian 12's Python 3.11.2 lacks it, and the checks above and in _check_on_disk stand alone.
DATA_FILTER = {'filter': 'data'} if hasattr(tarfile, 'data_filter') else {}


class ArchiveError(ValueError):
    """The file is not an archive this reads, or it is damaged."""


class UnsafeArchiveError(ArchiveError):
    """A member would land outside the destination, or is a device, FIFO or outward link."""


class UnpackWriteError(OSError):
    """Writing the unpacked files failed (disk full, no permission)."""


def extract(archive, into):
    """Unpack `archive` into the folder `into` (created); return (files, bytes) written."""
    archive, into = pathlib.Path(archive), pathlib.Path(into)
    into.mkdir(parents=True, exist_ok=True)
    try:
        if zipfile.is_zipfile(archive):
            return _extract_zip(archive, into)
        return _extract_tar(archive, into)
    except UnsafeArchiveError:
        raise
    except OSError as e:
        if isinstance(e, (tarfile.TarError,)) or e.errno is None:
            raise ArchiveError(f'{archive} is damaged or not a complete archive ({e})') from None
        raise UnpackWriteError(e.errno, f'cannot unpack {archive.name} into {into}: '
                               f'{e.strerror}' + (' (disk full?)' if e.errno in (
                                   errno.ENOSPC, errno.EFBIG, errno.EDQUOT) else '')) from None
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error) as e:
        raise ArchiveError(f'{archive} is damaged or not a complete archive ({e or type(e)})'
                           ) from None


def _extract_tar(archive, into):
    files = size = 0
    try:
        tar = tarfile.open(archive, mode='r|*')
    except tarfile.ReadError:
        raise ArchiveError(f'{archive} is neither a tar (plain, gzip, bzip2 or xz) nor a zip '
                           f'archive') from None
    with tar:
        for member in tar:
            _check_tar_member(archive, member)
            _check_on_disk(archive, member, into)
            tar.extract(member, into, set_attrs=False, **DATA_FILTER)
            if member.isfile():
                files, size = files + 1, size + member.size
    return files, size


def _check_tar_member(archive, member):
    name = member.name
    _check_name(archive, name)
    if member.ischr() or member.isblk() or member.isfifo():
        _refuse(archive, name, 'is a device or FIFO')
    if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        _refuse(archive, name, f'has tar type {member.type!r}, neither file, folder nor link')
    if member.issym():
        target = member.linkname
        if posixpath.isabs(target) or _escapes(posixpath.join(posixpath.dirname(name), target)):
            _refuse(archive, name, f'is a link to {target!r}, outside the dataset')
    if member.islnk() and (posixpath.isabs(member.linkname) or _escapes(member.linkname)):
        _refuse(archive, name, f'is a hard link to {member.linkname!r}, outside the dataset')


def _check_on_disk(archive, member, into):
    """What the names alone cannot show: a member's folder, or its link's target, reached
    through a link an earlier member made (link chains), leading out of `into`; or a member
    written over an earlier link (opened, it would write where the link points)."""
    dest = os.path.join(into, member.name)
    folder = os.path.dirname(dest)
    if not _inside(into, folder):
        _refuse(archive, member.name, 'lies, through a link the archive made, outside the '
                                      'dataset')
    if os.path.islink(dest):
        _refuse(archive, member.name, 'would be written over a link the archive made')
    if member.issym() and not _inside(into, os.path.join(os.path.realpath(folder),
                                                         member.linkname)):
        _refuse(archive, member.name, f'is a link to {member.linkname!r}, which leads, '
                                      f'through links, outside the dataset')
    if member.islnk() and not _inside(into, os.path.join(into, member.linkname)):
        _refuse(archive, member.name, f'is a hard link to {member.linkname!r}, which leads, '
                                      f'through links, outside the dataset')


def _inside(root, path):
    real_root = os.path.realpath(root)
    return os.path.commonpath([os.path.realpath(path), real_root]) == real_root


def _extract_zip(archive, into):
    files = size = 0
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            _check_name(archive, info.filename)
            kind = stat.S_IFMT(info.external_attr >> 16)  # 0: written without a type
            if kind == stat.S_IFLNK:
                _refuse(archive, info.filename, 'is a symbolic link (zip links are refused)')
            if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
                _refuse(archive, info.filename, 'is a device or FIFO')
            zf.extract(info, into)
            if not info.is_dir():
                files, size = files + 1, size + info.file_size
    return files, size


def _check_name(archive, name):
    if not name or posixpath.isabs(name) or name.startswith('\\') or (
            len(name) > 1 and name[1] == ':'):
        _refuse(archive, name, 'has an absolute path')
    if '..' in name.replace('\\', '/').split('/'):
        _refuse(archive, name, 'has a ".." component')


def _escapes(path):
    normal = posixpath.normpath(path)
    return normal == '..' or normal.startswith('../')


def _refuse(archive, name, why):
    raise UnsafeArchiveError(
        f'{archive}: member {name!r} {why}. The archive was refused and nothing of it was '
        f'installed. An archive of the real dataset holds no such member: delete '
        f'{archive} and download it again from its source, or check where it came from.')


def tree_size(folder, skip=()):
    """(files, bytes) of the regular files at and below `folder` (links not followed),
    leaving out the file names in `skip` at its top."""
    files = size = 0
    for top, dirs, names in os.walk(folder):
        for name in names:
            if top == os.fspath(folder) and name in skip:
                continue
            st = os.lstat(os.path.join(top, name))
            if stat.S_ISREG(st.st_mode):
                files, size = files + 1, size + st.st_size
    return files, size
