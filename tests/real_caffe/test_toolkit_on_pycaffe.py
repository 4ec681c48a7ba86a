"""The toolkit on real BVLC pycaffe (FCN_BACKEND=caffe), small data, each command in a child
of the system Python that Caffe was built for (which has no torch):

  the staged demo pipeline, classifier -> FCN-32s -> FCN-16s -> FCN-8s, a few iterations a
  stage (train.log holds Caffe's own glog lines once each; run.json says caffe); solve.infer
  and solve.tables on its weights, equal to the engine's on the same weights; weights.convert
  writing the engine's bytes; every data layer of data_layers/ run by Caffe as a Python layer
  on files in the datasets' formats, its tops the engine's; a stage SIGKILLed mid-run and
  run again ending with the bytes of an uninterrupted run; nothing of the engine imported.
"""
import csv
import io
import json
import os
import pathlib
import signal
import subprocess
import time

import numpy as np
import pytest
from PIL import Image

import dataset_fixtures as fx
from data_layers.paths import DEFAULTS, env_var

ROOT = pathlib.Path(__file__).resolve().parents[2]
NETS = ROOT / 'nets'
QUICK = ['--iterations', '4', '--step', '2', '--no-progress']
STAGES = ('demo-classifier', 'demo-fcn32s', 'demo-fcn16s', 'demo-fcn8s')
TOOLKIT_MODULES = [
    'backend', 'backend.files', 'nets.generate', 'nets.analysis', 'surgery', 'data_layers.voc',
    'data_layers.nyud', 'data_layers.siftflow', 'data_layers.pascalcontext',
    'data_layers.classification', 'solve.cli', 'solve.loop', 'solve.logs', 'solve.infer',
    'solve.score', 'solve.tables', 'solve.measure', 'solve.demo', 'solve.demo_data',
    'solve.curves', 'weights.convert', 'weights.download']


def _env(real_caffe, root, glog=False, **extra):
    """A child's environment: pycaffe and the checkout importable, FCN_BACKEND=caffe, the
    datasets, weights and outputs under `root` (no FCN_<NAME>_DIR of the caller's);
    Caffe's INFO lines on stderr where `glog`."""
    env = real_caffe.env([ROOT], FCN_DATA=str(root / 'data'),
                         FCN_WEIGHTS=str(root / 'weights'), FCN_OUT=str(root / 'out'), **extra)
    for name in DEFAULTS:
        env.pop(env_var(name), None)
    env['FCN_BACKEND'] = 'caffe'  # real_caffe.env drops the caller's
    if glog:
        env['GLOG_minloglevel'] = '0'
    return env


def _pycaffe(real_caffe, root, args, glog=False, **extra):
    """Run `python3 args...` on real pycaffe in the checkout; the CompletedProcess."""
    return subprocess.run([real_caffe.python] + [str(a) for a in args], cwd=ROOT,
                          env=_env(real_caffe, root, glog, **extra), capture_output=True,
                          text=True, timeout=900)


def _use_root(monkeypatch, root):
    """This process (the engine) reads the same datasets."""
    for name in DEFAULTS:
        monkeypatch.delenv(env_var(name), raising=False)
    monkeypatch.setenv('FCN_DATA', str(root / 'data'))
    monkeypatch.setenv('FCN_WEIGHTS', str(root / 'weights'))


@pytest.fixture(scope='module')
def demo_root(tmp_path_factory):
    """The demo's two sets at their smallest (as tests/conftest.py's tiny_demo)."""
    from solve import demo_data
    root = tmp_path_factory.mktemp('pycaffe-toolkit')
    data = root / 'data' / 'demo'
    voc = demo_data.make_segmentation_set(data / 'voc', n_train=4, n_val=2, size=64, seed=3)
    classes = demo_data.make_classification_set(data / 'classes', n_per_class=2, seed=3,
                                                n_val_per_class=1)
    for folder in (voc, classes):
        (folder / 'seed.txt').write_text('3\n')
    return root


@pytest.fixture(scope='module')
def pipeline(real_caffe, demo_root):
    """demo-fcn8s and the stages before it, trained on real pycaffe with glog's INFO lines."""
    out = demo_root / 'out'
    trained = _pycaffe(real_caffe, demo_root,
                       ['-m', 'solve.cli', 'demo-fcn8s', '--out', out] + QUICK, glog=True)
    assert trained.returncode == 0, trained.stderr[-3000:]
    return out, trained


