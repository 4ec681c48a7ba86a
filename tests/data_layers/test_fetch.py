"""data_layers.fetch end to end: tiny archives of every dataset, in each real format and
internal layout, served over HTTP on 127.0.0.1 (http_fixtures) through a test catalog.

The archives hold a few files in the real formats (JPEG, palette PNG, MATLAB v5 .mat structs)
written by dataset_fixtures, wrapped the way each real archive wraps them: a plain tar under
VOCdevkit/VOC2012, SBD's benchmark.tgz that is a plain tar under benchmark_RELEASE/dataset,
a gzip tar for NYUD and PASCAL-Context, a zip for SIFT Flow, and one plain file. Image ids are
taken from the reference's lists the project ships, so that the shipped seg11valid.txt and
test lists name files the archives hold.
"""
import hashlib
import json
import os
import pathlib
import signal
import subprocess
import sys
import tarfile
import time
import zipfile

import numpy as np
import pytest
import scipy.io
from PIL import Image

import dataset_fixtures as fx
from http_fixtures import no_proxy, served, url_of  # noqa: F401 (no_proxy: autouse)
from data_layers import catalog, fetch, paths

ROOT = pathlib.Path(__file__).resolve().parents[2]
LISTS = catalog.LISTS


def shipped(name, count):
    return tuple((LISTS / name).read_text().split()[:count])


SEG11 = shipped('pascal/seg11valid.txt', 2)
NYUD_TEST = shipped('nyud/test.txt', 2)
SIFT = shipped('sift-flow/trainval.txt', 2) + shipped('sift-flow/test.txt', 2)


def tar(path, folder, under, mode='w'):
    with tarfile.open(path, mode) as t:
        t.add(folder, arcname=under)


def build_sources(base):
    """{archive file: (the dataset's original root, its path inside the archive)}, and the
    archives themselves in base/served."""
    src, served_dir = base / 'src', base / 'served'
    served_dir.mkdir(parents=True)
    voc = fx.make_voc(src / 'voc', ids=SEG11 + ('2008_000123',),
                      splits={'train': ['2008_000123'], 'val': list(SEG11)})
    sbdd = fx.make_sbdd(src / 'sbdd', ids=('2008_000002', '2008_000003'))
    nyud = fx.make_nyud(src / 'nyud', ids=NYUD_TEST + ('5001',),
                        splits={'trainval': ['5001']})
    sift = fx.make_siftflow(src / 'sift', ids=SIFT)
    for name in ('trainval.txt', 'test.txt'):  # the real zip has no split lists
        (sift / name).unlink()
    voc2010, context = fx.make_pascal_context(src / 'voc2010', src / 'context')
    (context / '59_labels.txt').rename(served_dir / '59_labels.txt')
    tar(served_dir / 'VOCtrainval_11-May-2012.tar', voc, 'VOCdevkit/VOC2012')
    tar(served_dir / 'benchmark.tgz', sbdd, 'benchmark_RELEASE/dataset')  # plain tar
    tar(served_dir / 'nyud.tar.gz', nyud, 'nyud', 'w:gz')
    tar(served_dir / 'VOCtrainval_03-May-2010.tar', voc2010, 'VOCdevkit/VOC2010')
    with tarfile.open(served_dir / 'trainval.tar.gz', 'w:gz') as t:
        for path in sorted(context.iterdir()):
            t.add(path, arcname=path.name)
    with zipfile.ZipFile(served_dir / 'SiftFlowDataset.zip', 'w') as z:
        for path in sorted(sift.rglob('*')):
            z.write(path, 'SiftFlowDataset/' + path.relative_to(sift).as_posix())
    return {'voc': voc, 'sbdd': sbdd, 'nyud': nyud, 'siftflow': sift, 'voc2010': voc2010,
            'pascal_context': context}, served_dir


@pytest.fixture(scope='module')
def sources(tmp_path_factory):
    return build_sources(tmp_path_factory.mktemp('archives'))


@pytest.fixture
def server(sources):
    with served(sources[1]) as httpd:
        yield httpd


def md5(path):
    return hashlib.md5(pathlib.Path(path).read_bytes()).hexdigest()


