"""pycaffe's public API on the engine: the names `caffe/__init__.py` exports, Classifier,
Detector, Timer, init_log and log, checked against values derived by hand or from
caffe.io's documented steps."""
import importlib
import logging
import os
import sys
import types

import numpy as np
import pytest
import torch

import caffe_torch as caffe
from caffe_torch import io

# Every name BVLC/caffe 9b89154's python/caffe/__init__.py imports into the package, read
# off its eight import lines (pycaffe, _caffe, proto.caffe_pb2, classifier, detector, io,
# net_spec), in that file's order.
PYCAFFE_EXPORTS = [
    'Net', 'SGDSolver', 'NesterovSolver', 'AdaGradSolver', 'RMSPropSolver',
    'AdaDeltaSolver', 'AdamSolver', 'NCCL', 'Timer',
    'init_log', 'log', 'set_mode_cpu', 'set_mode_gpu', 'set_device', 'Layer', 'get_solver',
    'layer_type_list', 'set_random_seed', 'solver_count', 'set_solver_count', 'solver_rank',
    'set_solver_rank', 'set_multiprocess', 'has_nccl',
    '__version__',
    'TRAIN', 'TEST',
    'Classifier',
    'Detector',
    'io',
    'layers', 'params', 'NetSpec', 'to_proto',
]
# Submodules pycaffe users import by name (`import caffe.draw`, `from caffe.proto import
# caffe_pb2`, `caffe.classifier.Classifier`).
PYCAFFE_SUBMODULES = ['io', 'net_spec', 'classifier', 'detector', 'draw', 'coord_map',
                      'proto.caffe_pb2']

IP_NET = """name: 'tiny' layer { name: 'data' type: 'Input' top: 'data'
  input_param { shape { dim: 2 dim: 3 dim: 4 dim: 4 } } }
layer { name: 'ip' type: 'InnerProduct' bottom: 'data' top: 'ip'
  inner_product_param { num_output: 5 weight_filler { type: 'gaussian' std: 1 }
                        bias_filler { type: 'gaussian' std: 1 } } }
"""


@pytest.fixture
def net_file(tmp_path):
    caffe.set_random_seed(7)
    path = tmp_path / 'tiny.prototxt'
    path.write_text(IP_NET)
    return str(path)


def _ip(net, blob):
    """The InnerProduct output the tiny net computes for one K x H x W input."""
    weight, bias = net.params['ip'][0].data, net.params['ip'][1].data
    return weight.astype(np.float64) @ blob.ravel() + bias


def _preprocess(image, swap=(2, 1, 0), raw_scale=255.0, mean=(10.0, 20.0, 30.0)):
    """Transformer.preprocess's steps, written out: transpose, swap, scale, mean."""
    blob = image.astype(np.float64).transpose(2, 0, 1)[list(swap)] * raw_scale
    return blob - np.asarray(mean)[:, None, None]


# -- the namespace -------------------------------------------------------------------------
def test_exports_every_pycaffe_name():
    """Every name pycaffe's __init__.py exports is present on the engine's package."""
    missing = [name for name in PYCAFFE_EXPORTS if not hasattr(caffe, name)]
    assert missing == []


@pytest.mark.parametrize('name', PYCAFFE_SUBMODULES)
def test_pycaffe_submodules_import(name):
    """The submodules pycaffe users import by name exist under the engine."""
    assert importlib.import_module(f'caffe_torch.{name}') is not None


def test_version_is_pycaffes():
    """__version__ is the CAFFE_VERSION BVLC Caffe 1.0 builds into _caffe (1.0.0)."""
    assert caffe.__version__ == '1.0.0'


def test_classifier_and_detector_are_nets():
    """Classifier and Detector extend Net, as in pycaffe."""
    assert issubclass(caffe.Classifier, caffe.Net) and issubclass(caffe.Detector, caffe.Net)
    assert caffe.classifier.Classifier is caffe.Classifier
    assert caffe.detector.Detector is caffe.Detector


