"""Every model of the paper: built by the engine, aligned, sized and counted as Table 1."""
import gc

import numpy as np

import pytest

import caffe_torch as caffe
from caffe_torch import formats
from nets import analysis, generate
from nets.classifiers import CLASSIFIERS
from nets.models import DEMO_NET, MODELS
from nets.vgg import first_pad

ALL = sorted(m for m in MODELS if not MODELS[m].is_classifier)   # the FCNs
CROPS = {  # the reference's offsets, fcn-facts §1.2 (score_pool4c, score_pool3c, score)
    32: {'score': 19}, 16: {'score_pool4c': 5, 'score': 27},
    8: {'score_pool4c': 5, 'score_pool3c': 9, 'score': 31}}
# The demo's nets: fc6 4x4 (a 128-pixel classifier) and conv1_1 pad 68 (nets.vgg.first_pad):
# score's offset 19 + 16 (7 - 4) - (100 - 68) = 35, the skips' k - 2 = 2 and 2 k - 5 = 3.
DEMO_CROPS = {32: {'score': 35}, 16: {'score_pool4c': 2, 'score': 43},
              8: {'score_pool4c': 2, 'score_pool3c': 3, 'score': 47}}


def _deploy(model_id):
    return caffe.Net(str(generate.NETS / model_id / 'deploy.prototxt'), caffe.TEST)


def _stride(model_id):
    return 16 if 'fcn16s' in model_id else 8 if 'fcn8s' in model_id else 32


@pytest.fixture(autouse=True)
def _free_nets():
    yield
    gc.collect()  # full-size nets hold half a gigabyte of weights each


def test_committed_prototxts_are_current():
    """nets/ holds exactly what the builders generate (make check-nets)."""
    stale = [p for p, text in generate.all_files().items()
             if not (generate.NETS / p).exists() or (generate.NETS / p).read_text() != text]
    assert stale == []


@pytest.mark.parametrize('model_id', ALL)
def test_deploy_output_has_the_input_size(model_id):
    """Deploy nets score every pixel: odd, even, tiny and ceil-pooling edge sizes."""
    net = _deploy(model_id)
    inputs = net.inputs
    for height, width in [(500, 500), (375, 500), (1, 1), (33, 47), (63, 64), (97, 31)]:
        for name in inputs:
            net.blobs[name].reshape(1, net.blobs[name].shape[1], height, width)
        net.reshape()
        for output in net.outputs:
            assert net.blobs[output].shape[2:] == (height, width), (output, height, width)


@pytest.mark.parametrize('model_id', ALL)
def test_crop_offsets_are_the_references(model_id):
    """Crop offsets derived by coord_map equal the reference prototxts' values."""
    param = formats.read_net(generate.NETS / model_id / 'deploy.prototxt')
    crops = {l.name: list(l.crop_param.offset) for l in param.layer if l.type == 'Crop'}
    if 'alexnet' in model_id:
        expected = {'score': 18}
    elif 'googlenet' in model_id:
        expected = {'score': 98}  # our net: conv1 pad 100, 63-wide deconvolution
    elif model_id.startswith('demo-'):
        expected = DEMO_CROPS[_stride(model_id)]
    else:
        expected = CROPS[_stride(model_id)]
    for name, offset in crops.items():
        base = name.replace('_sem', '').replace('_geo', '')
        assert offset == [expected[base]], name
    assert all(l.crop_param.axis == 2 for l in param.layer if l.type == 'Crop')


@pytest.mark.parametrize('model_id', ALL)
def test_fcn_conventions(model_id):
    """Frozen bias-free deconvolutions, zero-initialised scorers, FCN multipliers, dropout."""
    param = formats.read_net(generate.NETS / model_id / 'train.prototxt')
    for layer in param.layer:
        if layer.type == 'Deconvolution':
            assert [p.lr_mult for p in layer.param] == [0]
            assert not layer.convolution_param.bias_term
        if layer.name.startswith('score') and layer.type == 'Convolution':
            assert not layer.convolution_param.HasField('weight_filler')
            assert [(p.lr_mult, p.decay_mult) for p in layer.param] == [(1, 1), (2, 0)]
        if layer.type == 'Dropout':
            expected = 0.4 if 'googlenet' in model_id else 0.5
            assert layer.dropout_param.dropout_ratio == pytest.approx(expected)
        if layer.type == 'SoftmaxWithLoss':
            assert layer.loss_param.ignore_label == 255
            assert layer.loss_param.normalize == MODELS[model_id].normalized
    first_conv = next(l for l in param.layer if l.type == 'Convolution')
    pad = first_pad(DEMO_NET['fc6_size']) if model_id.startswith('demo-') else 100
    assert list(first_conv.convolution_param.pad) == [pad]