@pytest.fixture(scope='module')
def scattered(pipeline, demo_root):
    """demo-fcn8s's weights with noise on score_pool3, so that scores and label maps are not
    one class everywhere (four iterations at the demo's rate leave them so)."""
    from backend import caffe
    out, _ = pipeline
    net = caffe.Net(str(NETS / 'demo-fcn8s' / 'deploy.prototxt'), caffe.TEST,
                    weights=str(out / 'demo-fcn8s' / 'demo-fcn8s.caffemodel'))
    rng = np.random.default_rng(5)
    weights = net.params['score_pool3'][0].data
    weights[...] += rng.normal(0, 0.5, weights.shape).astype(np.float32)
    path = demo_root / 'scattered.caffemodel'
    net.save(str(path))
    return path


def test_staged_pipeline_on_real_caffe(pipeline):
    """Every stage writes its weights, curves, snapshots and run.json (backend caffe, Caffe's
    version); train.log gets Caffe's glog lines from stderr once each, beside the toolkit's."""
    out, trained = pipeline
    for stage in STAGES:
        folder = out / stage
        assert (folder / f'{stage}.caffemodel').is_file() and (folder / 'curves.png').is_file()
        assert (folder / 'snapshot' / 'train_iter_4.solverstate').is_file()
        run = json.loads((folder / 'run.json').read_text())
        assert run['backend'] == 'caffe' and run['caffe'] and 'torch' not in run
        log = (folder / 'train.log').read_text().splitlines()
        first = [line for line in log if '] Iteration 0 (' in line]
        assert len(first) == 1 and ' solver.cpp:' in first[0], first
        assert sum(' sgd_solver.cpp:' in line and 'Iteration 0, lr = ' in line
                   for line in log) == 1
        assert sum('Snapshotting solver state to binary proto file' in line
                   and 'train_iter_4.solverstate' in line for line in log) == 1
        assert sum('Iteration 4 mean accuracy' in line for line in log) == 1
        assert sum(' net.cpp:' in line and 'Initializing net from parameters' in line
                   for line in log) == 2  # train and test nets, once each
    assert 'bilinear upsampling in upscore2, upscore16' in (out / 'demo-fcn16s' /
                                                            'train.log').read_text()
    assert 'solver.cpp:' in trained.stderr  # still shown where they were written


def test_infer_matches_the_engine(real_caffe, demo_root, scattered, monkeypatch):
    """solve.infer on real pycaffe writes the label maps the engine writes for the same
    weights (argmax of the same scores: equal but for float-rounding ties)."""
    from solve import infer
    _use_root(monkeypatch, demo_root)
    images = demo_root / 'data' / 'demo' / 'voc' / 'JPEGImages'
    args = ['--model', 'demo-fcn8s', '--weights', str(scattered), str(images)]
    done = _pycaffe(real_caffe, demo_root, ['-m', 'solve.infer', *args, '--out',
                                            demo_root / 'infer-caffe'])
    assert done.returncode == 0, done.stderr[-3000:]
    assert infer.main(infer.get_args_parser().parse_args(
        args + ['--out', str(demo_root / 'infer-engine')])) == 0
    maps = sorted(p.name for p in (demo_root / 'infer-engine').glob('*.png')
                  if not p.stem.endswith('_overlay'))
    assert len(maps) == 6
    labels = set()
    for name in maps:
        theirs = np.array(Image.open(demo_root / 'infer-caffe' / name))
        ours = np.array(Image.open(demo_root / 'infer-engine' / name))
        assert theirs.shape == ours.shape
        assert (theirs != ours).mean() <= 1e-3, name
        labels |= set(np.unique(ours).tolist())
    assert len(labels) > 1, 'the scattered weights label every pixel alike'


def test_weights_convert_writes_the_engines_bytes(real_caffe, demo_root, pipeline):
    """weights.convert custom on real pycaffe: the bytes of the engine's conversion, and no
    scratch file of Net.save left beside them."""
    from weights import convert
    out, _ = pipeline
    conversion = [NETS / 'demo-classifier' / 'deploy.prototxt',
                  NETS / 'demo-fcn32s' / 'deploy.prototxt',
                  out / 'demo-classifier' / 'demo-classifier.caffemodel']
    target = demo_root / 'convert'
    target.mkdir()
    done = _pycaffe(real_caffe, demo_root, [
        '-m', 'weights.convert', 'custom', '--classifier-net', conversion[0], '--fcn-net',
        conversion[1], '--input', conversion[2], '--output', target / 'caffe.caffemodel',
        '--quiet'])
    assert done.returncode == 0, done.stderr[-3000:]
    convert.convert(*conversion, target / 'engine.caffemodel', verbose=False)
    assert (target / 'caffe.caffemodel').read_bytes() == \
        (target / 'engine.caffemodel').read_bytes()
    assert sorted(p.name for p in target.iterdir()) == ['caffe.caffemodel', 'engine.caffemodel']


