"""Every data layer's tops equal, bit for bit, what fcn's reference layers compute: their
loaders transcribed here in NumPy, rounding included (VOC and SBDD subtract a float64 mean,
np.array(params['mean']), from the float32 image in place; NYUD, SIFT Flow and PASCAL-Context
subtract float32 means)."""
import numpy as np
import pytest
import scipy.io
from PIL import Image

from data_layers.voc import VOC_MEAN
from dataset_fixtures import (SIFTFLOW_CATEGORY, context_task_label, data_net, make_nyud,
                              make_pascal_context, make_sbdd, make_siftflow, make_voc,
                              set_dataset_env)

SEQ = "{'split': '%s', 'randomize': False}"
SIZES = (24, 32)  # enough pixels that a float32 mean rounds some values differently


def reference_image(path, mean):
    """load_image of the reference: float32 pixels, RGB -> BGR, `in_ -= mean` (the
    arithmetic in the mean's precision, stored back in float32), CHW."""
    image = np.array(Image.open(path), dtype=np.float32)[:, :, ::-1]
    image -= mean
    return image.transpose(2, 0, 1)


def test_voc_and_sbdd_data_subtract_the_float64_mean(tmp_path, monkeypatch):
    voc = make_voc(tmp_path / 'voc', sizes=SIZES, seed=1)
    sbdd = make_sbdd(tmp_path / 'sbdd', sizes=SIZES, seed=2)
    set_dataset_env(monkeypatch, voc=voc, sbdd=sbdd)
    cases = [('VOCSegDataLayer', 'train', voc / 'JPEGImages', ('2007_000032', '2007_000039')),
             ('SBDDSegDataLayer', 'train', sbdd / 'img', ('2008_000002', '2008_000003'))]
    for layer, split, folder, ids in cases:
        net = data_net(tmp_path, 'data_layers.voc', layer, SEQ % split, ['data', 'label'])
        for i in ids:
            ours = net.forward()['data'][0]
            reference = reference_image(folder / f'{i}.jpg', np.array(VOC_MEAN))
            np.testing.assert_array_equal(ours, reference)
            float32_mean = reference_image(folder / f'{i}.jpg', np.array(VOC_MEAN, np.float32))
            assert (ours != float32_mean).any(), 'the float64 rounding step is not exercised'


def test_nyud_tops_are_the_references(tmp_path, monkeypatch):
    nyud = make_nyud(tmp_path / 'nyud', seed=3)
    set_dataset_env(monkeypatch, nyud=nyud)
    net = data_net(tmp_path, 'data_layers.nyud', 'NYUDSegDataLayer',
                   "{'split': 'test', 'randomize': False, "
                   "'tops': ['color', 'hha', 'depth', 'label']}",
                   ['color', 'hha', 'depth', 'label'])
    out = net.forward()
    data = nyud / 'data'
    np.testing.assert_array_equal(out['color'][0], reference_image(
        data / 'images' / 'img_5001.png', np.array((116.190, 97.203, 92.318), np.float32)))
    hha = np.array(Image.open(data / 'hha' / 'img_5001.png'), dtype=np.float32)
    hha -= np.array((132.431, 94.076, 118.477), dtype=np.float32)
    np.testing.assert_array_equal(out['hha'][0], hha.transpose(2, 0, 1))
    depth = np.log(np.array(Image.open(data / 'depth' / 'img_5001.png'), dtype=np.float32))
    depth -= np.array((7.844,), dtype=np.float32)
    np.testing.assert_array_equal(out['depth'][0, 0], depth)
    label = scipy.io.loadmat(nyud / 'segmentation' / 'img_5001.mat')['segmentation']
    label = label.astype(np.uint8)
    label -= 1
    np.testing.assert_array_equal(out['label'][0, 0], label)


def test_siftflow_tops_are_the_references(tmp_path, monkeypatch):
    siftflow = make_siftflow(tmp_path / 'siftflow', seed=4)
    set_dataset_env(monkeypatch, siftflow=siftflow)
    net = data_net(tmp_path, 'data_layers.siftflow', 'SIFTFlowSegDataLayer', SEQ % 'test',
                   ['data', 'sem', 'geo'])
    out, i = net.forward(), 'coast_arnat59'
    np.testing.assert_array_equal(out['data'][0], reference_image(
        siftflow / 'Images' / SIFTFLOW_CATEGORY / f'{i}.jpg',
        np.array((114.578, 115.294, 108.353), np.float32)))
    sem = scipy.io.loadmat(siftflow / 'SemanticLabels' / SIFTFLOW_CATEGORY / f'{i}.mat')['S']
    sem = sem.astype(np.uint8)
    sem -= 1
    geo = scipy.io.loadmat(siftflow / 'GeoLabels' / SIFTFLOW_CATEGORY / f'{i}.mat')['S']
    geo[geo == -1] = 0
    geo = geo.astype(np.uint8)
    geo -= 1
    np.testing.assert_array_equal(out['sem'][0, 0], sem)
    np.testing.assert_array_equal(out['geo'][0, 0], geo)


@pytest.mark.parametrize('seed', [5, 6])
def test_pascal_context_tops_are_the_references(tmp_path, monkeypatch, seed):
    voc2010, context = make_pascal_context(tmp_path / 'voc2010', tmp_path / 'context',
                                           seed=seed)
    set_dataset_env(monkeypatch, voc2010=voc2010, pascal_context=context)
    net = data_net(tmp_path, 'data_layers.pascalcontext', 'PASCALContextSegDataLayer',
                   SEQ % 'val', ['data', 'label'])
    out, i = net.forward(), '2008_000002'
    np.testing.assert_array_equal(out['data'][0], reference_image(
        voc2010 / 'JPEGImages' / f'{i}.jpg', np.array((104.007, 116.669, 122.679), np.float32)))
    label_map = scipy.io.loadmat(context / 'trainval' / f'{i}.mat')['LabelMap']
    np.testing.assert_array_equal(out['label'][0, 0], context_task_label(label_map))