def test_paper_layer_names():
    """FCN-8s keeps the paper's layer names, which weights load by."""
    param = formats.read_net(generate.NETS / 'voc-fcn8s' / 'deploy.prototxt')
    names = [l.name for l in param.layer]
    for name in ['conv1_1', 'conv5_3', 'fc6', 'fc7', 'score_fr', 'upscore2', 'score_pool4',
                 'score_pool4c', 'fuse_pool4', 'upscore_pool4', 'score_pool3',
                 'score_pool3c', 'fuse_pool3', 'upscore8', 'score']:
        assert name in names
    atonce = formats.read_net(generate.NETS / 'voc-fcn8s-atonce' / 'deploy.prototxt')
    scales = {l.name: l.scale_param.filler.value for l in atonce.layer if l.type == 'Scale'}
    assert scales == pytest.approx({'scale_pool4': 0.01, 'scale_pool3': 0.0001})


@pytest.mark.parametrize('model_id, million, depth', [
    ('voc-fcn32s', 134, 16), ('voc-fcn-alexnet', 57, 8), ('voc-fcn-googlenet', 6, 22)])
def test_table1_parameters_and_depth(model_id, million, depth):
    """Learnable parameters (lr_mult != 0: the frozen deconvolution is not counted) round to
    Table 1's millions, and the parametric depth to score_fr is its layer count."""
    net = _deploy(model_id)
    assert round(analysis.learnable_parameters(net) / 1e6) == million
    assert analysis.depth(net.param, 'score_fr') == depth


@pytest.mark.parametrize('name, field, fcn, fcn_field', [
    ('vgg16-ilsvrc', 404, 'voc-fcn32s', 404), ('caffenet-ilsvrc', 355, 'voc-fcn-alexnet', 355),
    ('googlenet-ilsvrc', 907, 'voc-fcn-googlenet', 715)])
def test_table1_receptive_field_and_stride(name, field, fcn, fcn_field):
    """Table 1's receptive field is that of the classifier's last input unit; the FCN's
    score_fr units see the same, except GoogLeNet's, whose average pooling is dropped."""
    param = CLASSIFIERS[name]()
    param.state.phase = caffe.TEST
    net = caffe.Net(param)
    shapes = {blob: b.shape for blob, b in net.blobs.items()}
    blob = analysis.classifier_input(param)
    assert analysis.receptive_fields(param, shapes)[blob] == (field, 32)
    fcn_param = formats.read_net(generate.NETS / fcn / 'deploy.prototxt')
    assert analysis.receptive_fields(fcn_param)['score_fr'] == (fcn_field, 32)


@pytest.mark.parametrize('name, count', [('vgg16-ilsvrc', 138357544),
                                         ('caffenet-ilsvrc', 60965224),
                                         ('googlenet-ilsvrc', 6998552)])
def test_classifiers_have_the_published_sizes(name, count):
    """The ImageNet classifiers have their published parameter counts and 1000 outputs."""
    param = CLASSIFIERS[name]()
    param.state.phase = caffe.TEST
    net = caffe.Net(param)
    assert sum(b.count for b in net.learnable_params) == count
    assert net.blobs['prob'].shape[1] == 1000


@pytest.fixture(scope='module')
def datasets(tmp_path_factory):
    """Tiny copies of the five datasets in their real on-disk formats."""
    import dataset_fixtures as fx
    root = tmp_path_factory.mktemp('data')
    from solve import demo_data
    voc2010, context = fx.make_pascal_context(root / 'voc2010', root / 'context')
    return dict(voc=fx.make_voc(root / 'voc'), sbdd=fx.make_sbdd(root / 'sbdd'),
                nyud=fx.make_nyud(root / 'nyud'), siftflow=fx.make_siftflow(root / 'siftflow'),
                voc2010=voc2010, pascal_context=context,
                demo_voc=demo_data.make_segmentation_set(root / 'demo_voc', 2, 2, 40),
                demo_classes=demo_data.make_classification_set(root / 'demo_classes', 2))


@pytest.mark.parametrize('model_id', ALL)
@pytest.mark.parametrize('split', ['train', 'val'])
def test_train_and_val_nets_build_and_run_on_real_formats(model_id, split, datasets,
                                                          monkeypatch):
    """Train and val nets build with their data layers reading the dataset files and run a
    forward pass: scores cover the image, the loss is that of zero scores (log C per pixel)."""
    import dataset_fixtures as fx
    fx.set_dataset_env(monkeypatch, **datasets)
    phase = caffe.TRAIN if split == 'train' else caffe.TEST
    net = caffe.Net(str(generate.NETS / model_id / f'{split}.prototxt'), phase)
    net.forward()
    image = net.blobs[net.bottom_names[net._layer_names[1]][0]].shape
    for name in net.outputs:
        if name.startswith('loss'):
            score = net.bottom_names[net._layer_names[net._layer_names.index(name)]][0]
            assert net.blobs[score].shape[2:] == image[2:]
            label = net.blobs[net.bottom_names[name][1]].data
            valid = int(((label >= 0) & (label < 255)).sum())
            classes = net.blobs[score].shape[1]
            normalizer = valid if MODELS[model_id].normalized else 1
            expected = valid * np.log(classes) / max(normalizer, 1)
            assert float(net.blobs[name].data) == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize('split', ['train', 'val'])
