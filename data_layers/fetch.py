"""Download, verify and install the paper's datasets: python -m data_layers.fetch NAME... | --all

For each dataset of data_layers/datasets.json (and those it needs: pascal_context brings
voc2010): each file downloads into $FCN_DATA/downloads/ (resumably, downloads.transfer) or is
taken from --from DIR; its md5/sha256 must match one the catalog records (where none is
published, the sha256 it has is printed and recorded); archives unpack into a temporary
folder beside the destination (data_layers.unpack refuses unsafe members); the dataset's root
is found inside by its marks; plain files and the reference's split lists the archive lacks
join it; a record of what was installed (.fcn-fetch.json) is written; only then does the
root take its final name. A run killed at any point leaves no half dataset, and the next run
clears what it left. A dataset already installed is checked by its record (files and bytes)
and skipped. Failures say, one line per file, what to get, from where, and where to put it.
"""
import argparse
import errno
import json
import os
import pathlib
import secrets
import shutil
import sys
import time

import atomic_files
import downloads
from data_layers import catalog, install, paths, unpack
from data_layers.install import RECORD, STAGING  # noqa: F401 (tests read fetch.RECORD)
from downloads import DownloadError

FAILED = 2
FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
EXAMPLES = """examples:
  python -m data_layers.fetch --list                    what the catalog holds, what is here
  python -m data_layers.fetch voc sbdd                  the VOC models' data (about 3.4 GB)
  python -m data_layers.fetch --all                     every dataset of the paper's tables
  python -m data_layers.fetch voc --from /media/usb     archives downloaded elsewhere
  python -m data_layers.fetch sbdd --mirror http://mirror.example.org/fcn
  FCN_DATA=/data/fcn python -m data_layers.fetch nyud   install under another root
"""
ALL = ('voc', 'sbdd', 'nyud', 'siftflow', 'pascal_context')  # voc2011: the same images


class FetchError(RuntimeError):
    """A dataset could not be installed; the message says what to do."""


