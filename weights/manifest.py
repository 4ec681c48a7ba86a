"""Where the caffemodels live, what they are, and how to get them.

    FCN_WEIGHTS    folder of all weight files (default: weights/downloads/ in this checkout)

weights/manifest.json lists every caffemodel the pipeline consumes, one entry per file:

    kind               what                                   how to get it
    ilsvrc-classifier  ImageNet nets FCN starts from           python -m weights.download NAME
    fcn-release        models released with the reference      python -m weights.download NAME
    derived            initialisations this toolkit makes      the entry's produced_by command

Each entry records url, size and sha1 (null where no source publishes them; checks_source
says where the known ones come from), provenance, licence, format, the metric the release
reports, and the nets/ models it serves (`model`, or `init_for` for initialisations).
Toolkit code asks `require(name)` for a path: it returns one that exists or raises
WeightsMissingError saying which file, from which URL, where to put it and which command
fetches or makes it.
"""
import hashlib
import json
import os
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent
MANIFEST = pathlib.Path(__file__).resolve().parent / 'manifest.json'
KINDS = ('ilsvrc-classifier', 'fcn-release', 'derived')
REQUIRED = ('name', 'file', 'kind', 'url', 'size', 'sha1', 'provenance', 'licence', 'format',
            'metric')
OPTIONAL = ('checks_source', 'metric_note', 'note')
PER_KIND = {'ilsvrc-classifier': ('init_for',), 'fcn-release': ('model',),
            'derived': ('produced_by', 'from', 'init_for')}
TEXT_KEYS = ('licence', 'format', 'checks_source', 'metric_note', 'note', 'model',
             'produced_by', 'from')
TOP_LEVEL = ('schema', 'about', 'files', 'not_released')
SCHEMA = 1
_NAME = re.compile(r'[a-z0-9][a-z0-9._-]*')
_SHA1 = re.compile(r'[0-9a-f]{40}')


class ManifestError(ValueError):
    """weights/manifest.json (or a manifest passed in) breaks the schema above."""


class WeightsMissingError(FileNotFoundError):
    """A weight file is not where the toolkit looks for it."""


class WeightsMismatchError(ValueError):
    """A weight file is present but its size or sha1 differs from the manifest's."""


class UnknownWeightsError(KeyError):
    """No entry has that name (or serves that model id)."""

    def __str__(self):
        return str(self.args[0])


class Manifest:
    """The validated entries, by name, in file order; `not_released` maps model ids that
    have no released weights to the reason."""

    def __init__(self, entries, not_released, path):
        self.entries = {e['name']: e for e in entries}
        self.not_released = dict(not_released)
        self.path = path

    def get(self, name):
        """The entry called `name`; else the release serving nets/ model `name`; else the
        entry whose file is `name` (with or without .caffemodel)."""
        if name in self.entries:
            return self.entries[name]
        for entry in self.entries.values():
            stem = entry['file'][:-len('.caffemodel')]
            if name in (entry.get('model'), entry['file'], stem):
                return entry
        if name in self.not_released:
            raise UnknownWeightsError(f'model "{name}" has no released weights: '
                                      f'{self.not_released[name]}')
        raise UnknownWeightsError(f'no weights called "{name}" in {self.path}; known: '
                                  f'{", ".join(self.entries)} (or the model id or file '
                                  f'name of one)')


def load(path=None):
    """Read and validate a manifest (default: weights/manifest.json)."""
    path = pathlib.Path(path or MANIFEST)
    try:
        data = json.loads(path.read_text(encoding='utf-8'))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ManifestError(f'{path}: not a manifest (valid UTF-8 JSON): {e}') from None
    if not isinstance(data, dict):
        raise ManifestError(f'{path}: the top level must be an object with {TOP_LEVEL}')
    _check_keys(data, TOP_LEVEL, TOP_LEVEL, f'{path}')
    if data['schema'] != SCHEMA:
        raise ManifestError(f'{path}: schema {data["schema"]!r}, this code reads {SCHEMA}')
    if not isinstance(data['files'], list) or not isinstance(data['not_released'], dict):
        raise ManifestError(f'{path}: "files" must be a list and "not_released" an object')
    for i, entry in enumerate(data['files']):
        validate_entry(entry, f'{path}: files[{i}]')
    _check_links(data['files'], path)
    return Manifest(data['files'], data['not_released'], path)


def validate_entry(entry, where='entry'):
    """Raise ManifestError, naming `where` and the field, if `entry` breaks the schema."""
    if not isinstance(entry, dict):
        raise ManifestError(f'{where}: must be an object, got {type(entry).__name__}')
    if entry.get('kind') not in KINDS:
        raise ManifestError(f'{where}: "kind" must be one of {KINDS}, got '
                            f'{entry.get("kind")!r}')
    where = f'{where} ("{entry.get("name")}")'
    own = PER_KIND[entry['kind']]
    _check_keys(entry, REQUIRED + own, REQUIRED + OPTIONAL + own, where)
    for key, ok, expected in _field_rules(entry):
        if not ok:
            raise ManifestError(f'{where}: "{key}" must be {expected}, got {entry[key]!r}')
    if (entry['sha1'] or entry['size']) and not entry.get('checks_source'):
        raise ManifestError(f'{where}: a sha1 or size needs "checks_source" saying where '
                            f'it was published')
    if (entry['url'] is None) != (entry['kind'] == 'derived'):
        raise ManifestError(f'{where}: "url" must be null exactly for kind "derived" (made '
                            f'by "produced_by"), got {entry["url"]!r}')