def test_demo_classifier_nets_run_on_the_demo_set(split, datasets, monkeypatch):
    """The demo classifier reads batches of 128 x 128 images and scalar labels; with its
    zero-initialised fc8 the loss is log 5; the val net also reports accuracy."""
    import dataset_fixtures as fx
    fx.set_dataset_env(monkeypatch, **datasets)
    phase = caffe.TRAIN if split == 'train' else caffe.TEST
    net = caffe.Net(str(generate.NETS / 'demo-classifier' / f'{split}.prototxt'), phase)
    out = net.forward()
    batch = net.blobs['data'].shape[0]
    assert net.blobs['data'].shape == (batch, 3, 128, 128)
    assert net.blobs['label'].shape == (batch,) and net.blobs['fc8'].shape == (batch, 5)
    assert net.blobs['pool5'].shape[2:] == (DEMO_NET['fc6_size'],) * 2
    assert float(out['loss']) == pytest.approx(np.log(5), rel=1e-5)
    assert ('accuracy' in out) == (split == 'val')


def test_demo_nets_have_vgg16s_layers():
    """The demo's nets are VGG16's and FCN-8s's layers, names and types, only narrower."""
    def layers(path):
        return [(l.name, l.type) for l in formats.read_net(path).layer]
    assert layers(generate.NETS / 'demo-classifier' / 'deploy.prototxt') == \
        layers(generate.NETS / 'ilsvrc-nets' / 'vgg16-ilsvrc-deploy.prototxt')
    assert layers(generate.NETS / 'demo-fcn8s' / 'deploy.prototxt') == \
        layers(generate.NETS / 'voc-fcn8s' / 'deploy.prototxt')


def test_demo_classifier_transplants_into_demo_fcn32s():
    """Surgery carries the convolutions over and reshapes fc6 (4 x 4 x 64 inputs) and fc7
    into convolutions; fc8 is dropped, the scorers stay at zero."""
    from surgery import transplants
    classifier = caffe.Net(str(generate.NETS / 'demo-classifier' / 'deploy.prototxt'),
                           caffe.TEST)
    for blobs in classifier.params.values():
        for blob in blobs:
            blob.data[...] = np.random.default_rng(0).normal(size=blob.data.shape)
    fcn = _deploy('demo-fcn32s')
    report = transplants.transplant(fcn, classifier, verbose=False)
    assert report.layers(transplants.RESHAPED) == ['fc6', 'fc7']
    assert report.layers(transplants.DROPPED) == ['fc8']
    assert report.layers(transplants.LEFT) == ['score_fr', 'upscore']
    np.testing.assert_array_equal(fcn.params['fc6'][0].data.reshape(256, -1),
                                  classifier.params['fc6'][0].data)


@pytest.mark.parametrize('fc6_size, pad', [(7, 100), (6, 100), (5, 68), (4, 68)])
def test_first_pad_follows_fc6(fc6_size, pad):
    assert first_pad(fc6_size) == pad


@pytest.mark.parametrize('fc6_size', [3, 8, 4.0])
def test_first_pad_refuses_sizes_without_room(fc6_size):
    with pytest.raises(ValueError, match='fc6_size must be an int from 4 to 7'):
        first_pad(fc6_size)


def test_every_recipes_parents_exist_and_fit_its_init_kind():
    """A recipe starts from models of MODELS or converted ILSVRC initialisations, and how
    it starts (its Init) fits them: FILLERS none, FUSION one stream per parent, TRANSPLANT
    a classifier recipe or a converted one, COLOR_D a converted one, COPY a net of its
    own kind (an FCN, or the converted trunk)."""
    from nets.recipe import Init
    from solve.stages import CONVERTED
    for model_id, recipe in MODELS.items():
        assert all(p in MODELS or p in CONVERTED for p in recipe.parents), model_id
        kind = recipe.init
        if kind is Init.FILLERS:
            assert recipe.parents == () and recipe.is_classifier, model_id
        elif kind is Init.FUSION:
            assert len(recipe.parents) == 2 == len(set(recipe.streams)), model_id
            assert all(p in MODELS and not MODELS[p].is_classifier for p in recipe.parents)
        elif kind is Init.TRANSPLANT:
            (parent,) = recipe.parents
            assert parent in CONVERTED or MODELS[parent].is_classifier, model_id
        elif kind is Init.COLOR_D:
            assert recipe.parents[0] in CONVERTED and recipe.modalities == 'color-d', model_id
        else:
            assert kind is Init.COPY and len(recipe.parents) == 1, model_id
            (parent,) = recipe.parents
            assert parent in CONVERTED or not MODELS[parent].is_classifier, model_id


def test_recipe_refuses_parents_that_do_not_fit_its_init():
    """A FUSION recipe with one parent (or a COPY with two) fails where it is written."""
    import dataclasses
    from nets.recipe import Init
    recipe = MODELS['nyud-fcn32s-color-hha']
    with pytest.raises(ValueError, match='FUSION recipe starts from 2 parent'):
        dataclasses.replace(recipe, parents=('nyud-fcn32s-color',))
    with pytest.raises(ValueError, match='COPY recipe starts from 1 parent'):
        dataclasses.replace(recipe, init=Init.COPY)
