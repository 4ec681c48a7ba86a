"""The classifier `make demo` ships (weights/demo-classifier.caffemodel): the file committed,
a whole caffemodel of nets/demo-classifier, as accurate on a freshly drawn seed-0 set as the
stage that trained it said, and refused when damaged."""
import hashlib

import numpy as np
import pytest

from backend import caffe
from nets.generate import NETS
from solve import demo, demo_data, score


def test_shipped_classifier_is_the_committed_file():
    assert hashlib.sha1(demo.SHIPPED.read_bytes()).hexdigest() == demo.SHIPPED_SHA1
    assert demo.shipped_classifier() == demo.SHIPPED


def test_shipped_classifier_fills_every_layer_of_the_demo_classifier():
    """Every weighted layer of the deploy net gets finite weights from the file."""
    net = caffe.Net(str(NETS / 'demo-classifier' / 'deploy.prototxt'), caffe.TEST,
                    weights=str(demo.SHIPPED))
    for name, blobs in net.params.items():
        for blob in blobs:
            assert np.isfinite(blob.data).all() and np.abs(blob.data).max() > 0, name


def test_shipped_classifier_classifies_a_fresh_seed_0_draw(tmp_path, monkeypatch):
    """On the held-out split drawn anew (seed 0, the set it was trained on) it is right as
    often as the demo says (98.3% of the 240 images, what its training run scored): any
    machine's draw of the set is the same files."""
    classes = demo_data.make_classification_set(tmp_path / 'classes', seed=0)
    monkeypatch.setenv('FCN_DEMO_CLASSES_DIR', str(classes))
    net = caffe.Net(str(NETS / 'demo-classifier' / 'val.prototxt'), caffe.TEST,
                    weights=str(demo.SHIPPED))
    metrics, _, confusion = score.evaluate(net, 15, 'fc8', progress=False)
    assert confusion.hist.sum() == 240
    assert 100 * metrics.pixel_accuracy == pytest.approx(demo.SHIPPED_ACCURACY, abs=0.5)


@pytest.mark.parametrize('damage, message', [
    (lambda path: path.unlink(), 'is missing: it ships with the toolkit'),
    (lambda path: path.write_bytes(path.read_bytes()[:1000]), 'has sha1 '),
])
def test_damaged_shipped_classifier_is_refused(tmp_path, monkeypatch, damage, message):
    copy = tmp_path / 'demo-classifier.caffemodel'
    copy.write_bytes(demo.SHIPPED.read_bytes())
    damage(copy)
    monkeypatch.setattr(demo, 'SHIPPED', copy)
    with pytest.raises(demo.DemoDataError, match=message) as info:
        demo.shipped_classifier()
    assert '--classifier scratch' in str(info.value) and 'git checkout' in str(info.value)


def test_demo_calls_the_stages_and_infer_as_functions(tmp_path, monkeypatch):
    """The demo runs each stage through solve.cli.execute with typed Options (FCN-32s from
    the shipped classifier, each next stage from the last's result) and segments through
    infer.segment_files: no argv is built, so a renamed flag cannot break it at run time."""
    import argparse
    from solve import cli, infer, loop
    calls = []
    monkeypatch.setattr(cli, 'execute', lambda model_id, options, gpu=None:
                        calls.append((model_id, options, gpu)) or 0)
    args = argparse.Namespace(classifier='shipped', out=tmp_path, iterations=3, gpu=None,
                              no_progress=True)
    assert demo.train(args) == 0
    assert [c[0] for c in calls] == list(demo.STAGES)
    assert all(isinstance(c[1], cli.Options) and c[1].iterations == 3 and not c[1].progress
               for c in calls)
    assert calls[0][1].init == str(demo.SHIPPED)
    assert calls[1][1].init == str(loop.final_weights(tmp_path, 'demo-fcn32s'))
    seen = {}
    monkeypatch.setattr(infer, 'segment_files', lambda model_id, images, out, **kw:
                        seen.update(model=model_id, out=out, **kw))
    monkeypatch.setattr(demo.paths, 'dataset_dir', lambda name: tmp_path)
    (tmp_path / 'ImageSets' / 'Segmentation').mkdir(parents=True)
    (tmp_path / 'ImageSets' / 'Segmentation' / 'val.txt').write_text('a\n')
    assert demo.overlay(tmp_path) == 0
    assert seen['model'] == 'demo-fcn8s' and seen['out'] == tmp_path / 'demo-example'
