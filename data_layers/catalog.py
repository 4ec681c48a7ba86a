"""The paper's datasets as data: data_layers/datasets.json, validated, and the root finder.

An entry of the catalog is one unit `python -m data_layers.fetch` installs (voc, voc2011,
sbdd, nyud, siftflow, voc2010, pascal_context); its keys are described in the file's
"about". The data layers use the catalog twice: `find_root` locates a dataset's root inside
whatever folder holds it (the archive's own layout, such as VOCdevkit/VOC2012 or
benchmark_RELEASE/dataset), and `shipped_list` gives the reference's split list that the
project ships (data_layers/lists/) when the dataset's folder lacks it.
"""
import functools
import json
import os
import pathlib
import re

CATALOG = pathlib.Path(__file__).resolve().parent / 'datasets.json'
LISTS = pathlib.Path(__file__).resolve().parent / 'lists'
SCHEMA = 1
ENTRY_KEYS = {'title': str, 'dataset': str, 'folder': str, 'marks': list, 'lists': dict,
              'files': list, 'needs': list}
FILE_KEYS = {'file': str, 'urls': list, 'md5': list, 'sha256': list, 'size': (int, type(None)),
             'approx_mb': (int, float, type(None)), 'unpack': bool, 'checks_source': str}
HEX = {'md5': re.compile(r'[0-9a-f]{32}'), 'sha256': re.compile(r'[0-9a-f]{64}')}
SEARCH_DEPTH = 4  # archives wrap a root in at most TrainVal/VOCdevkit/VOC2011


class CatalogError(ValueError):
    """datasets.json (or a catalog passed with --manifest) breaks the schema."""


class Catalog:
    """The validated entries by name, in file order."""

    def __init__(self, entries, path):
        self.entries = entries
        self.path = path

    def get(self, name):
        if name not in self.entries:
            raise KeyError(f'no dataset "{name}" in {self.path}; known: '
                           f'{", ".join(self.entries)}')
        return self.entries[name]

    def with_needs(self, names):
        """The entries named, each preceded by what it needs, every one once."""
        ordered = []

        def visit(name):
            for need in self.get(name)['needs']:
                visit(need)
            if name not in ordered:
                ordered.append(name)
        for name in names:
            visit(name)
        return [self.entries[n] for n in ordered]

    def for_dataset(self, dataset):
        """The entries installing data_layers.paths dataset `dataset`, in file order."""
        return [e for e in self.entries.values() if e['dataset'] == dataset]


def load(path=CATALOG):
    """The catalog at `path`, validated; CatalogError says what is wrong where."""
    path = pathlib.Path(path)
    try:
        raw = json.loads(path.read_text(encoding='utf-8'))
    except OSError as e:
        raise CatalogError(f'cannot read the dataset catalog {path}: {e.strerror}') from None
    except ValueError as e:
        raise CatalogError(f'{path} is not valid JSON: {e}') from None
    if not isinstance(raw, dict) or raw.get('schema') != SCHEMA:
        raise CatalogError(f'{path}: expected a JSON object with "schema": {SCHEMA}')
    if not isinstance(raw.get('datasets'), dict) or not raw['datasets']:
        raise CatalogError(f'{path}: "datasets" must be a non-empty object of entries')
    entries = {}
    for name, entry in raw['datasets'].items():
        entries[name] = _checked(entry, f'{path}: dataset "{name}"')
        entries[name]['name'] = name
    for name, entry in entries.items():
        unknown = [n for n in entry['needs'] if n not in entries]
        if unknown:
            raise CatalogError(f'{path}: dataset "{name}" needs {unknown[0]!r}, which has no '
                               f'entry')
    return Catalog(entries, path)


