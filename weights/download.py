"""Fetch the caffemodels listed in weights/manifest.json, resumably, and verify them.

Each file streams into `<file>.part` beside its final name. An interrupted download resumes
from the .part with an HTTP Range request; a server that ignores Range answers 200 and the
download restarts from byte 0. The file takes its final name (an atomic rename) only after
its size and sha1 match the manifest wherever the manifest records them, so a final name
never holds a partial or corrupt file. Files already present and verified are skipped.
Failures print what to fetch, from where and where to put it, and the exit status is 2.
"""
import argparse
import os
import pathlib
import sys

import downloads
from downloads import DownloadError
from weights import manifest as mf

FAILED = 2
MB = downloads.MB
EXAMPLES = """examples:
  python -m weights.download --list                 what the manifest holds, what is here
  python -m weights.download vgg16-ilsvrc           the classifier FCN-VGG16 starts from
  python -m weights.download voc-fcn8s              a release, named by the model it serves
  python -m weights.download --all                  every file that has a URL
  FCN_WEIGHTS=/data/caffemodels python -m weights.download fcn32s-heavy-pascal
"""


def fetch(entry, folder, timeout=60.0, out=None):
    """Put the verified file of `entry` in `folder`; return 'present' or 'downloaded'.

    Progress and notes go to `out` (default: stderr); failures raise DownloadError."""
    out = out or sys.stderr
    final = pathlib.Path(folder) / entry['file']
    if entry['url'] is None:
        raise DownloadError(mf.missing_message(entry, final))
    if final.exists():
        return _present(entry, final, out)
    final.parent.mkdir(parents=True, exist_ok=True)
    part = final.with_name(final.name + '.part')
    downloads.discard_unverifiable(part, entry['sha1'], entry['name'], out)
    total = _transfer(entry, part, final, timeout, out)
    expected = entry['size'] if entry['size'] is not None else total
    problem = mf.check(part, entry)
    if problem:
        part.unlink()
        raise DownloadError(
            f'{entry["name"]}: the downloaded file {problem}. It was deleted ({part}) and '
            f'nothing was written to {final}. Run the command again to download afresh; if '
            f'the mismatch persists, {entry["url"]} no longer serves the file the manifest '
            f'records, so check the source and fix {entry["file"]}\'s entry in the manifest.')
    os.replace(part, final)
    print(f'{entry["name"]}: saved {final} ({_verified(entry, expected, final)})', file=out)
    return 'downloaded'


def _verified(entry, expected, final):
    """What the check proved, said plainly: only a sha1 proves the bytes."""
    if entry['sha1']:
        return 'size and sha1 verified'
    digest = mf.sha1_of(final)
    size = ('size checked against the manifest' if entry['size'] is not None else
            'size checked against the server\'s' if expected is not None else 'size unknown')
    return (f'NOT verified: the manifest has no sha1 for it, {size}; its sha1 is {digest}, '
            f'compare it with a trusted copy')


def _present(entry, final, out):
    problem = mf.check(final, entry)
    if problem:
        raise DownloadError(f'{final} is present but {problem}. Move or delete it, then run '
                            f'`python -m weights.download {entry["name"]}` again.')
    unchecked = entry['sha1'] is None and entry['size'] is None
    how = 'the manifest has no size or sha1 to check it against' if unchecked else 'verified'
    print(f'{entry["name"]}: already present, {how} ({final})', file=out)
    return 'present'


def _transfer(entry, part, final, timeout, out):
    """Stream the URL into `part` (downloads.transfer); unreachable: say where else to get it."""
    try:
        return downloads.transfer(entry['name'], entry['url'], part, entry['size'], timeout,
                                  out, again=f'Run `python -m weights.download {entry["name"]}` '
                                             f'again')
    except downloads.UnreachableError as e:
        raise DownloadError(offline_message(entry, final, e.reason)) from None