def test_tables_score_as_the_engine_does(real_caffe, demo_root, scattered, monkeypatch):
    """solve.tables (make tables) on real pycaffe scores the weights as the engine's
    measure.evaluate does, and times the net, labelled with pycaffe, without torch."""
    from solve import measure
    _use_root(monkeypatch, demo_root)
    columns = ['pixel_accuracy', 'mean_accuracy', 'mean_iu', 'fw_iu', 'forward_ms']
    paper = {'about': 'the demo', 'sources': {'none': 'a test'},
             'columns': {c: c for c in columns},
             'tables': [{'id': '2', 'title': 'demo', 'columns': columns,
                         'measured': ['scores', 'timing'], 'notes': [],
                         'rows': [{'net': 'demo FCN-8s', 'model': 'demo-fcn8s',
                                   'published': []}]}]}
    (demo_root / 'paper.json').write_text(json.dumps(paper))
    done = _pycaffe(real_caffe, demo_root, [
        '-m', 'solve.tables', '--paper', demo_root / 'paper.json', '--format', 'csv',
        '--weights', f'demo-fcn8s={scattered}', '--limit', '2', '--size', '64',
        '--repeat', '1'])
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {r['metric']: r for r in csv.DictReader(io.StringIO(done.stdout))}
    assert 'pycaffe' in rows['forward_ms']['source_or_status']
    assert float(rows['forward_ms']['value']) > 0
    ours = measure.evaluate('demo-fcn8s', limit=2, weights=scattered)
    assert set(ours.values) == set(columns[:4]) and not ours.needs
    for metric, value in ours.values.items():
        assert float(rows[metric]['value']) == pytest.approx(value, rel=1e-5, abs=1e-4), metric
    assert 0 < ours.values['mean_iu'] < ours.values['pixel_accuracy'] < 100


def test_engine_only_options_are_refused(real_caffe, demo_root):
    """--fast-math has no pycaffe counterpart: one error line, nothing trained."""
    done = _pycaffe(real_caffe, demo_root, ['-m', 'solve.cli', 'demo-fcn32s', '--fast-math',
                                            '--out', demo_root / 'refused'] + QUICK)
    assert done.returncode == 2
    assert done.stderr.startswith('error: --fast-math is an option of the caffe_torch engine')
    assert not (demo_root / 'refused').exists()


def test_no_engine_module_is_imported(real_caffe, demo_root):
    """Every toolkit module imports on real pycaffe (whose Python has no torch) without a
    module of caffe_torch; caffe_pb2 is pycaffe's own."""
    done = _pycaffe(real_caffe, demo_root, ['-c', f'''
import importlib, sys
for name in {TOOLKIT_MODULES!r}:
    importlib.import_module(name)
import backend, caffe
print(sorted(m for m in sys.modules if m.split('.')[0] in ('caffe_torch', 'torch')))
print(backend.caffe_pb2 is caffe.proto.caffe_pb2, backend.NAME, backend.extra('mode'))'''])
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split('\n')[:2] == ['[]', 'True caffe None']


