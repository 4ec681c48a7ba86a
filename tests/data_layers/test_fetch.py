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
from data_layers import catalog, fetch, paths, unpack

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
    part = newcomer / 'data/downloads/VOCtrainval_03-May-2010.tar.part'
    part.parent.mkdir(parents=True)
    part.write_bytes(b'garbage that a restart must overwrite')
    server.ranges = False
    assert run(newcomer, server, served_dir, 'voc2010') == 0
    assert 'ignored the Range request' in capsys.readouterr().err
    assert (newcomer / 'data/downloads/VOCtrainval_03-May-2010.tar').read_bytes() == \
        (served_dir / 'VOCtrainval_03-May-2010.tar').read_bytes()


def test_without_a_digest_a_partial_download_is_not_resumed(newcomer, sources, server,
                                                            capsys):
    """SIFT Flow has no published digest: a .part left behind (here damaged) could not be
    checked after resuming, so it is discarded and the file downloaded whole."""
    served_dir = sources[1]
    part = newcomer / 'data/downloads/SiftFlowDataset.zip.part'
    part.parent.mkdir(parents=True)
    part.write_bytes(b'damaged bytes')
    assert run(newcomer, server, served_dir, 'siftflow') == 0
    assert 'the download starts afresh' in capsys.readouterr().err
    assert server.requests[-1][1] is None
    assert (newcomer / 'data/downloads/SiftFlowDataset.zip').read_bytes() == \
        (served_dir / 'SiftFlowDataset.zip').read_bytes()


@pytest.mark.parametrize('timeout', ['0', '-1', 'nan', 'inf', 'soon'])
def test_catch_bad_timeout(timeout, capsys):
    with pytest.raises(SystemExit) as exit_info:
        fetch.main(['siftflow', '--timeout', timeout])
    assert exit_info.value.code == 2
    assert 'a number greater than 0' in capsys.readouterr().err


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