def _checked(entry, where):
    if not isinstance(entry, dict):
        raise CatalogError(f'{where} must be an object')
    _check_keys(entry, ENTRY_KEYS, where)
    texts = [*entry['marks'], *entry['lists'], *entry['lists'].values(), *entry['needs']]
    if not all(isinstance(t, str) and t for t in texts):
        raise CatalogError(f'{where}: marks, lists and needs must hold non-empty strings')
    for key in ('folder', *entry['marks'], *entry['lists']):
        _relative(key if key != 'folder' else entry['folder'], where)
    for target, shipped in entry['lists'].items():
        if not (LISTS / shipped).is_file():
            raise CatalogError(f'{where}: list {target!r} comes from {shipped!r}, which is not '
                               f'in {LISTS}')
    if not entry['marks']:
        raise CatalogError(f'{where}: "marks" must name at least one file or folder')
    if not entry['files']:
        raise CatalogError(f'{where}: "files" must list at least one download')
    for k, item in enumerate(entry['files']):
        _check_file(item, f'{where}, file {k + 1}')
    return dict(entry)


def _check_file(item, where):
    if not isinstance(item, dict):
        raise CatalogError(f'{where} must be an object')
    _check_keys(item, FILE_KEYS, where)
    if not item['file'] or os.path.basename(item['file']) != item['file']:
        raise CatalogError(f'{where}: "file" must be a plain file name, not {item["file"]!r}')
    if not item['urls'] or not all(isinstance(u, str) and re.match(r'https?://', u)
                                   for u in item['urls']):
        raise CatalogError(f'{where}: "urls" must list http(s) URLs')
    for algorithm, pattern in HEX.items():
        bad = [d for d in item[algorithm] if not (isinstance(d, str) and pattern.fullmatch(d))]
        if bad:
            raise CatalogError(f'{where}: {algorithm} {bad[0]!r} is not a lower-case hex '
                               f'digest of {pattern.pattern[-3:-1]} characters')


def _check_keys(record, keys, where):
    missing = [k for k in keys if k not in record]
    extra = [k for k in record if k not in keys]
    if missing or extra:
        raise CatalogError(f'{where}: ' + '; '.join(
            ([f'missing key(s) {", ".join(missing)}'] if missing else [])
            + ([f'unknown key(s) {", ".join(extra)}'] if extra else [])))
    for key, kind in keys.items():
        if not isinstance(record[key], kind) or (kind is int and isinstance(record[key], bool)):
            raise CatalogError(f'{where}: {key!r} is {record[key]!r}; expected '
                               f'{getattr(kind, "__name__", "a number or null")}')


def _relative(path, where):
    parts = pathlib.PurePosixPath(path).parts
    if not parts or path.startswith('/') or '..' in parts:
        raise CatalogError(f'{where}: {path!r} must be a relative path inside the dataset')


@functools.lru_cache(maxsize=None)
def project():
    """The project's own catalog (the data layers always read this one)."""
    return load(CATALOG)


def holds_marks(folder, marks):
    """Whether `folder` holds every mark (a trailing / asks for a folder)."""
    folder = pathlib.Path(folder)
    return all((folder / m).is_dir() if m.endswith('/') else (folder / m).is_file()
               for m in marks)


def find_root(folder, marks, depth=SEARCH_DEPTH):
    """The folders at or below `folder` (at most `depth` levels, links not followed) that
    hold every mark, shallowest first: a dataset's root found by its content, not by the
    name of a top folder an archive may or may not have."""
    found, level = [], [pathlib.Path(folder)]
    for _ in range(depth + 1):
        found += [f for f in level if holds_marks(f, marks)]
        if found:
            return found
        level = [pathlib.Path(e.path) for f in level for e in _subfolders(f)]
    return found


def _subfolders(folder):
    try:
        with os.scandir(folder) as entries:
            return sorted((e for e in entries if e.is_dir(follow_symlinks=False)),
                          key=lambda e: e.name)
    except OSError:
        return []


def marks_of(dataset):
    """The marks of data_layers.paths dataset `dataset` (None for one not in the catalog)."""
    entries = project().for_dataset(dataset)
    return entries[0]['marks'] if entries else None


def shipped_list(dataset, relative):
    """The project's copy of the reference's list that belongs at `relative` in dataset
    `dataset`'s root (e.g. voc, ImageSets/Segmentation/seg11valid.txt), or None."""
    for entry in project().for_dataset(dataset):
        if relative in entry['lists']:
            return LISTS / entry['lists'][relative]
    return None


def fetch_names(dataset):
    """The fetch entries that install dataset `dataset` (voc: voc, voc2011)."""
    return [e['name'] for e in project().for_dataset(dataset)]