def write_catalog(path, server, served_dir, **changes):
    """The project's catalog with every URL on the test server and the tiny archives' md5
    where the real entry has one (none for NYUD and SIFT Flow, as published); `changes`
    maps a file name to keys to override."""
    raw = json.loads(catalog.CATALOG.read_text())
    for entry in raw['datasets'].values():
        for item in entry['files']:
            item['urls'] = [url_of(server, item['file'])]
            if item['md5'] and (served_dir / item['file']).exists():
                item['md5'] = [md5(served_dir / item['file'])]
            item.update(changes.get(item['file'], {}))
    path.write_text(json.dumps(raw))
    return path


def run(tmp_path, server, served_dir, *args, **changes):
    manifest = write_catalog(tmp_path / 'catalog.json', server, served_dir, **changes)
    return fetch.main(['--manifest', str(manifest), *args])


def same_files(original, installed):
    """Every file of the dataset as written arrived byte for byte."""
    for path in original.rglob('*'):
        if path.is_file():
            assert (installed / path.relative_to(original)).read_bytes() == path.read_bytes()


GROUPS = {  # fetch names -> a model whose preflight needs them, its val layer's check
    ('voc', 'sbdd'): 'voc-fcn32s',
    ('nyud',): 'nyud-fcn32s-color',
    ('siftflow',): 'siftflow-fcn32s',
    ('pascal_context',): 'pascalcontext-fcn32s',
}


@pytest.mark.parametrize('names', list(GROUPS), ids='+'.join)
def test_fetched_datasets_pass_the_preflight_and_feed_their_layers(
        names, newcomer, sources, server, capsys):
    from solve import loop
    originals, served_dir = sources
    model = GROUPS[names]
    assert loop.missing_datasets(model), 'nothing installed yet'
    assert run(newcomer, server, served_dir, *names) == 0, capsys.readouterr().err
    data = newcomer / 'data'
    for name in set(names) | ({'voc2010'} if 'pascal_context' in names else set()):
        entry = catalog.project().get(name)
        same_files(originals[name], data / entry['folder'])
        record = json.loads((data / entry['folder'] / fetch.RECORD).read_text())
        assert record['name'] == name and record['files'] > 0
    assert loop.missing_datasets(model) == []
    check_val_layer(model, newcomer, originals)


def check_val_layer(model, tmp_path, originals):
    """The model's val data layer reads the fetched files: its first label equals the
    original file's, decoded here with PIL / scipy as the dataset defines it."""
    from nets.datasets import DATASETS
    from nets.models import MODELS
    spec = DATASETS[MODELS[model].dataset]
    layer, split = spec['val']
    tops = {'nyud': ['color', 'label'], 'siftflow': ['data', 'sem', 'geo']}.get(
        MODELS[model].dataset, ['data', 'label'])
    extra = ", 'tops': ['color', 'label']" if 'nyud' in model else ''
    net = fx.data_net(tmp_path, spec['module'], layer,
                      f"{{'split': '{split}', 'randomize': False{extra}}}", tops)
    out = net.forward()
    if model.startswith('voc'):
        with Image.open(originals['voc'] / 'SegmentationClass' / f'{SEG11[0]}.png') as im:
            expected = np.array(im)
    elif model.startswith('nyud'):
        mat = scipy.io.loadmat(originals['nyud'] / 'segmentation' / f'img_{NYUD_TEST[0]}.mat')
        expected = mat['segmentation'].astype(np.uint8) - np.uint8(1)
    elif model.startswith('siftflow'):
        mat = scipy.io.loadmat(originals['siftflow'] / 'SemanticLabels' /
                               fx.SIFTFLOW_CATEGORY / f'{SIFT[2]}.mat')
        expected, out['label'] = mat['S'].astype(np.uint8) - np.uint8(1), out['sem']
    else:
        first = (originals['voc2010'] / 'ImageSets/Main/val.txt').read_text().split()[0]
        mat = scipy.io.loadmat(originals['pascal_context'] / 'trainval' / f'{first}.mat')
        expected = fx.context_task_label(mat['LabelMap'])
    np.testing.assert_array_equal(out['label'][0, 0], expected)