def offline_message(entry, final, reason):
    """What to download from where, and where to put it, when the URL cannot be reached."""
    return (f'could not download "{entry["name"]}": {reason}.\n'
            f'  file:     {entry["file"]}\n'
            f'  from:     {entry["url"]}\n'
            f'  put it:   {final}\n'
            f'Fetch it on a machine that is online (e.g. curl -L -o {entry["file"]} '
            f'{entry["url"]}) and copy it there, or point FCN_WEIGHTS at a folder that holds '
            f'it; `python -m weights.download {entry["name"]}` then verifies it.')


def listing(manifest, folder):
    rows = [('name', 'kind', 'MB', 'sha1', 'here', 'serves')]
    for e in manifest.entries.values():
        path = pathlib.Path(folder) / e['file']
        here = 'yes' if path.exists() else 'part' if path.with_name(
            path.name + '.part').exists() else ('make' if e['url'] is None else 'no')
        size = f'{e["size"] / MB:.0f}' if e['size'] else '?'
        serves = e.get('model') or ', '.join(e.get('init_for', [])) or '-'
        rows.append((e['name'], e['kind'], size, 'yes' if e['sha1'] else '-', here, serves))
    return downloads.table(f'folder: {folder}', rows)


def get_args_parser():
    parser = argparse.ArgumentParser(
        prog='python -m weights.download', epilog=EXAMPLES,
        description='Download caffemodels from weights/manifest.json, resuming partial files '
                    'and verifying size and sha1 where the manifest records them.',
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('names', nargs='*', metavar='NAME',
                        help='manifest entry names, or the nets/ model ids they serve')
    which = parser.add_mutually_exclusive_group()
    which.add_argument('--all', action='store_true', help='every entry that has a URL')
    which.add_argument('--list', action='store_true', help='list the entries and stop')
    parser.add_argument('--dest', type=pathlib.Path, default=None,
                        help='folder for the files (default: $FCN_WEIGHTS, else '
                             'weights/downloads/ in this checkout)')
    parser.add_argument('--manifest', type=pathlib.Path, default=mf.MANIFEST,
                        help='manifest to read (default: %(default)s)')
    parser.add_argument('--timeout', type=downloads.timeout_seconds, default=60.0,
                        help='seconds to wait for the server before giving up '
                             '(default: %(default)s)')
    return parser


def main(args=None):
    parser = get_args_parser()
    opts = parser.parse_args(args)
    if opts.names and (opts.all or opts.list):
        parser.error('give NAMEs or --all or --list, not several')
    try:
        manifest = mf.load(opts.manifest)
        folder = opts.dest or mf.weights_dir()
        if opts.list:
            print(listing(manifest, folder))
            return 0
        if not (opts.names or opts.all):
            parser.error('name the files to fetch, or pass --all or --list')
        entries = ([e for e in manifest.entries.values() if e['url']] if opts.all
                   else [manifest.get(n) for n in opts.names])
    except (mf.ManifestError, mf.UnknownWeightsError, OSError) as e:
        print(f'error: {e}', file=sys.stderr)
        return FAILED
    if pathlib.Path(folder).exists() and not pathlib.Path(folder).is_dir():
        print(f'error: --dest {folder} is a file; pass a folder to download into',
              file=sys.stderr)
        return FAILED
    return _fetch_all(entries, folder, opts.timeout)


def _fetch_all(entries, folder, timeout):
    failed = []
    for entry in entries:
        try:
            fetch(entry, folder, timeout)
        except DownloadError as e:
            print(f'error: {e}', file=sys.stderr)
            failed.append(entry['name'])
        except KeyboardInterrupt:
            print(f'\ninterrupted: the .part file in {folder} resumes on the next run',
                  file=sys.stderr)
            return 130
    if failed:
        print(f'{len(failed)} of {len(entries)} failed: {", ".join(failed)}', file=sys.stderr)
        return FAILED
    return 0


if __name__ == '__main__':
    sys.exit(main())