def test_an_unpack_killed_leaves_no_half_dataset(newcomer, tmp_path, capsys):
    """SIGKILL while the archive unpacks: the dataset's folder does not exist (only the
    temporary folder beside it); the next run clears that and installs the whole dataset."""
    big = tmp_path / 'big'
    big.mkdir()
    sift = fx.make_siftflow(big / 'sift', ids=SIFT)
    filler = sift / 'Images' / fx.SIFTFLOW_CATEGORY
    for k in range(5000):
        (filler / f'filler_{k:05d}.jpg').write_bytes(os.urandom(2048))
    with zipfile.ZipFile(big / 'SiftFlowDataset.zip', 'w') as z:
        for path in sorted(sift.rglob('*')):
            z.write(path, path.relative_to(sift).as_posix())
    data = newcomer / 'data'
    command = [sys.executable, '-m', 'data_layers.fetch', '--from', str(big), 'siftflow']
    child = subprocess.Popen(command, cwd=ROOT, env={**os.environ, 'FCN_DATA': str(data)},
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and child.poll() is None:
        staged = list(data.glob('.fetch-sift-flow.*/unpacked/Images/*/filler_00100.jpg'))
        if staged:
            child.send_signal(signal.SIGKILL)
            break
        time.sleep(0.002)
    child.wait(30)
    assert child.returncode == -signal.SIGKILL, 'the unpack ended before it could be killed'
    assert not (data / 'sift-flow').exists()
    assert list(data.glob('.fetch-sift-flow.*'))
    assert fetch.main(['--from', str(big), 'siftflow']) == 0
    err = capsys.readouterr().err
    assert 'left by a run that was interrupted' in err
    assert not list(data.glob('.fetch-*'))
    same_files(sift, data / 'sift-flow')


def test_a_second_fetch_waits_for_the_first(newcomer, capsys):
    """Two runs into one data root: the second is refused while the first holds the lock."""
    import atomic_files
    data = newcomer / 'data'
    data.mkdir()
    with atomic_files.holding(data / '.fetch.lock', 'held by the test'):
        assert fetch.main(['siftflow']) == fetch.FAILED
    err = capsys.readouterr().err
    assert 'another fetch is installing into' in err and f'pid {os.getpid()}' in err


def test_a_dataset_unpacked_by_hand_is_found_and_completed(newcomer, sources, capsys):
    """An archive unpacked by hand where fetch would put it, in the archive's own layout
    (VOCdevkit/VOC2012 inside), is used as it is; fetch adds the reference's lists only."""
    originals, served_dir = sources
    target = newcomer / 'data' / 'pascal' / 'VOC2012'
    target.mkdir(parents=True)
    with tarfile.open(served_dir / 'VOCtrainval_11-May-2012.tar') as t:
        t.extractall(target, **unpack.DATA_FILTER)
    root = target / 'VOCdevkit' / 'VOC2012'
    assert paths.dataset_dir('voc') == root
    assert fetch.main(['voc']) == 0
    err = capsys.readouterr().err
    assert 'installed by hand' in err and 'seg11valid.txt' in err
    assert (root / 'ImageSets/Segmentation/seg11valid.txt').is_file()


def test_paths_accept_the_archives_own_layouts(newcomer, sources, monkeypatch):
    """FCN_<NAME>_DIR may name the folder an archive was unpacked into."""
    served_dir = sources[1]
    for name, archive, inside in [('sbdd', 'benchmark.tgz', 'benchmark_RELEASE/dataset'),
                                  ('voc2010', 'VOCtrainval_03-May-2010.tar',
                                   'VOCdevkit/VOC2010')]:
        where = newcomer / 'by-hand' / name
        where.mkdir(parents=True)
        with tarfile.open(served_dir / archive) as t:
            t.extractall(where, **unpack.DATA_FILTER)
        monkeypatch.setenv(paths.env_var(name), str(where))
        assert paths.dataset_dir(name) == where / inside
        assert paths.check_dataset(name) == where / inside


def test_catch_missing_dataset_names_the_fetch_command(newcomer):
    with pytest.raises(paths.DatasetMissingError) as info:
        paths.check_dataset('voc')
    message = str(info.value)
    assert 'pascal/VOC2012 or ' in message and 'pascal/VOC2011' in message
    assert '`python -m data_layers.fetch voc` or `python -m data_layers.fetch voc2011`' in \
        message and 'FCN_VOC_DIR' in message


# The reference's lists (fcn.berkeleyvision.org @1305c73, data/), as sha256 of their text
# with line endings normalised: the shipped copies must equal them even where
# ../shared/ref-data is not on the machine.
REFERENCE_LISTS = {
    'nyud/classes.txt':
        '70c98794343c2996e43a8ee696dfc2d209789ff0d65420f4565ed9dd36c088aa',
    'nyud/test.txt':
        'f717536bdff71424f6f7cd0674cf6ac4381b2cffaaf942230b962a9f40671e7a',
    'nyud/train.txt':
        '8db94b4a9b33494c20319c6e79073aa7b842a683e6d263c3873d6ee95cebf759',
    'nyud/val.txt':
        'cd278b1232fe5c2347994a9a3c13cd916aa2e72def51b9698993a2e8936797f5',
    'pascal/classes.txt':
        '7337a2b06728385fb3e1106416c67bfddf69628598b1f2f0db6a63cd63fb6b1e',
    'pascal/seg11valid.txt':
        '4ca991bd72c251fd2485eaa9e29536502ea3800d1b1c17c151fd6a04bcfbc2cc',
    'pascal-context/classes-400.txt':
        '5d1672fb298b429f37561402b297b98706f72713bb9a69650fe0961f8faf0fe1',
    'pascal-context/classes-59.txt':
        '0a570a766be2aff841a7e9b2cb7f0ce8157bfa13ec4778276e352c7518132ed0',
    'sift-flow/classes.txt':
        '9e9c657a9acbb1d87eb505c3baa74809e5460247e297ac814cf6f0717c8da01f',
    'sift-flow/test.txt':
        'd9d024d06b1ed2139b0e1bdbc78ede9897c3389cd588cd5c37268a931c1d36ae',
    'sift-flow/trainval.txt':
        '4321de2b164556875661a66c64e6b5ebe1493a6e3dfa51d93700e3d17dbedfe7',
}


def normalised(path):
    return pathlib.Path(path).read_bytes().replace(b'\r\n', b'\n').replace(b'\r', b'\n')


@pytest.mark.parametrize('name', sorted(REFERENCE_LISTS))
def test_shipped_lists_equal_the_reference(name):
    digest = hashlib.sha256(normalised(LISTS / name)).hexdigest()
    assert digest == REFERENCE_LISTS[name]
    reference = ROOT.parent / 'shared' / 'ref-data' / name
    if reference.is_file():
        assert normalised(LISTS / name) == normalised(reference)


def test_shipped_lists_hold_the_papers_splits():
    ids = {n: (LISTS / n).read_text().split() for n in
           ('pascal/seg11valid.txt', 'sift-flow/trainval.txt', 'sift-flow/test.txt',
            'nyud/test.txt')}
    assert len(ids['pascal/seg11valid.txt']) == len(set(ids['pascal/seg11valid.txt'])) == 736
    # 2,688 SIFT Flow scenes less the two without annotations (the list's classes.txt note)
    assert (len(ids['sift-flow/trainval.txt']), len(ids['sift-flow/test.txt'])) == (2486, 200)
    assert not set(ids['sift-flow/trainval.txt']) & set(ids['sift-flow/test.txt'])
    assert len(ids['nyud/test.txt']) == 654


def test_catch_an_archive_with_a_member_leading_out(newcomer, tmp_path, capsys):
    """An archive (with the catalog's digest: a compromised source) holding ../ is refused
    through fetch too: nothing installed, nothing written outside, no temporary folder."""
    import io
    evil = tmp_path / 'evil'
    evil.mkdir()
    with tarfile.open(evil / 'benchmark.tgz', 'w') as t:
        for name in ('benchmark_RELEASE/dataset/train.txt', '../../escaped.txt'):
            info = tarfile.TarInfo(name)
            info.size = 2
            t.addfile(info, io.BytesIO(b'x\n'))
    raw = json.loads(catalog.CATALOG.read_text())
    raw['datasets']['sbdd']['files'][0]['md5'] = [md5(evil / 'benchmark.tgz')]
    (tmp_path / 'c.json').write_text(json.dumps(raw))
    rc = fetch.main(['--manifest', str(tmp_path / 'c.json'), '--from', str(evil), 'sbdd'])
    err = capsys.readouterr().err
    assert rc == fetch.FAILED and '".." component' in err and 'Traceback' not in err
    data = newcomer / 'data'
    assert not (data / 'sbdd' / 'dataset').exists() and not list(data.rglob('.fetch-*'))
    assert not list(newcomer.rglob('escaped.txt'))


@pytest.mark.parametrize('record', ['{"files": 3', '[]', '{"files": "3", "bytes": 1}'])
def test_catch_a_damaged_install_record(newcomer, sources, server, capsys, record):
    """A .fcn-fetch.json that is not the record fetch writes is named, with --force as the
    way out, instead of a traceback."""
    assert run(newcomer, server, sources[1], 'siftflow') == 0
    (newcomer / 'data/sift-flow' / fetch.RECORD).write_text(record)
    assert run(newcomer, server, sources[1], 'siftflow') == fetch.FAILED
    err = capsys.readouterr().err
    assert 'is unreadable or not one it writes. Pass --force' in err and 'Traceback' not in err


def test_catch_a_file_where_the_dataset_folder_belongs(newcomer, sources, server, capsys):
    (newcomer / 'data').mkdir()
    (newcomer / 'data/sift-flow').write_text('not a folder')
    assert run(newcomer, server, sources[1], 'siftflow') == fetch.FAILED
    assert 'sift-flow is a file where the dataset\'s folder belongs' in capsys.readouterr().err