def test_shipped_lists_fill_what_the_archive_lacks(newcomer, sources, server, capsys):
    """seg11valid.txt (not in any VOC archive) and SIFT Flow's lists are put in the dataset's
    root, equal to the reference's; a list the archive holds (NYUD's trainval) is kept."""
    originals, served_dir = sources
    assert run(newcomer, server, served_dir, 'voc', 'siftflow', 'nyud') == 0
    data = newcomer / 'data'
    seg11 = data / 'pascal/VOC2012/ImageSets/Segmentation/seg11valid.txt'
    assert seg11.read_bytes() == (LISTS / 'pascal/seg11valid.txt').read_bytes()
    assert (data / 'sift-flow/test.txt').read_bytes() == (LISTS / 'sift-flow/test.txt'
                                                          ).read_bytes()
    assert (data / 'nyud/trainval.txt').read_text().split() == ['5001']
    assert (data / 'nyud/test.txt').read_bytes() == (LISTS / 'nyud/test.txt').read_bytes()


def test_a_second_run_does_nothing(newcomer, sources, server, capsys):
    assert run(newcomer, server, sources[1], 'siftflow', 'sbdd') == 0
    asked = len(server.requests)
    capsys.readouterr()
    assert run(newcomer, server, sources[1], 'siftflow', 'sbdd') == 0
    err = capsys.readouterr().err
    assert len(server.requests) == asked
    assert 'siftflow: present at' in err and 'sbdd: present at' in err and 'skipped' in err
    assert 'unpacking' not in err


def test_a_changed_dataset_is_reported_and_force_reinstalls(newcomer, sources, server, capsys):
    assert run(newcomer, server, sources[1], 'sbdd') == 0
    root = newcomer / 'data/sbdd/dataset'
    victim = next((root / 'cls').iterdir())
    victim.unlink()
    assert run(newcomer, server, sources[1], 'sbdd') == fetch.FAILED
    assert 'files were removed, added or changed' in capsys.readouterr().err
    assert run(newcomer, server, sources[1], 'sbdd', '--force') == 0
    assert victim.is_file()
    assert not list((newcomer / 'data/sbdd').glob('.fetch-*'))


def test_catch_digest_mismatch(newcomer, sources, server, capsys):
    """A file whose md5 is not the catalog's is refused: both digests printed, the file kept
    aside as .rejected, nothing installed."""
    served_dir = sources[1]
    wrong = '0' * 32
    rc = run(newcomer, server, served_dir, 'sbdd', **{'benchmark.tgz': {'md5': [wrong]}})
    err = capsys.readouterr().err
    assert rc == fetch.FAILED
    assert f'md5 {md5(served_dir / "benchmark.tgz")}, expected {wrong}' in err
    downloads_dir = newcomer / 'data' / 'downloads'
    assert (downloads_dir / 'benchmark.tgz.rejected').read_bytes() == \
        (served_dir / 'benchmark.tgz').read_bytes()
    assert not (downloads_dir / 'benchmark.tgz').exists()
    assert not (newcomer / 'data' / 'sbdd').exists() or not any(
        (newcomer / 'data' / 'sbdd').iterdir())
    assert 'Traceback' not in err


def test_without_a_published_digest_the_sha256_is_printed_and_recorded(newcomer, sources,
                                                                        server, capsys):
    served_dir = sources[1]
    assert run(newcomer, server, served_dir, 'siftflow') == 0
    sha = hashlib.sha256((served_dir / 'SiftFlowDataset.zip').read_bytes()).hexdigest()
    assert f'NOT verified against a published digest (none is published); its sha256 is ' \
           f'{sha}' in capsys.readouterr().err
    record = json.loads((newcomer / 'data/sift-flow' / fetch.RECORD).read_text())
    assert record['archives'][0]['sha256'] == sha