# -- data layers ------------------------------------------------------------------------------
LAYER_CASES = {  # name: (module, layer, param_str, tops)
    'voc-sequential': ('data_layers.voc', 'VOCSegDataLayer',
                       "{'split': 'seg11valid', 'randomize': False}", ['data', 'label']),
    'voc-random-mean': ('data_layers.voc', 'VOCSegDataLayer',
                        "{'split': 'train', 'randomize': True, 'seed': 1337, "
                        "'mean': (104.5, 116.25, 122.0)}", ['data', 'label']),
    'sbdd': ('data_layers.voc', 'SBDDSegDataLayer',
             "{'split': 'train', 'randomize': True, 'seed': 7}", ['data', 'label']),
    'demo-voc': ('data_layers.voc', 'VOCLayoutSegDataLayer',
                 "{'split': 'train', 'randomize': True, 'seed': 1337, 'dataset': 'demo_voc', "
                 "'scale': 0.015625}", ['data', 'label']),
    'nyud-all-tops': ('data_layers.nyud', 'NYUDSegDataLayer',
                      "{'split': 'trainval', 'tops': ['color', 'depth', 'hha', 'label'], "
                      "'randomize': True, 'seed': 3}", ['color', 'depth', 'hha', 'label']),
    'nyud-hha-label': ('data_layers.nyud', 'NYUDSegDataLayer',
                       "{'split': 'test', 'tops': ['hha', 'label'], 'randomize': False}",
                       ['hha', 'label']),
    'siftflow': ('data_layers.siftflow', 'SIFTFlowSegDataLayer',
                 "{'split': 'trainval', 'randomize': True, 'seed': 11}", ['data', 'sem', 'geo']),
    'pascalcontext': ('data_layers.pascalcontext', 'PASCALContextSegDataLayer',
                      "{'split': 'train', 'randomize': True, 'seed': 5}", ['data', 'label']),
    'classification': ('data_layers.classification', 'ClassificationDataLayer',
                       "{'split': 'train', 'randomize': True, 'seed': 1337, 'batch_size': 2, "
                       "'scale': 0.015625, 'classes': 5}", ['data', 'label']),
}
FORWARDS = 5  # more than the ids of a split: sequential layers wrap, random ones repeat

LAYERS_CHILD = '''
import json, sys
import numpy as np
import caffe
for case in json.load(open(sys.argv[1])):
    net = caffe.Net(case['prototxt'], caffe.TRAIN)
    tops = {}
    for k in range(case['forwards']):
        net.forward()
        tops.update(('%d/%s' % (k, t), net.blobs[t].data.copy()) for t in case['tops'])
    np.savez(case['result'], **tops)
    del net
try:
    caffe.Net(sys.argv[2], caffe.TRAIN)
except Exception as e:
    print(type(e).__name__, e)
'''


def _datasets(root, demo):
    """Every dataset the layers read, in its real format, a few small images of mixed sizes
    (the demo's two from `demo`)."""
    sizes = {'a': (6, 8), 'b': (9, 7), 'c': (5, 5)}
    ids = {name: tuple(f'{name}_{k}' for k in 'abc') for name in ('voc', 'sbdd', 'nyud')}

    def mixed(name):
        return {i: sizes[i[-1]] for i in ids[name]}
    voc2010, context = fx.make_pascal_context(root / 'voc2010', root / 'context',
                                              sizes=(7, 9), seed=4)
    return {
        'voc': fx.make_voc(root / 'voc', ids=ids['voc'], sizes=mixed('voc'), seed=1),
        'sbdd': fx.make_sbdd(root / 'sbdd', ids=ids['sbdd'], sizes=mixed('sbdd'), seed=2),
        'nyud': fx.make_nyud(root / 'nyud', ids=ids['nyud'], sizes=mixed('nyud'), seed=3),
        'siftflow': fx.make_siftflow(root / 'siftflow', sizes=(8, 10), seed=5),
        'voc2010': voc2010, 'pascal_context': context,
        'demo_voc': demo / 'data' / 'demo' / 'voc',
        'demo_classes': demo / 'data' / 'demo' / 'classes'}