# -- Classifier ------------------------------------------------------------------------------
def _classifier(net_file, **kwargs):
    return caffe.Classifier(net_file, None, mean=np.array([10.0, 20.0, 30.0]),
                            raw_scale=255, channel_swap=(2, 1, 0), **kwargs)


def test_classifier_oversample_averages_ten_crops(net_file):
    """predict(oversample=True): resize to image_dims, average over the 4 corners, the
    centre and their mirrors (10 crops) of each image."""
    rng = np.random.RandomState(0)
    images = [rng.rand(5, 7, 3).astype(np.float32), rng.rand(9, 6, 3).astype(np.float32),
              rng.rand(6, 8, 3).astype(np.float32)]
    clf = _classifier(net_file, image_dims=(6, 8))
    predictions = clf.predict(images)
    assert predictions.shape == (3, 5)
    for image, prediction in zip(images, predictions):
        resized = io.resize_image(image, (6, 8))
        corners = [(0, 0), (0, 4), (2, 0), (2, 4), (1, 2)]  # centre (3, 4) - (2, 2)
        crops = [resized[r:r + 4, c:c + 4] for r, c in corners]
        crops += [crop[:, ::-1] for crop in crops]
        expected = np.mean([_ip(clf, _preprocess(crop)) for crop in crops], axis=0)
        np.testing.assert_allclose(prediction, expected, rtol=1e-4, atol=1e-4)


def test_classifier_center_crop(net_file):
    """predict(oversample=False) classifies the centre crop of the resized image only."""
    image = np.random.RandomState(1).rand(5, 9, 3).astype(np.float32)
    clf = _classifier(net_file, image_dims=(6, 8))
    prediction = clf.predict([image], oversample=False)
    crop = io.resize_image(image, (6, 8))[1:5, 2:6]  # centre (3, 4), crop 4 x 4
    assert prediction.shape == (1, 5)
    np.testing.assert_allclose(prediction[0], _ip(clf, _preprocess(crop)), rtol=1e-4,
                               atol=1e-4)


def test_classifier_defaults_to_the_input_size(net_file):
    """Without image_dims the image is resized to the net input: the crops are the image."""
    image = np.random.RandomState(2).rand(7, 7, 3).astype(np.float32)
    clf = _classifier(net_file)
    np.testing.assert_array_equal(clf.image_dims, (4, 4))
    whole = _ip(clf, _preprocess(io.resize_image(image, (4, 4))))
    mirrored = _ip(clf, _preprocess(io.resize_image(image, (4, 4))[:, ::-1]))
    np.testing.assert_allclose(clf.predict([image])[0], (whole + mirrored) / 2, rtol=1e-4,
                               atol=1e-4)


# -- Detector --------------------------------------------------------------------------------
def _detector(net_file, **kwargs):
    return caffe.Detector(net_file, None, mean=np.array([102.0, 51.0, 255.0]),
                          raw_scale=255, channel_swap=(2, 1, 0), **kwargs)


def _png(tmp_path, name, shape, seed):
    from PIL import Image
    pixels = np.random.RandomState(seed).randint(0, 256, shape).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / name)
    return str(tmp_path / name), pixels / 255.0


def test_detector_detect_windows(net_file, tmp_path):
    """detect_windows crops each window, warps it to the input size and keeps the order."""
    first, image1 = _png(tmp_path, 'a.png', (12, 10, 3), 3)
    second, image2 = _png(tmp_path, 'b.png', (8, 9, 3), 4)
    windows1 = [np.array([0, 0, 5, 6]), np.array([2, 3, 12, 10])]
    windows2 = [np.array([1, 1, 7, 8])]
    det = _detector(net_file)
    out = det.detect_windows([(first, windows1), (second, windows2)])
    assert [d['filename'] for d in out] == [first, first, second]
    for d, image, window in zip(out, (image1, image1, image2), windows1 + windows2):
        assert d['window'] is window
        crop = image[window[0]:window[2], window[1]:window[3]].astype(np.float32)
        warped = io.resize_image(crop, (4, 4))
        expected = _ip(det, _preprocess(warped, mean=(102.0, 51.0, 255.0)))
        np.testing.assert_allclose(d['prediction'], expected, rtol=1e-4, atol=1e-4)