class Fetcher:
    """One run's choices: where datasets and downloads go, where archives come from."""

    def __init__(self, data_root, mirror=None, source=None, force=False, timeout=60.0,
                 keep_archives=True, out=None):
        self.data_root = pathlib.Path(data_root)
        self.downloads = self.data_root / 'downloads'
        self.mirror, self.source, self.force = mirror, source, force
        self.timeout, self.keep_archives = timeout, keep_archives
        self.out = out or sys.stderr
        self.recorded = {}  # file name -> its size and digests, as verified in this run

    def say(self, text):
        print(text, file=self.out, flush=True)

    def destination(self, entry):
        override = os.environ.get(paths.env_var(entry['dataset']))
        return pathlib.Path(override) if override else self.data_root / entry['folder']

    # -- one dataset ------------------------------------------------------------------------
    def fetch(self, entry):
        """Install `entry` unless it is there; return 'present' or 'installed'."""
        final = self.destination(entry)
        final.parent.mkdir(parents=True, exist_ok=True)
        install.clear_staging(final, self.say)
        if final.exists() and not self.force:
            status = self.present(entry, final)
            if status:
                return status
        archives, problems = {}, []
        for item in entry['files']:
            try:
                archives[item['file']] = self.archive(entry, item)
            except (FetchError, DownloadError) as e:
                problems.append(str(e))
        if problems:
            raise FetchError('\n'.join(problems))
        self.install(entry, archives, final)
        if not self.keep_archives and self.source is None:
            for path in archives.values():
                path.unlink(missing_ok=True)
        return 'installed'

    def present(self, entry, final):
        """'present' when `final` holds the dataset as installed (or as a user unpacked it);
        None when it must be installed; FetchError when it differs from its record."""
        if not final.is_dir():
            raise FetchError(f'{entry["name"]}: {final} is a file where the dataset\'s folder '
                             f'belongs. Move it away, then run the command again.')
        record_path = final / RECORD
        if not record_path.is_file():
            roots = catalog.find_root(final, entry['marks'])
            if not roots:
                if any(final.iterdir()):
                    raise FetchError(
                        f'{entry["name"]}: {final} exists but holds no {entry["title"]} (no '
                        f'folder in it has {", ".join(entry["marks"])}). Move it away, or pass '
                        f'--force to replace it.')
                return None
            placed = install.place_lists(entry, roots[0], self.say)
            self.say(f'{entry["name"]}: present at {roots[0]} (installed by hand, not by this '
                     f'command: its archive was not verified)' +
                     (f'; added the reference\'s {", ".join(placed)}' if placed else ''))
            return 'present'
        record = install.read_record(record_path)
        if record is None:
            raise FetchError(f'{entry["name"]}: {record_path}, the record of what this command '
                             f'installed, is unreadable or not one it writes. Pass --force to '
                             f'install the dataset afresh from its verified archive.')
        files, size = unpack.tree_size(final, skip={RECORD})
        if (files, size) != (record['files'], record['bytes']) or not catalog.holds_marks(
                final, entry['marks']):
            raise FetchError(
                f'{entry["name"]}: {final} holds {files} files ({size} bytes) where this command '
                f'installed {record["files"]} ({record["bytes"]} bytes): files were removed, '
                f'added or changed since. Pass --force to install it afresh from its verified '
                f'archive.')
        self.say(f'{entry["name"]}: present at {final} ({files} files as installed on '
                 f'{record["installed"]}), skipped')
        return 'present'

    # -- archives ---------------------------------------------------------------------------
    def archive(self, entry, item):
        """The verified file `item` of `entry`, from --from or the downloads folder."""
        if self.source is not None:
            path = self.source / item['file']
            if not path.is_file():
                raise FetchError(_where_to_get(entry, item, self.urls(item), path,
                                               f'not in --from {self.source}'))
            self.verify(entry, item, path, keep_aside=False)
            return path
        path = self.downloads / item['file']
        if path.is_file():
            self.verify(entry, item, path, keep_aside=True)
            return path
        self.downloads.mkdir(parents=True, exist_ok=True)
        _warn_space(self.downloads, [item], self.say)
        part = path.with_name(path.name + '.part')
        downloads.discard_unverifiable(part, item['md5'] or item['sha256'],
                                       f'{entry["name"]}: {item["file"]}', self.out)
        errors = []
        for url in self.urls(item):
            try:
                downloads.transfer(f'{entry["name"]}: {item["file"]}', url, part, item['size'],
                                   self.timeout, self.out,
                                   again=f'Run `python -m data_layers.fetch {entry["name"]}` '
                                         f'again')
                break
            except downloads.UnreachableError as e:
                errors.append(f'{url}: {e.reason}')
        else:
            raise FetchError(_where_to_get(entry, item, self.urls(item), path,
                                           '; '.join(errors)))
        self.verify(entry, item, part, keep_aside=True)
        os.replace(part, path)
        return path

    def urls(self, item):
        if self.mirror:
            return [f'{self.mirror.rstrip("/")}/{item["file"]}']
        return item['urls']

    def verify(self, entry, item, path, keep_aside):
        """Check size and digests; a mismatch is refused (and, for a download, kept aside
        as <file>.rejected so that it is neither used nor downloaded over)."""
        got = downloads.digests(path, ('md5', 'sha256'))
        size = path.stat().st_size
        problems = [f'{algorithm} {got[algorithm]}, expected {" or ".join(item[algorithm])}'
                    for algorithm in ('md5', 'sha256')
                    if item[algorithm] and got[algorithm] not in item[algorithm]]
        if item['size'] is not None and size != item['size']:
            problems.insert(0, f'{size} bytes, expected {item["size"]}')
        name = f'{entry["name"]}: {item["file"]}'
        if problems:
            where = path
            if keep_aside:
                where = path.with_name(item['file'] + '.rejected')
                os.replace(path, where)
            raise FetchError(
                f'{name} ({where}) does not match the catalog: {"; ".join(problems)}. It was '
                f'not used' + (f' and was moved aside to {where}' if keep_aside else '') +
                f'. Download it again (a mirror may serve another file: {item["urls"][0]} is '
                f'the source), or check the catalog entry in {catalog.CATALOG.name}.')
        item_check = [a for a in ('md5', 'sha256') if item[a]]
        if item_check:
            self.say(f'{name}: {" and ".join(item_check)} verified')
        else:
            self.say(f'{name}: NOT verified against a published digest (none is published); '
                     f'its sha256 is {got["sha256"]}: compare it with a trusted copy. It is '
                     f'recorded in the dataset\'s {RECORD}.')
        self.recorded[item['file']] = {'file': item['file'], 'bytes': size, **got}

    # -- installing -------------------------------------------------------------------------
    def install(self, entry, archives, final):
        staging = final.parent / f'{STAGING}{final.name}.{secrets.token_hex(4)}'
        try:
            root = self.unpack_into(entry, archives, staging)
            placed = install.place_lists(entry, root, self.say)
            for item in entry['files']:
                if not item['unpack']:
                    shutil.copyfile(archives[item['file']], root / item['file'])
            files, size = unpack.tree_size(root)
            record = {'name': entry['name'], 'title': entry['title'], 'files': files,
                      'bytes': size, 'installed': time.strftime('%Y-%m-%d %H:%M:%S'),
                      'archives': [self.recorded[i['file']] for i in entry['files']],
                      'lists_added': placed}
            atomic_files.write_bytes(root / RECORD, json.dumps(record, indent=1).encode())
            install.swap_into_place(root, final, staging)
        except OSError as e:
            text = e.strerror or str(e)
            if e.errno in FULL and 'disk full' not in text:
                text += ' (disk full?)'
            raise FetchError(f'{entry["name"]}: cannot install into {final.parent}: {text}. '
                             f'Nothing was installed; free space, then run the command again.'
                             ) from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        self.say(f'{entry["name"]}: installed {final} ({files} files, {size / 1e6:.1f} MB)')

    def unpack_into(self, entry, archives, staging):
        unpacked = staging / 'unpacked'
        for item in entry['files']:
            if item['unpack']:
                self.say(f'{entry["name"]}: unpacking {item["file"]}')
                try:
                    unpack.extract(archives[item['file']], unpacked)
                except unpack.UnpackWriteError:
                    raise
                except unpack.ArchiveError as e:
                    raise FetchError(f'{entry["name"]}: {e}') from None
        roots = catalog.find_root(unpacked, entry['marks'])
        if len(roots) != 1:
            tops = sorted(p.name for p in unpacked.iterdir()) if unpacked.is_dir() else []
            raise FetchError(
                f'{entry["name"]}: ' + (f'{len(roots)} folders of the archive hold '
                                        f'{", ".join(entry["marks"])}: ' +
                                        ', '.join(str(r.relative_to(unpacked)) for r in roots)
                                        if roots else
                                        f'no folder of the archive (top level: '
                                        f'{", ".join(tops[:8]) or "empty"}) holds '
                                        f'{", ".join(entry["marks"])}') +
                f'; this is not the layout the catalog knows for {entry["title"]}. Check the '
                f'archive, and the entry\'s "marks" in {catalog.CATALOG.name}.')
        return roots[0]


