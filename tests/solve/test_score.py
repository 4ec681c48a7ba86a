"""solve.score: the paper's metrics from hand-computed confusion matrices, and evaluate()."""
import logging
import re
import textwrap

import numpy as np
import pytest
from PIL import Image

import caffe_torch as caffe
from caffe_torch import install_as_caffe
from solve import console, score
from solve.score import ConfusionMatrix


def absent_classes_matrix():
    """4 classes: class 2 predicted but never labelled, class 3 neither; one void pixel.

    hist rows (gt) 0: [2 0 1 0], 1: [0 2 0 0], rows 2 and 3 empty.
    """
    cm = ConfusionMatrix(4, class_names=['bg', 'cat', 'dog', 'cow'])
    cm.update(np.array([[0, 0, 0], [1, 1, 255]]), np.array([[0, 0, 2], [1, 1, 3]]))
    return cm


def test_hist_rows_are_ground_truth():
    """hist[gt, pred] counts pixels; void pixels (255) are not counted at all."""
    cm = absent_classes_matrix()
    assert cm.hist.dtype == np.int64
    np.testing.assert_array_equal(cm.hist, [[2, 0, 1, 0], [0, 2, 0, 0], [0] * 4, [0] * 4])


def test_metrics_with_absent_classes():
    """The 0/0 class is dropped by nanmean; the predicted-but-absent class has IU 0."""
    m = absent_classes_matrix().compute()
    assert m.pixel_accuracy == pytest.approx(4 / 5)
    assert m.mean_accuracy == pytest.approx((2 / 3 + 1) / 2)
    np.testing.assert_allclose(m.class_iu, [2 / 3, 1, 0, np.nan])
    assert m.mean_iu == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert m.fw_iu == pytest.approx(3 / 5 * 2 / 3 + 2 / 5 * 1)


def test_present_only_changes_mean_iu_only():
    """The SIFT Flow rule drops the never-labelled class 2 from mean IU; the rest is equal."""
    cm = absent_classes_matrix()
    default, paper = cm.compute(), cm.compute(present_only=True)
    assert paper.mean_iu == pytest.approx((2 / 3 + 1) / 2)
    assert paper.mean_iu > default.mean_iu
    for name in ('pixel_accuracy', 'mean_accuracy', 'fw_iu'):
        assert getattr(paper, name) == pytest.approx(getattr(default, name))


def test_three_class_metrics():
    """A full 3-class matrix gives the hand-computed four metrics."""
    cm = ConfusionMatrix(3)
    cm.hist[...] = [[3, 1, 1], [0, 2, 0], [1, 1, 1]]
    m = cm.compute()
    assert m.pixel_accuracy == pytest.approx(6 / 10)
    assert m.mean_accuracy == pytest.approx((3 / 5 + 2 / 2 + 1 / 3) / 3)
    assert m.mean_iu == pytest.approx((3 / 6 + 2 / 4 + 1 / 4) / 3)
    assert m.fw_iu == pytest.approx(0.5 * 0.5 + 0.2 * 0.5 + 0.3 * 0.25)


def test_empty_matrix_is_nan_without_warnings(recwarn):
    """With no pixels every metric is nan, and numpy emits no RuntimeWarning."""
    m = ConfusionMatrix(3).compute()
    assert all(np.isnan(v) for v in (m.pixel_accuracy, m.mean_accuracy, m.mean_iu, m.fw_iu))
    assert not recwarn.list


def test_float_labels_from_blobs():
    """Float label blobs (as Caffe stores them) count like integer labels, void included."""
    ints, floats = ConfusionMatrix(3), ConfusionMatrix(3)
    label = np.array([[0, 2, 255], [1, 1, 2]])
    pred = np.array([[0, 2, 1], [1, 0, 2]])
    ints.update(label, pred)
    floats.update(label.astype(np.float32), pred)
    np.testing.assert_array_equal(ints.hist, floats.hist)
    assert ints.hist.sum() == 5


def test_merge_equals_one_big_update():
    """Merging matrices of two halves equals one update over all pixels (+, += and merge)."""
    rng = np.random.RandomState(0)
    label = rng.randint(0, 5, (2, 8, 8))
    label[rng.rand(*label.shape) < 0.1] = 255
    pred = rng.randint(0, 5, (2, 8, 8))
    whole = ConfusionMatrix(5).update(label, pred)
    first, second = ConfusionMatrix(5).update(label[0], pred[0]), \
        ConfusionMatrix(5).update(label[1], pred[1])
    np.testing.assert_array_equal((first + second).hist, whole.hist)
    first += second
    np.testing.assert_array_equal(first.hist, whole.hist)


