"""data_layers.catalog: the project's datasets.json is valid and agrees with the layers;
a broken catalog is refused with what is wrong where; roots are found by their marks."""
import copy
import json

import pytest

from data_layers import catalog, paths
from nets.datasets import DATASETS


def test_the_project_catalog_covers_every_downloaded_dataset():
    """Every dataset the nets read (but the demo's generated ones) has a fetch entry, and
    entries sharing a dataset agree on what marks its root."""
    cat = catalog.load()
    needed = {n for spec in DATASETS.values() for n in spec['requires']} - set(paths.GENERATED)
    assert needed == {e['dataset'] for e in cat.entries.values()}
    for name in needed:
        assert len({tuple(e['marks']) for e in cat.for_dataset(name)}) == 1
    assert [e['name'] for e in cat.with_needs(['pascal_context'])] == ['voc2010',
                                                                      'pascal_context']


def test_the_published_digests_are_recorded():
    """The md5s that docs/datasets.md gives (both of SBD's) are in the catalog."""
    md5 = {i['file']: i['md5'] for e in catalog.load().entries.values() for i in e['files']}
    assert md5['VOCtrainval_11-May-2012.tar'] == ['6cd6e144f989b92b3379bac3b3de84fd']
    assert md5['benchmark.tgz'] == ['82b4d87ceb2ed10f6038a1cba92111cb',
                                    '2b2af8a6cff7365684e002c08be823a6']
    assert md5['nyud.tar.gz'] == md5['SiftFlowDataset.zip'] == []


BREAKAGES = {
    'no schema': (lambda raw: raw.pop('schema'), '"schema": 1'),
    'missing key': (lambda raw: raw['datasets']['voc'].pop('marks'), 'missing key.s. marks'),
    'unknown key': (lambda raw: raw['datasets']['voc'].update(colour='red'),
                    'unknown key.s. colour'),
    'bad md5': (lambda raw: raw['datasets']['voc']['files'][0].update(md5=['abc']),
                "md5 'abc' is not a lower-case hex digest"),
    'escaping mark': (lambda raw: raw['datasets']['voc'].update(marks=['../x/']),
                      'must be a relative path inside'),
    'path as file': (lambda raw: raw['datasets']['voc']['files'][0].update(file='a/b.tar'),
                     'must be a plain file name'),
    'ftp url': (lambda raw: raw['datasets']['voc']['files'][0].update(urls=['ftp://x/y']),
                'must list http.s. URLs'),
    'unknown need': (lambda raw: raw['datasets']['voc'].update(needs=['voc1999']),
                     "needs 'voc1999', which has no entry"),
    'list not shipped': (lambda raw: raw['datasets']['voc'].update(lists={'a.txt': 'no.txt'}),
                         "comes from 'no.txt', which is not in"),
    'size as text': (lambda raw: raw['datasets']['voc']['files'][0].update(size='2 GB'),
                     "'size' is '2 GB'"),
}


@pytest.mark.parametrize('case', list(BREAKAGES))
def test_catch_broken_catalog(tmp_path, case):
    raw = copy.deepcopy(json.loads(catalog.CATALOG.read_text()))
    BREAKAGES[case][0](raw)
    (tmp_path / 'c.json').write_text(json.dumps(raw))
    with pytest.raises(catalog.CatalogError, match=BREAKAGES[case][1]):
        catalog.load(tmp_path / 'c.json')


def test_catch_catalog_that_is_not_json(tmp_path):
    (tmp_path / 'c.json').write_text('{"schema": 1,')
    with pytest.raises(catalog.CatalogError, match='c.json is not valid JSON'):
        catalog.load(tmp_path / 'c.json')


def test_find_root_by_marks(tmp_path):
    """The shallowest folders holding every mark; a folder mark needs a folder, a file mark
    a file; links are not followed."""
    marks = ['img/', 'train.txt']
    deep = tmp_path / 'a' / 'b' / 'dataset'
    (deep / 'img').mkdir(parents=True)
    (deep / 'train.txt').write_text('x\n')
    (tmp_path / 'c' / 'img').mkdir(parents=True)
    (tmp_path / 'c' / 'train.txt').mkdir()  # a folder where a file is expected
    (tmp_path / 'link').symlink_to(deep)
    assert catalog.find_root(tmp_path, marks) == [deep]
    assert catalog.find_root(tmp_path, marks, depth=2) == []
