"""weights/manifest.json against its schema and nets/models.py; lookups and require()."""
import copy
import json
import re

import pytest

from nets.models import FROM_SCRATCH, MODELS
from weights import manifest as mf

BVLC_SHA1 = {'caffenet-ilsvrc': '4c8d77deb20ea792f84eb5e6d0a11ca0a8660a46',
             'alexnet-ilsvrc': '9116a64c0fbe4459d18f4bb6b56d647b63920377',
             'googlenet-ilsvrc': '405fc5acd08a3bb12de8ee5e23a96bec22f08204'}


@pytest.fixture(scope='module')
def manifest():
    return mf.load()


@pytest.fixture
def raw():
    """The shipped manifest as plain JSON data, to be broken by the error-path tests."""
    return json.loads(mf.MANIFEST.read_text(encoding='utf-8'))


def write(tmp_path, data):
    path = tmp_path / 'manifest.json'
    path.write_text(json.dumps(data), encoding='utf-8')
    return path


def test_manifest_loads_and_every_entry_validates(manifest, raw):
    """The shipped manifest passes the schema, entry by entry, and keeps the file order."""
    assert list(manifest.entries) == [e['name'] for e in raw['files']]
    for i, entry in enumerate(raw['files']):
        mf.validate_entry(entry, f'files[{i}]')
    kinds = [e['kind'] for e in manifest.entries.values()]
    assert (kinds.count('ilsvrc-classifier'), kinds.count('fcn-release'),
            kinds.count('derived')) == (4, 14, 3)


def test_every_model_has_released_weights_or_a_reason(manifest):
    """Each nets/ model is served by exactly one release or named in not_released."""
    served = [e['model'] for e in manifest.entries.values() if 'model' in e]
    assert len(served) == len(set(served))
    assert set(served).isdisjoint(manifest.not_released)
    assert set(served) | set(manifest.not_released) == set(MODELS)
    assert all(reason.strip() for reason in manifest.not_released.values())


def test_unreleased_models_are_ours_or_have_an_empty_url_file(manifest):
    """Only the toolkit's own recipes and nyud-fcn32s-color-d (empty caffemodel-url) lack
    released weights."""
    ours = {k for k, recipe in MODELS.items() if recipe.ours}
    assert set(manifest.not_released) == ours | {'nyud-fcn32s-color-d'}


def test_init_for_matches_the_models_initialisation(manifest):
    """A derived file serves exactly the models whose init names it, and the classifier it
    is made from lists the same models."""
    for entry in manifest.entries.values():
        if entry['kind'] != 'derived':
            continue
        users = sorted(k for k, recipe in MODELS.items() if recipe.parents == (entry['name'],))
        assert entry['init_for'] == users, entry['name']
        assert manifest.entries[entry['from']]['init_for'] == users, entry['from']
        assert entry['produced_by'].startswith('python -m weights.convert')


def test_every_init_is_a_model_or_a_manifest_file(manifest):
    """Each model's init is an earlier model, a late-fusion pair of models, or a manifest
    entry that some command produces; only a classifier starts from its fillers."""
    for name, recipe in MODELS.items():
        if not recipe.parents:
            assert recipe.is_classifier and recipe.init_display == FROM_SCRATCH, name
            continue
        if all(p in MODELS for p in recipe.parents):
            continue
        (parent,) = recipe.parents
        assert manifest.get(parent)['kind'] == 'derived', name


def test_known_sha1_are_40_hex_and_have_a_source(manifest):
    """Every recorded sha1 is 40 lowercase hex digits with a named source, and the three
    BVLC model-zoo checksums are the readmes' values."""
    for entry in manifest.entries.values():
        if entry['sha1'] is not None:
            assert re.fullmatch(r'[0-9a-f]{40}', entry['sha1']), entry['name']
            assert 'sha1' in entry['checks_source'], entry['name']
    for name, sha1 in BVLC_SHA1.items():
        assert manifest.entries[name]['sha1'] == sha1


def test_urls_and_files_agree(manifest):
    """Downloadable entries end their URL with their file name; releases come from the
    BVLC host the reference's caffemodel-url files name; derived entries have no URL."""
    for entry in manifest.entries.values():
        if entry['kind'] == 'derived':
            assert entry['url'] is None
            continue
        assert entry['url'].endswith('/' + entry['file'])
        if entry['kind'] == 'fcn-release':
            assert entry['url'].startswith('http://dl.caffe.berkeleyvision.org/')


def test_released_voc_metrics_match_the_reference_readme(manifest):
    """The seg11valid mean IU of each VOC release is the reference README's number."""
    expected = {'voc-fcn32s': 63.6, 'voc-fcn16s': 65.0, 'voc-fcn8s': 65.5,
                'voc-fcn8s-atonce': 65.4, 'voc-fcn-alexnet': 48.0}
    for model, mean_iu in expected.items():
        metric = manifest.get(model)['metric']
        assert 'seg11valid' in metric['split'] and metric['values']['mean_iu'] == mean_iu


def test_get_resolves_names_model_ids_and_file_names(manifest):
    """An entry is found by its name, the model it serves, its file name or file stem."""
    assert manifest.get('voc-fcn8s')['name'] == 'fcn8s-heavy-pascal'
    assert manifest.get('VGG_ILSVRC_16_layers')['name'] == 'vgg16-ilsvrc'
    assert manifest.get('bvlc_googlenet.caffemodel')['name'] == 'googlenet-ilsvrc'


def test_weights_dir_follows_fcn_weights(monkeypatch, tmp_path):
    """FCN_WEIGHTS moves the folder; without it the folder is weights/downloads/."""
    monkeypatch.setenv('FCN_WEIGHTS', str(tmp_path))
    assert mf.weights_dir() == tmp_path
    assert mf.path_of('voc-fcn32s') == tmp_path / 'fcn32s-heavy-pascal.caffemodel'
    monkeypatch.delenv('FCN_WEIGHTS')
    assert mf.weights_dir() == mf.ROOT / 'weights' / 'downloads'