def _warn_space(folder, items, say):
    need = sum(2.1 * i['approx_mb'] * 1e6 for i in items if i['approx_mb'])
    free = shutil.disk_usage(folder).free
    if need > free:
        say(f'warning: {folder} has {free / 1e9:.1f} GB free; the download and its unpacked '
            f'copy need about {need / 1e9:.1f} GB')


def _where_to_get(entry, item, urls, path, reason):
    digest = ', '.join(f'{a} {" or ".join(item[a])}' for a in ('md5', 'sha256') if item[a])
    return (f'{entry["name"]}: {item["file"]} ({reason}): download {" or ".join(urls)}' +
            (f' ({digest})' if digest else ' (no published digest)') +
            f' and put it at {path}, or pass --from DIR with the folder holding it')


def listing(cat, fetcher):
    rows = [('name', 'MB', 'digest', 'here', 'title')]
    for entry in cat.entries.values():
        final = fetcher.destination(entry)
        here = ('fetched' if (final / RECORD).is_file() else
                'by hand' if final.is_dir() and catalog.find_root(final, entry['marks']) else
                'no')
        mb = sum(i['approx_mb'] or 0 for i in entry['files'])
        digest = ('md5' if all(i['md5'] for i in entry['files']) else
                  'sha256' if all(i['sha256'] for i in entry['files']) else 'none')
        rows.append((entry['name'], f'{mb:.0f}' if mb else '?', digest, here, entry['title']))
    return downloads.table(f'data root: {fetcher.data_root}', rows)