def test_str_table_lists_classes():
    """The printed table names every class and the four metrics in percent."""
    text = str(absent_classes_matrix())
    assert 'mean IU 55.56' in text and 'pixel acc 80.00' in text
    assert all(name in text for name in ('bg', 'cat', 'dog', 'cow'))


def test_catch_prediction_out_of_range():
    """A prediction index >= num_classes is an error, not a silently dropped pixel."""
    with pytest.raises(ValueError, match=r'prediction values \[0, 3\] fall outside \[0, 3\)'):
        ConfusionMatrix(3).update(np.zeros((2, 2)), np.array([[0, 3], [1, 2]]))


def test_catch_float_prediction():
    """Raw scores passed as a prediction are refused with a hint to take the argmax."""
    with pytest.raises(TypeError, match='argmax'):
        ConfusionMatrix(3).update(np.zeros((2, 2)), np.zeros((2, 2)))


def test_catch_label_out_of_range():
    """A label outside [0, n) that is not the ignore label points at a wrong num_classes."""
    with pytest.raises(ValueError, match='label value 7 is outside'):
        ConfusionMatrix(3).update(np.array([[7, 255]]), np.array([[0, 0]]))


def test_catch_shape_mismatch():
    """Label and prediction maps must have the same shape."""
    with pytest.raises(ValueError, match=r'label shape \(2, 2\) != prediction shape'):
        ConfusionMatrix(3).update(np.zeros((2, 2)), np.zeros((2, 3), int))


def test_catch_merge_mismatch():
    """Matrices over different class counts cannot be merged."""
    with pytest.raises(ValueError, match='cannot merge a 4-class matrix into a 3-class'):
        ConfusionMatrix(3).merge(ConfusionMatrix(4))


def test_catch_class_names_length():
    """class_names must name every class."""
    with pytest.raises(ValueError, match='class_names has 2 entries for 3 classes'):
        ConfusionMatrix(3, class_names=['a', 'b'])


# -- evaluate() on an engine net ------------------------------------------------------------

PAIRS_LAYER = '''
import numpy as np
import caffe


class FixedPairs(caffe.Layer):
    """Serves (score, label, loss) from the .npz named by param_str, in order, wrapping."""
    def setup(self, bottom, top):
        arrays = np.load(self.param_str)
        self.scores, self.labels, self.losses = (arrays[k] for k in ('score', 'label', 'loss'))
        self.index = 0

    def reshape(self, bottom, top):
        top[0].reshape(1, *self.scores.shape[1:])
        top[1].reshape(1, 1, *self.labels.shape[1:])
        top[2].reshape()

    def forward(self, bottom, top):
        top[0].data[0] = self.scores[self.index]
        top[1].data[0, 0] = self.labels[self.index]
        top[2].data[...] = self.losses[self.index]
        self.index = (self.index + 1) % len(self.scores)

    def backward(self, top, propagate_down, bottom):
        pass
'''

# Two 2x3 images over 3 classes; their hist is [[3 1 1] [0 2 0] [1 1 1]] (test_three_class_metrics)
LABELS = np.array([[[0, 0, 1], [1, 255, 2]], [[0, 0, 0], [2, 2, 255]]])
PREDICTIONS = np.array([[[0, 1, 1], [1, 0, 0]], [[0, 0, 2], [2, 1, 1]]])


@pytest.fixture
def pairs_net(tmp_path, monkeypatch):
    """A test net whose Python data layer serves the two fixed (score, label, loss) pairs."""
    scores = np.moveaxis(np.eye(3)[PREDICTIONS], -1, 1) * 5 - 1  # argmax = PREDICTIONS
    np.savez(tmp_path / 'pairs.npz', score=scores, label=LABELS, loss=[1.5, 2.5])
    (tmp_path / 'pairs_layer.py').write_text(PAIRS_LAYER)
    monkeypatch.syspath_prepend(str(tmp_path))
    install_as_caffe()
    (tmp_path / 'test.prototxt').write_text(textwrap.dedent(f'''
        layer {{ name: 'data' type: 'Python' top: 'score' top: 'label' top: 'loss'
                python_param {{ module: 'pairs_layer' layer: 'FixedPairs'
                                param_str: '{tmp_path / 'pairs.npz'}' }} }}'''))
    return tmp_path / 'test.prototxt'


def test_evaluate_metrics_and_loss(pairs_net):
    """evaluate() scores the argmax against the label blob and averages the loss blob."""
    net = caffe.Net(str(pairs_net), caffe.TEST)
    metrics, loss, confusion = score.evaluate(net, 2, progress=False)
    np.testing.assert_array_equal(confusion.hist, [[3, 1, 1], [0, 2, 0], [1, 1, 1]])
    assert loss == pytest.approx(2.0) and metrics.loss == pytest.approx(2.0)
    assert metrics.pixel_accuracy == pytest.approx(0.6)
    assert metrics.fw_iu == pytest.approx(0.425)


