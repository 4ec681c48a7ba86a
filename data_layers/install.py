"""Where a fetched dataset lands: its install record, the reference's lists it lacks, and
the swap of a complete root into place (data_layers.fetch's installing, kept apart from its
downloading).

The record (.fcn-fetch.json in the root) says what was installed: file count and bytes, the
archives' digests, the lists added. A later run compares the tree with it instead of hashing.
"""
import json
import os
import shutil

import atomic_files
from data_layers import catalog

RECORD = '.fcn-fetch.json'
STAGING = '.fetch-'   # prefix of the temporary folders beside a destination


def read_record(path):
    """The install record at `path`, or None when it is not one (damaged, edited)."""
    try:
        record = json.loads(path.read_text(encoding='utf-8'))
    except (OSError, ValueError):
        return None
    fields = {'files': int, 'bytes': int, 'installed': str}
    if not isinstance(record, dict) or not all(type(record.get(k)) is t
                                               for k, t in fields.items()):
        return None
    return record


def place_lists(entry, root, say):
    """Copy the reference's lists the root lacks; return the ones copied."""
    placed = []
    for target, shipped in entry['lists'].items():
        path = root / target
        source = catalog.LISTS / shipped
        if path.is_file():
            if lines_of(path) != lines_of(source):
                say(f'{entry["name"]}: note: its {target} differs from the reference\'s '
                    f'{shipped}; it is kept, and the data layers read it')
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_files.write_bytes(path, source.read_bytes())
        placed.append(target)
    return placed


def lines_of(path):
    return path.read_bytes().replace(b'\r\n', b'\n').rstrip(b'\n')


def swap_into_place(root, final, staging):
    """Rename the complete root to `final`; an older copy (--force) goes aside first and is
    removed after, both inside `staging`'s name space so that a kill leaves nothing half."""
    if final.exists():
        os.replace(final, staging / 'replaced')
    os.replace(root, final)


def clear_staging(final, say):
    for stale in final.parent.glob(f'{STAGING}{final.name}.*'):
        say(f'removing {stale}, left by a run that was interrupted')
        shutil.rmtree(stale, ignore_errors=True)