def test_detector_context_pad_crop(net_file):
    """With context_pad 1 on a 4-pixel input, window (0, 0, 3, 3) grows by a factor 2
    about its centre to (-2, -2, 6, 6): the out-of-image part becomes a 1-pixel border of
    the mean (in image space: BGR mean 102, 51, 255 / raw_scale 255 as RGB 1.0, 0.2, 0.4)
    and the clipped box (0, 0, 6, 6) is warped to 3 x 3 (round(7 * 4 / 9))."""
    det = _detector(net_file, context_pad=1)
    np.testing.assert_allclose(det.crop_mean.ravel(), [1.0, 0.2, 0.4], rtol=1e-6)
    image = np.random.RandomState(5).rand(10, 10, 3).astype(np.float32)
    crop = det.crop(image, np.array([0, 0, 3, 3]))
    assert crop.shape == (4, 4, 3)
    np.testing.assert_allclose(crop[0], np.tile([1.0, 0.2, 0.4], (4, 1)), rtol=1e-6)
    np.testing.assert_allclose(crop[:, 0], np.tile([1.0, 0.2, 0.4], (4, 1)), rtol=1e-6)
    np.testing.assert_allclose(crop[1:, 1:], io.resize_image(image[0:6, 0:6], (3, 3)),
                               rtol=1e-6)


def test_detector_crop_without_context(net_file):
    """Without context_pad a window is a plain slice [ymin:ymax, xmin:xmax]."""
    image = np.arange(5 * 6 * 3, dtype=np.float32).reshape(5, 6, 3)
    crop = _detector(net_file).crop(image, np.array([1, 2, 4, 5]))
    np.testing.assert_array_equal(crop, image[1:4, 2:5])


def test_detect_selective_search_uses_the_proposal_package(net_file, tmp_path,
                                                           monkeypatch):
    """detect_selective_search asks the package for windows of the absolute paths."""
    _png(tmp_path, 'c.png', (6, 6, 3), 6)
    calls = []

    def get_windows(fnames, cmd):
        calls.append((list(fnames), cmd))
        return [[np.array([0, 0, 4, 4])]]
    fake = types.ModuleType('selective_search_ijcv_with_python')
    fake.get_windows = get_windows
    monkeypatch.setitem(sys.modules, 'selective_search_ijcv_with_python', fake)
    monkeypatch.chdir(tmp_path)
    out = _detector(net_file).detect_selective_search(['c.png'])
    assert calls == [([os.path.abspath('c.png')], 'selective_search_rcnn')]
    assert len(out) == 1 and out[0]['filename'] == os.path.abspath('c.png')


def test_catch_selective_search_missing(net_file, monkeypatch):
    """Without the proposal package detect_selective_search says what to install."""
    monkeypatch.setitem(sys.modules, 'selective_search_ijcv_with_python', None)
    with pytest.raises(ImportError, match='selective_search_ijcv_with_python.*sergeyk'):
        _detector(net_file).detect_selective_search(['x.jpg'])


# -- Timer -----------------------------------------------------------------------------------
@pytest.fixture
def clock(monkeypatch):
    """A settable microsecond clock behind caffe.Timer."""
    now = {'us': 0}
    import caffe_torch.timer as timer_module
    monkeypatch.setattr(timer_module, '_now_us', lambda: now['us'])
    return now


def test_timer_has_pycaffes_members_only():
    """_caffe.cpp binds start, stop and the read-only property ms, nothing else."""
    timer = caffe.Timer()
    assert {n for n in dir(timer) if not n.startswith('_')} == {'start', 'stop', 'ms'}
    with pytest.raises(AttributeError):
        timer.ms = 1.0


def test_timer_ms_truncates_to_whole_milliseconds(clock):
    """On the CPU, ms is boost's total_milliseconds: the elapsed time truncated."""
    timer = caffe.Timer()
    clock['us'] = 1000
    timer.start()
    clock['us'] = 3999
    timer.stop()
    clock['us'] = 9000
    assert timer.ms == 2.0 and isinstance(timer.ms, float)