def test_evaluate_writes_palette_pngs_into_existing_folder(pairs_net, tmp_path, capsys):
    """Predictions become {id}.png with the VOC palette, in a folder that already exists."""
    out = tmp_path / 'seg'
    out.mkdir()
    net = caffe.Net(str(pairs_net), caffe.TEST)
    score.evaluate(net, 2, save_dir=str(out), ids=['a', 'b'])
    for name, expected in zip('ab', PREDICTIONS):
        image = Image.open(out / f'{name}.png')
        assert image.mode == 'P'
        np.testing.assert_array_equal(np.array(image), expected)
        assert image.getpalette()[:9] == [0, 0, 0, 128, 0, 0, 0, 128, 0]
    assert sorted(p.name for p in out.iterdir()) == ['a.png', 'b.png']  # no temp files left
    assert capsys.readouterr().err == ''  # stderr is no terminal here: no bar frames


def test_evaluate_progress_on_a_terminal(pairs_net, capsys, monkeypatch):
    """On a terminal the bar counts images with a rate; progress=False hides it there too."""
    monkeypatch.setattr(console, 'stderr_is_terminal', lambda: True)
    score.evaluate(caffe.Net(str(pairs_net), caffe.TEST), 2)
    err = capsys.readouterr().err
    assert re.search(r'scoring: +\d+%\|.*\| \d/2 \[.*img/s\]', err)
    score.evaluate(caffe.Net(str(pairs_net), caffe.TEST), 2, progress=False)
    assert capsys.readouterr().err == ''


def test_stderr_is_terminal_follows_the_real_stderr(monkeypatch):
    """A pty counts as a terminal, a pipe does not: also when solve.logs has put a pipe on
    fd 2 and named the real stderr in terminal_fd."""
    import os
    import pty
    for (other, fd), expected in ((pty.openpty(), True), (os.pipe(), False)):
        monkeypatch.setattr(console, 'terminal_fd', fd)
        assert console.stderr_is_terminal() is expected
        os.close(fd)
        os.close(other)


def test_seg_tests_shares_weights_and_logs(pairs_net, tmp_path, caplog):
    """seg_tests shares the train net's weights, scores test net 0 and logs fcn's lines."""
    (tmp_path / 'solver.prototxt').write_text(textwrap.dedent(f'''
        train_net: "{pairs_net}" test_net: "{pairs_net}" test_iter: 2 test_interval: 1000
        base_lr: 0.1 lr_policy: "fixed" snapshot_prefix: "{tmp_path / 'snap'}"'''))
    solver = caffe.SGDSolver(str(tmp_path / 'solver.prototxt'))
    shared = []
    solver.test_nets[0].share_with = shared.append
    with caplog.at_level(logging.INFO, logger='fcn.score'):
        metrics = score.seg_tests(solver, 2, progress=False)
    assert shared == [solver.net]
    assert metrics.mean_iu == pytest.approx((0.5 + 0.5 + 0.25) / 3)
    messages = [r.getMessage() for r in caplog.records if r.name == 'fcn.score']
    assert [m.split(' Iteration 0 ')[1].rsplit(' ', 1)[0] for m in messages] == \
        ['loss', 'overall accuracy', 'mean accuracy', 'mean IU', 'fwavacc']
    assert all(m.startswith('>>> ') for m in messages)


def test_catch_save_dir_without_ids(pairs_net, tmp_path):
    """Saving predictions needs one id per image to name the PNGs."""
    net = caffe.Net(str(pairs_net), caffe.TEST)
    with pytest.raises(ValueError, match='needs ids'):
        score.evaluate(net, 2, save_dir=str(tmp_path / 'seg'), progress=False)


def test_catch_ids_count(pairs_net):
    """ids must name exactly the images scored, so PNG names cannot drift from the data."""
    net = caffe.Net(str(pairs_net), caffe.TEST)
    with pytest.raises(ValueError, match='3 ids for num_images=2'):
        score.evaluate(net, 2, ids=['a', 'b', 'c'], progress=False)


def test_catch_missing_blob(pairs_net):
    """An unknown score blob name lists the net's blobs."""
    net = caffe.Net(str(pairs_net), caffe.TEST)
    with pytest.raises(KeyError, match='no blob upscore; its blobs: score, label, loss'):
        score.evaluate(net, 2, score_blob='upscore', progress=False)