def test_a_cut_download_resumes(newcomer, sources, server, capsys):
    served_dir = sources[1]
    size = (served_dir / 'VOCtrainval_03-May-2010.tar').stat().st_size
    server.cut_after = size // 3
    assert run(newcomer, server, served_dir, 'voc2010') == fetch.FAILED
    err = capsys.readouterr().err
    part = newcomer / 'data/downloads/VOCtrainval_03-May-2010.tar.part'
    assert f'only {size // 3} of {size} bytes arrived' in err
    assert part.stat().st_size == size // 3
    server.cut_after = None
    assert run(newcomer, server, served_dir, 'voc2010') == 0
    assert f'resuming at byte {size // 3}' in capsys.readouterr().err
    assert server.requests[-1][1] == f'bytes={size // 3}-'
    assert not part.exists()


def test_a_server_without_range_support_restarts(newcomer, sources, server, capsys):
    served_dir = sources[1]
    part = newcomer / 'data/downloads/SiftFlowDataset.zip.part'
    part.parent.mkdir(parents=True)
    part.write_bytes(b'garbage that a restart must overwrite')
    server.ranges = False
    assert run(newcomer, server, served_dir, 'siftflow') == 0
    assert 'ignored the Range request' in capsys.readouterr().err
    assert (newcomer / 'data/downloads/SiftFlowDataset.zip').read_bytes() == \
        (served_dir / 'SiftFlowDataset.zip').read_bytes()


@pytest.mark.skipif(not os.path.exists('/dev/full'), reason='needs /dev/full')
def test_catch_disk_full(newcomer, sources, server, capsys):
    part = newcomer / 'data/downloads/benchmark.tgz.part'
    part.parent.mkdir(parents=True)
    part.symlink_to('/dev/full')
    assert run(newcomer, server, sources[1], 'sbdd') == fetch.FAILED
    err = capsys.readouterr().err
    assert 'disk full' in err and 'connection broke' not in err and 'Traceback' not in err


def test_catch_offline_one_line_per_file(newcomer, sources, capsys):
    """No server: each file of each dataset gets one line: what, URL, where, --from."""
    with served(sources[1]) as gone:
        manifest = write_catalog(newcomer / 'catalog.json', gone, sources[1])
    rc = fetch.main(['--manifest', str(manifest), 'pascal_context', '--timeout', '5'])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith('error: ')]
    assert rc == fetch.FAILED and len(lines) == 3 and 'Traceback' not in err
    for line, name in zip(lines, ('VOCtrainval_03-May-2010.tar', 'trainval.tar.gz',
                                  '59_labels.txt')):
        assert name in line and '/downloads/' + name in line and '--from DIR' in line
        assert 'http://127.0.0.1:' in line


def test_from_a_folder_of_archives(newcomer, sources, tmp_path, capsys):
    """--from DIR installs without a server; a missing archive is named with URL and md5."""
    served_dir = sources[1]
    manifest = catalog.CATALOG  # the real URLs: nothing is downloaded with --from
    offline = tmp_path / 'usb'
    offline.mkdir()
    (offline / 'benchmark.tgz').write_bytes((served_dir / 'benchmark.tgz').read_bytes())
    real = json.loads(manifest.read_text())
    real['datasets']['sbdd']['files'][0]['md5'] = [md5(served_dir / 'benchmark.tgz')]
    (tmp_path / 'c.json').write_text(json.dumps(real))
    assert fetch.main(['--manifest', str(tmp_path / 'c.json'), '--from', str(offline),
                       'sbdd', 'voc']) == fetch.FAILED
    err = capsys.readouterr().err
    assert 'sbdd: installed' in err
    assert ('voc: VOCtrainval_11-May-2012.tar (not in --from' in err and
            'host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar' in err and
            '6cd6e144f989b92b3379bac3b3de84fd' in err)
    assert (offline / 'benchmark.tgz').exists()


def test_mirror_takes_each_file_by_name(newcomer, sources, server, capsys):
    manifest = write_catalog(newcomer / 'c.json', server, sources[1])
    raw = json.loads(manifest.read_text())
    raw['datasets']['siftflow']['files'][0]['urls'] = ['http://127.0.0.1:9/not-this']
    manifest.write_text(json.dumps(raw))
    base = url_of(server, '')
    assert fetch.main(['--manifest', str(manifest), '--mirror', base, 'siftflow']) == 0
    assert server.requests[-1][0] == '/SiftFlowDataset.zip'