def test_timer_restart_and_read_while_running(clock):
    """start while running keeps the first start; reading ms while running stops it."""
    timer = caffe.Timer()
    timer.start()
    clock['us'] = 5000
    timer.start()
    clock['us'] = 7500
    assert timer.ms == 7.0
    clock['us'] = 20000
    assert timer.ms == 7.0  # stopped by the first read
    timer.stop()  # stopping a stopped timer does nothing
    assert timer.ms == 7.0


def test_timer_read_before_run_warns(caplog):
    """Reading a timer that never ran gives 0 and logs Caffe's warning."""
    with caplog.at_level(logging.WARNING, logger='caffe_torch'):
        assert caffe.Timer().ms == 0.0
    assert 'Timer has never been run before reading time.' in caplog.text


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_timer_gpu_mode_times_with_cuda_events():
    """In GPU mode ms is the CUDA events' elapsed time, fractional milliseconds."""
    caffe.set_mode_gpu()
    try:
        timer = caffe.Timer()
        timer.start()
        torch.ones(2048, 2048, device='cuda').matmul(torch.ones(2048, 2048, device='cuda'))
        timer.stop()
        assert timer.ms > 0 and timer.ms != int(timer.ms)
    finally:
        caffe.set_mode_cpu()


# -- init_log and log ------------------------------------------------------------------------
@pytest.fixture
def engine_logger():
    """The caffe_torch logger, restored after a test that reconfigures it."""
    logger = logging.getLogger('caffe_torch')
    level, handlers = logger.level, list(logger.handlers)
    states = [(h.level, getattr(h, 'stream', None)) for h in handlers]
    yield logger
    for handler in logger.handlers:
        if handler not in handlers:
            handler.close()
    logger.setLevel(level)
    logger.handlers[:] = handlers
    for handler, (handler_level, stream) in zip(handlers, states):
        handler.setLevel(handler_level)
        if stream is not None:
            handler.stream = stream


def test_log_writes_info_through_the_engine_logger(engine_logger, caplog):
    """caffe.log(s) is LOG(INFO) << s on the engine's logger."""
    caffe.init_log(0, True)
    with caplog.at_level(logging.INFO, logger='caffe_torch'):
        caffe.log('Using devices [0]')
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == \
        [(logging.INFO, 'Using devices [0]')]


def test_init_log_level_is_glogs_minloglevel(engine_logger):
    """init_log(level) sets FLAGS_minloglevel: 0 INFO, 1 WARNING, 2 ERROR, 3 FATAL."""
    for level, expected in enumerate((logging.INFO, logging.WARNING, logging.ERROR,
                                      logging.CRITICAL)):
        caffe.init_log(level, True)
        assert engine_logger.level == expected


def test_init_log_to_stderr(engine_logger, capsys):
    """init_log(level, True) is FLAGS_logtostderr: glog lines on stderr."""
    caffe.init_log(0, True)
    caffe.log('on stderr')
    err = capsys.readouterr().err
    assert err.startswith('I') and err.rstrip().endswith('] on stderr')


def test_init_log_to_file(engine_logger, capsys, monkeypatch, tmp_path):
    """init_log() without stderr logs to a file in GLOG_log_dir as glog does; stderr keeps
    only ERROR and above (glog's default stderrthreshold)."""
    monkeypatch.setenv('GLOG_log_dir', str(tmp_path))
    monkeypatch.delenv('GLOG_logtostderr', raising=False)
    caffe.init_log()
    caffe.log('to the file')
    logging.getLogger('caffe_torch').error('an error')
    for handler in engine_logger.handlers:
        handler.flush()
    files = list(tmp_path.glob('*.log.INFO.*'))
    assert len(files) == 1
    text = files[0].read_text()
    assert '] to the file' in text and '] an error' in text
    err = capsys.readouterr().err
    assert 'to the file' not in err and 'an error' in err


def test_catch_init_log_keywords(engine_logger):
    """init_log takes its arguments by position only, as the boost.python overloads."""
    with pytest.raises(TypeError):
        caffe.init_log(level=0)