def test_require_returns_a_present_file(manifest, tmp_path):
    """require() returns the path of a file that is there (size unchecked when unknown)."""
    (tmp_path / 'fcn32s-heavy-pascal.caffemodel').write_bytes(b'weights')
    path = mf.require('fcn32s-heavy-pascal', manifest, tmp_path)
    assert path == tmp_path / 'fcn32s-heavy-pascal.caffemodel'


def test_catch_require_missing_release(manifest, tmp_path):
    """A missing release names the file, its URL, where to put it and the command."""
    with pytest.raises(mf.WeightsMissingError) as info:
        mf.require('voc-fcn32s', manifest, tmp_path)
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    for part in ('fcn32s-heavy-pascal.caffemodel', str(tmp_path),
                 'http://dl.caffe.berkeleyvision.org/fcn32s-heavy-pascal.caffemodel',
                 'python -m weights.download fcn32s-heavy-pascal', 'FCN_WEIGHTS'):
        assert part in message


def test_catch_require_missing_derived(manifest, tmp_path):
    """A missing derived file names the command that makes it and its source download."""
    with pytest.raises(mf.WeightsMissingError,
                       match=r'python -m weights\.convert vgg16`.*'
                             r'python -m weights\.download vgg16-ilsvrc'):
        mf.require('vgg16-fcn', manifest, tmp_path)


def test_catch_require_wrong_size(manifest, tmp_path):
    """A present file whose size differs from the manifest's is refused, with the fix."""
    (tmp_path / 'bvlc_googlenet.caffemodel').write_bytes(b'truncated')
    with pytest.raises(mf.WeightsMismatchError, match=r'9 bytes .* 53533754.*Delete it'):
        mf.require('googlenet-ilsvrc', manifest, tmp_path)


def test_catch_unknown_name(manifest):
    """An unknown name lists the known ones."""
    with pytest.raises(mf.UnknownWeightsError, match=r'no weights called "fcn4s".*vgg16-fcn'):
        manifest.get('fcn4s')


def test_catch_unreleased_model(manifest):
    """A model without released weights says why."""
    with pytest.raises(mf.UnknownWeightsError, match=r'nyud-fcn32s-color-d.*caffemodel-url'):
        manifest.get('nyud-fcn32s-color-d')


def _set(index, key, value):
    def mutate(data):
        data['files'][index][key] = value
    return mutate


def _drop(index, key):
    def mutate(data):
        del data['files'][index][key]
    return mutate


def _duplicate(data):
    data['files'].append(copy.deepcopy(data['files'][0]))


def _top(key, value):
    def mutate(data):
        data[key] = value
    return mutate


BROKEN = [
    (_set(1, 'sha1', '4C8D77DEB20EA792F84EB5E6D0A11CA0A8660A46'), r'"sha1" must be 40 lower'),
    (_set(1, 'sha1', 'abc123'), r'"sha1" must be 40'),
    (_drop(4, 'licence'), r'missing keys \[\'licence\'\]'),
    (_set(4, 'mirror', 'http://example.org/x'), r"unknown keys \['mirror'\]"),
    (_set(4, 'init_for', ['voc-fcn32s']), r"unknown keys \['init_for'\]"),
    (_set(4, 'url', None), r'"url" must be null exactly for kind "derived"'),
    (_set(18, 'url', 'http://example.org/vgg16-fcn.caffemodel'), r'null exactly for'),
    (_set(4, 'sha1', 'c449ea74dd7d83751d1357d6a8c323fcf4038962'), r'needs "checks_source"'),
    (_set(4, 'size', -1), r'"size" must be a positive byte count'),
    (_set(4, 'size', True), r'"size" must be a positive byte count'),
    (_set(4, 'file', 'sub/fcn32s.caffemodel'), r'"file" must be a bare'),
    (_set(4, 'url', 'ftp://example.org/x'), r'"url" must be an http'),
    (_set(4, 'kind', 'checkpoint'), r'"kind" must be one of'),
    (_set(4, 'metric', {'split': 'val', 'values': {}, 'source': 'x'}), r'"metric" must be'),
    (_set(4, 'provenance', {'released_by': 'x'}), r'"provenance" must be'),
    (_set(18, 'from', 'fcn32s-heavy-pascal'), r'not an ilsvrc-classifier entry'),
    (_duplicate, r'name "vgg16-ilsvrc" appears twice'),
    (_top('schema', 2), r'schema 2, this code reads 1'),
    (_top('extra', 1), r"unknown keys \['extra'\]"),
]


@pytest.mark.parametrize('mutate, match', BROKEN, ids=[m for _, m in BROKEN])
def test_catch_schema_violation(raw, tmp_path, mutate, match):
    """Each kind of schema violation raises ManifestError naming the entry and the field."""
    mutate(raw)
    with pytest.raises(mf.ManifestError, match=match):
        mf.load(write(tmp_path, raw))


def test_catch_invalid_json(tmp_path):
    """A manifest that is not JSON is reported with its path."""
    path = tmp_path / 'manifest.json'
    path.write_text('{"schema": 1,', encoding='utf-8')
    with pytest.raises(mf.ManifestError, match=r'manifest\.json: not a manifest'):
        mf.load(path)
    path.write_bytes(b'\x89PNG\r\n\x1a\n\xff\xfe binary')  # --manifest given an image
    with pytest.raises(mf.ManifestError, match=r'manifest\.json: not a manifest \(valid UTF-8'):
        mf.load(path)