def get_args_parser():
    parser = argparse.ArgumentParser(
        prog='python -m data_layers.fetch', epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description='Download, verify and install the paper\'s datasets where the data layers '
                    'read them, with the reference\'s split lists.')
    parser.add_argument('names', nargs='*', metavar='NAME', help='datasets of the catalog')
    which = parser.add_mutually_exclusive_group()
    which.add_argument('--all', action='store_true', help=f'{", ".join(ALL)} (and voc2010)')
    which.add_argument('--list', action='store_true', help='list the datasets and stop')
    parser.add_argument('--data', type=pathlib.Path, default=None,
                        help='root of the datasets (default: $FCN_DATA, else data/ in this '
                             'checkout)')
    parser.add_argument('--manifest', type=pathlib.Path, default=catalog.CATALOG,
                        help='dataset catalog to read (default: %(default)s)')
    source = parser.add_mutually_exclusive_group()
    source.add_argument('--mirror', metavar='BASE_URL',
                        help='download each file as BASE_URL/<its file name>')
    source.add_argument('--from', dest='source', type=pathlib.Path, metavar='DIR',
                        help='take the archives from DIR instead of downloading them')
    parser.add_argument('--force', action='store_true',
                        help='install again even where the dataset is present')
    parser.add_argument('--delete-archives', action='store_true',
                        help='delete downloaded archives once their dataset is installed')
    parser.add_argument('--timeout', type=downloads.timeout_seconds, default=60.0,
                        help='seconds to wait for a server (default: %(default)s)')
    return parser


def main(args=None):
    parser = get_args_parser()
    opts = parser.parse_args(args)
    if opts.names and (opts.all or opts.list):
        parser.error('give NAMEs or --all or --list, not several')
    if opts.mirror and not opts.mirror.startswith(('http://', 'https://')):
        parser.error(f'--mirror takes an http(s) URL, not {opts.mirror!r}')
    try:
        cat = catalog.load(opts.manifest)
        fetcher = Fetcher(opts.data or paths.data_root(), opts.mirror, opts.source, opts.force,
                          opts.timeout, not opts.delete_archives)
        if opts.list:
            print(listing(cat, fetcher))
            return 0
        if not (opts.names or opts.all):
            parser.error('name the datasets to fetch, or pass --all or --list')
        entries = cat.with_needs(ALL if opts.all else opts.names)
    except (catalog.CatalogError, KeyError) as e:
        print(f'error: {e.args[0] if isinstance(e, KeyError) else e}', file=sys.stderr)
        return FAILED
    for folder, what in ((fetcher.data_root, '--data/FCN_DATA'), (opts.source, '--from')):
        if folder is not None and folder.exists() and not folder.is_dir():
            print(f'error: {what} {folder} is a file; it must be a folder', file=sys.stderr)
            return FAILED
    return _fetch_all(fetcher, entries)


def _fetch_all(fetcher, entries):
    failed = []
    try:
        fetcher.data_root.mkdir(parents=True, exist_ok=True)
        with atomic_files.holding(fetcher.data_root / '.fetch.lock',
                                  f'another fetch is installing into {fetcher.data_root}'):
            for entry in entries:
                try:
                    fetcher.fetch(entry)
                except (FetchError, DownloadError) as e:
                    for line in str(e).splitlines():
                        print(f'error: {line}', file=sys.stderr)
                    failed.append(entry['name'])
    except atomic_files.LockedError as e:
        print(f'error: {e}. Wait for it to end.', file=sys.stderr)
        return FAILED
    except OSError as e:
        print(f'error: {e}', file=sys.stderr)
        return FAILED
    except KeyboardInterrupt:
        print('\ninterrupted: a download resumes from its .part file on the next run; no '
              'dataset was left half installed', file=sys.stderr)
        return 130
    if failed:
        print(f'{len(failed)} of {len(entries)} not installed: {", ".join(failed)}',
              file=sys.stderr)
        return FAILED
    return 0


if __name__ == '__main__':
    sys.exit(main())
