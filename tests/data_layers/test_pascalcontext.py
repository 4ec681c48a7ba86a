"""PASCALContextSegDataLayer: VOC2010 images with LabelMap mapped to the 59-class task."""
import numpy as np
import pytest

from data_layers.base import BadDataError
from data_layers.paths import DatasetMissingError
from data_layers.pascalcontext import CONTEXT_MEAN
from dataset_fixtures import (CONTEXT_59, CONTEXT_FULL, context_task_label, data_net,
                              make_pascal_context, read_rgb, set_dataset_env)

SEQ = "{'split': 'train', 'randomize': False}"


def context_net(tmp_path, param_str=SEQ):
    return data_net(tmp_path, 'data_layers.pascalcontext', 'PASCALContextSegDataLayer',
                    param_str, ['data', 'label'])


def setup_context(tmp_path, monkeypatch, **kwargs):
    voc, context = make_pascal_context(tmp_path / 'VOC2010', tmp_path / 'context', **kwargs)
    set_dataset_env(monkeypatch, voc2010=voc, pascal_context=context)
    return voc, context


def full_id(name):
    return CONTEXT_FULL.index(name) + 1


def test_label_matches_an_independent_mapping(tmp_path, monkeypatch):
    """label equals the 59-class mapping computed in the fixtures from the written LabelMap."""
    label_map = np.random.default_rng(7).integers(1, len(CONTEXT_FULL) + 1, (6, 8))
    setup_context(tmp_path, monkeypatch, labels={'2008_000002': label_map})
    label = context_net(tmp_path).forward()['label'][0, 0]
    np.testing.assert_array_equal(label, context_task_label(label_map))
    assert label.max() <= 59 and not (label == 255).any()


def test_renamed_classes_and_background(tmp_path, monkeypatch):
    """table, bedclothes and cloth take the task slots of diningtable, bedcloth and clothes;
    classes outside the task and id 0 become 0 (background)."""
    names = ['table', 'bedclothes', 'cloth', 'aeroplane', 'accordion', 'air conditioner']
    label_map = np.array([[full_id(n) for n in names] + [0]])
    setup_context(tmp_path, monkeypatch, sizes=(1, 7), labels={'2008_000002': label_map})
    label = context_net(tmp_path).forward()['label'][0, 0]
    slots = [CONTEXT_59.index(n) + 1 for n in ('diningtable', 'bedcloth', 'clothes')]
    np.testing.assert_array_equal(label, [slots + [1, 0, 0, 0]])


def test_data_and_split_from_voc2010(tmp_path, monkeypatch):
    """Images and the split list come from VOC2010 (Main), BGR minus the Context mean."""
    voc, _ = setup_context(tmp_path, monkeypatch, splits={'val': ('2008_000007',)})
    out = context_net(tmp_path, "{'split': 'val', 'randomize': False}").forward()
    expected = (read_rgb(voc / 'JPEGImages' / '2008_000007.jpg')[:, :, ::-1]
                - np.array(CONTEXT_MEAN, np.float32)).transpose(2, 0, 1)
    np.testing.assert_allclose(out['data'][0], expected, atol=1e-4)


def test_catch_labelmap_id_outside_the_full_list(tmp_path, monkeypatch):
    """A LabelMap value beyond labels.txt is refused, naming it, the file and the id."""
    bad = len(CONTEXT_FULL) + 1
    setup_context(tmp_path, monkeypatch, labels={'2008_000002': np.full((6, 8), bad)})
    with pytest.raises(BadDataError, match=rf'LabelMap value {bad} in .*2008_000002\.mat \(id '
                                           rf'"2008_000002"\) is not an id of labels\.txt'):
        context_net(tmp_path)


def test_catch_missing_labels_txt(tmp_path, monkeypatch):
    """A missing labels.txt says where it was looked for and how to get the dataset."""
    _, context = setup_context(tmp_path, monkeypatch)
    (context / 'labels.txt').unlink()
    with pytest.raises(DatasetMissingError, match=r'labels\.txt is missing.*PASCAL-Context'):
        context_net(tmp_path)


def test_catch_task_class_not_in_full_list(tmp_path, monkeypatch):
    """A 59_labels.txt class absent from labels.txt is named."""
    _, context = setup_context(tmp_path, monkeypatch)
    full = [n for n in CONTEXT_FULL if n != 'wood']
    (context / 'labels.txt').write_text(''.join(f'{k}: {n}\n' for k, n in enumerate(full, 1)))
    with pytest.raises(BadDataError, match=r'class "wood" of 59_labels\.txt is not in '
                                           r'labels\.txt'):
        context_net(tmp_path)


def test_catch_wrong_task_class_count(tmp_path, monkeypatch):
    """A 59_labels.txt with another number of classes is refused."""
    _, context = setup_context(tmp_path, monkeypatch)
    (context / '59_labels.txt').write_text('0: background\n' + (context / '59_labels.txt')
                                           .read_text())
    with pytest.raises(BadDataError, match=r'59_labels\.txt lists 60 classes; expected 59'):
        context_net(tmp_path)


def test_catch_missing_split_list(tmp_path, monkeypatch):
    """An unknown split looks in VOC2010's ImageSets/Main and lists what is there."""
    setup_context(tmp_path, monkeypatch)
    with pytest.raises(DatasetMissingError, match=r'no list for split "test" at .*Main/test\.txt'
                                                  r' \(split lists there: train, val\)'):
        context_net(tmp_path, "{'split': 'test', 'randomize': False}")