@pytest.fixture(scope='module')
def layer_tops(real_caffe, demo_root):
    """{case: (engine tops, Caffe's tops)} of FORWARDS forwards of each case's one-layer net,
    and what Caffe raised for a param_str lacking a required key."""
    from backend import caffe
    folder = demo_root / 'layers'
    folder.mkdir()
    with fx.dataset_env(**_datasets(folder, demo_root)):
        cases, engine = [], {}
        for name, (module, layer, param_str, tops) in LAYER_CASES.items():
            net = fx.data_net(folder, module, layer, param_str, tops, name=name)
            engine[name] = {}
            for k in range(FORWARDS):
                net.forward()
                engine[name].update((f'{k}/{t}', net.blobs[t].data.copy()) for t in tops)
            cases.append({'prototxt': str(folder / f'{name}.prototxt'), 'tops': tops,
                          'forwards': FORWARDS, 'result': str(folder / f'{name}.npz')})
        (folder / 'cases.json').write_text(json.dumps(cases))
        (folder / 'bad.prototxt').write_text(
            'layer { name: "data" type: "Python" top: "data" top: "label" python_param { '
            'module: "data_layers.voc" layer: "VOCSegDataLayer" '
            'param_str: "{\'split\': \'train\'}" } }\n')
        env = _env(real_caffe, demo_root)
        env.update({k: v for k, v in os.environ.items() if k.startswith('FCN_')
                    and k.endswith('_DIR')})
        done = subprocess.run([real_caffe.python, '-c', LAYERS_CHILD, folder / 'cases.json',
                               folder / 'bad.prototxt'], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    recorded = {name: dict(np.load(folder / f'{name}.npz')) for name in LAYER_CASES}
    return {name: (engine[name], recorded[name]) for name in LAYER_CASES}, done.stdout


@pytest.mark.parametrize('name', sorted(LAYER_CASES))
def test_data_layer_in_real_caffe_gives_the_engines_tops(name, layer_tops):
    """Caffe runs the layer as a Python layer (reshape to each image, forward, FORWARDS
    times): every top of every forward equals the engine's, bit for bit."""
    ours, theirs = layer_tops[0][name]
    assert sorted(ours) == sorted(theirs)
    for key in sorted(ours):
        assert theirs[key].dtype == np.float32 and theirs[key].shape == ours[key].shape, key
        assert np.array_equal(theirs[key], ours[key]), f'{name}: top {key} differs'
    shapes = {ours[f'{k}/{LAYER_CASES[name][3][0]}'].shape for k in range(FORWARDS)}
    if name.startswith(('voc', 'sbdd', 'nyud')):
        assert len(shapes) > 1, 'the images of mixed sizes were not all read'


def test_a_bad_param_str_reaches_pycaffe_as_the_layers_error(layer_tops):
    """A param_str lacking a key: Caffe's setup raises the layer's ParamStrError, message
    and fix included (the layer's name is hidden from Python layers by pycaffe)."""
    said = layer_tops[1]
    assert said.startswith('ParamStrError layer "?" (VOCSegDataLayer): param_str lacks the '
                           "required key 'randomize'"), said
    assert 'Example: param_str:' in said


# -- resume after a kill ----------------------------------------------------------------------
def test_killed_stage_resumes_to_the_bytes_of_an_uninterrupted_run(real_caffe, demo_root):
    """demo-classifier (Dropout, random data order) on real pycaffe, one BLAS thread: killed
    with SIGKILL in its second round and run again, it ends with the final caffemodel of a
    run never interrupted. A solverstate cut short (Caffe writes in place) is refused with
    what to do, where Caffe would abort."""
    from solve import resume_state
    command = ['-m', 'solve.cli', 'demo-classifier', '--only'] + QUICK + ['--out']
    straight = _pycaffe(real_caffe, demo_root, command + [demo_root / 'straight'],
                        OPENBLAS_NUM_THREADS='1')
    assert straight.returncode == 0, straight.stderr[-3000:]
    stage = demo_root / 'killed' / 'demo-classifier'
    first = stage / 'snapshot' / 'train_iter_2.solverstate'
    child = subprocess.Popen([real_caffe.python] + command + [str(demo_root / 'killed')],
                             cwd=ROOT, env=_env(real_caffe, demo_root,
                                                OPENBLAS_NUM_THREADS='1'),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while child.poll() is None and time.monotonic() < deadline:
        if first.is_file() and resume_state.is_whole(first):
            break
        time.sleep(0.005)
    assert child.poll() is None, 'the stage ended before its first snapshot could be caught'
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert not (stage / 'demo-classifier.caffemodel').exists()

    whole = first.read_bytes()
    first.write_bytes(whole[:len(whole) // 2])  # as a kill during Caffe's write leaves it
    refused = _pycaffe(real_caffe, demo_root, command + [demo_root / 'killed'],
                       OPENBLAS_NUM_THREADS='1')
    assert refused.returncode == 2, refused.stderr[-3000:]
    assert f'cannot resume from {first}' in refused.stderr
    assert ('move it and its .caffemodel out of the snapshot folder to resume from the one '
            'before') in refused.stderr
    first.write_bytes(whole)

    resumed = _pycaffe(real_caffe, demo_root, command + [demo_root / 'killed'],
                       OPENBLAS_NUM_THREADS='1')
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f'resuming demo-classifier from {first}' in resumed.stderr
    want = demo_root / 'straight' / 'demo-classifier' / 'demo-classifier.caffemodel'
    assert (stage / 'demo-classifier.caffemodel').read_bytes() == want.read_bytes()
    with open(stage / 'scores.csv') as f:
        assert [int(r['iteration']) for r in csv.DictReader(f)] == [2, 4]