def _field_rules(entry):
    yield 'name', isinstance(entry['name'], str) and _NAME.fullmatch(entry['name']), \
        'lowercase letters, digits, ".", "_" or "-"'
    yield 'file', _text(entry['file']) and entry['file'].endswith('.caffemodel') \
        and os.path.basename(entry['file']) == entry['file'], 'a bare *.caffemodel file name'
    yield 'url', entry['url'] is None or (isinstance(entry['url'], str) and re.match(
        r'https?://\S+$', entry['url'])), 'an http(s) URL or null'
    size = entry['size']
    yield 'size', size is None or (type(size) is int and size > 0), \
        'a positive byte count or null'
    yield 'sha1', entry['sha1'] is None or (isinstance(entry['sha1'], str) and _SHA1.fullmatch(
        entry['sha1'])), '40 lowercase hex characters or null'
    yield 'provenance', isinstance(entry['provenance'], dict) and set(entry['provenance']) == {
        'released_by', 'source'} and all(map(_text, entry['provenance'].values())), \
        'an object with the texts "released_by" and "source"'
    yield 'metric', entry['metric'] is None or _is_metric(entry['metric']), \
        'null or {"split": text, "values": {name: number}, "source": text[, "detail": text]}'
    for key in TEXT_KEYS:
        if key in entry:
            yield key, _text(entry[key]), 'a non-empty text'
    if 'init_for' in entry:
        yield 'init_for', isinstance(entry['init_for'], list) and all(
            map(_text, entry['init_for'])), 'a list of nets/ model ids'


def _text(value):
    return isinstance(value, str) and value.strip() != ''


def _is_metric(metric):
    if not isinstance(metric, dict) or not {'split', 'values', 'source'} <= set(metric) or \
            not set(metric) <= {'split', 'values', 'source', 'detail'}:
        return False
    values = metric['values']
    return isinstance(values, dict) and values and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in values.values())


def _check_keys(obj, required, allowed, where):
    missing = [k for k in required if k not in obj]
    unknown = sorted(set(obj) - set(allowed))
    if missing or unknown:
        raise ManifestError(f'{where}: missing keys {missing}, unknown keys {unknown}; '
                            f'allowed: {", ".join(allowed)}')


def _check_links(entries, path):
    names, files = set(), set()
    for entry in entries:
        for seen, key in ((names, 'name'), (files, 'file')):
            if entry[key] in seen:
                raise ManifestError(f'{path}: {key} "{entry[key]}" appears twice')
            seen.add(entry[key])
    kinds = {e['name']: e['kind'] for e in entries}
    for entry in entries:
        if 'from' in entry and kinds.get(entry['from']) != 'ilsvrc-classifier':
            raise ManifestError(f'{path}: "{entry["name"]}" is made from "{entry["from"]}", '
                                f'which is not an ilsvrc-classifier entry')


def weights_dir():
    """$FCN_WEIGHTS, else weights/downloads/ in this checkout."""
    return pathlib.Path(os.environ.get('FCN_WEIGHTS') or ROOT / 'weights' / 'downloads')


def path_of(name, manifest=None, folder=None):
    """Where the file of entry `name` lives (whether or not it is there)."""
    entry = (manifest or load()).get(name)
    return pathlib.Path(folder or weights_dir()) / entry['file']


def require(name, manifest=None, folder=None):
    """The path of entry `name`; raise if it is missing or its size is not the manifest's.

    Only the size is checked here (cheap); `python -m weights.download NAME` checks sha1."""
    manifest = manifest or load()
    entry = manifest.get(name)
    path = path_of(name, manifest, folder)
    if not path.is_file():
        raise WeightsMissingError(missing_message(entry, path))
    problem = check(path, entry, full=False)
    if problem:
        raise WeightsMismatchError(f'{path} {problem}. Delete it and run `python -m '
                                   f'weights.download {entry["name"]}` to fetch it again.')
    return path


def missing_message(entry, path):
    """Which file is missing, where it belongs, and the command that fetches or makes it."""
    if entry['url'] is None:
        return (f'weights "{entry["name"]}" not found at {path}. It is not downloaded: this '
                f'toolkit makes it from "{entry["from"]}" with `{entry["produced_by"]}` '
                f'(fetch that first: `python -m weights.download {entry["from"]}`), or point '
                f'FCN_WEIGHTS at the folder that holds it.')
    return (f'weights "{entry["name"]}" ({entry["file"]}) not found at {path}. Fetch it with '
            f'`python -m weights.download {entry["name"]}`, or download {entry["url"]} '
            f'yourself and put it there, or point FCN_WEIGHTS at the folder that holds it.')


def sha1_of(path, chunk=1 << 20):
    digest = hashlib.sha1()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            digest.update(block)
    return digest.hexdigest()


def check(path, entry, full=True):
    """None if `path` matches the entry's size (and, when `full`, sha1); else what differs."""
    size = os.path.getsize(path)
    if entry['size'] is not None and size != entry['size']:
        return f'has {size} bytes where the manifest records {entry["size"]}'
    if full and entry['sha1'] is not None:
        actual = sha1_of(path)
        if actual != entry['sha1']:
            return f'has sha1 {actual} where the manifest records {entry["sha1"]}'
    return None
