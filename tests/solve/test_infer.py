"""solve.infer: any image size, label PNGs and overlays, folders, several inputs and heads."""
import numpy as np
import pytest
from PIL import Image

from backend import caffe
from caffe_torch import coord_map, layers as L, params as P, NetSpec
from data_layers import voc
from solve import infer


def tiny_fcn(path, inputs=('data',), heads=(('score', 21),)):
    """A small FCN-shaped deploy net (conv, pool /2, 1x1 scorer, deconv x2, crop) written
    to `path`, with random (seeded) weights saved beside it; returns the weights' path."""
    n = NetSpec()
    for name in inputs:
        n[name] = L.Input(shape=dict(dim=[1, 3, 8, 8]))
    first = n[inputs[0]]
    bottom = first if len(inputs) == 1 else L.Concat(*[n[name] for name in inputs])
    n.conv1 = L.Convolution(bottom, num_output=4, kernel_size=3, pad=1,
                            weight_filler=dict(type='gaussian', std=0.1))
    n.pool1 = L.Pooling(n.conv1, pool=P.Pooling.MAX, kernel_size=2, stride=2)
    for head, classes in heads:
        suffix = head[len('score'):]
        n['score_fr' + suffix] = L.Convolution(n.pool1, num_output=classes, kernel_size=1,
                                               weight_filler=dict(type='gaussian', std=1))
        n['upscore' + suffix] = L.Deconvolution(
            n['score_fr' + suffix], convolution_param=dict(
                num_output=classes, kernel_size=4, stride=2, bias_term=False,
                weight_filler=dict(type='gaussian', std=1)))
        n[head] = coord_map.crop(n['upscore' + suffix], first)
    path.write_text(str(n.to_proto()))
    caffe.set_random_seed(1)
    weights = path.with_suffix('.caffemodel')
    caffe.Net(str(path), caffe.TEST).save(str(weights))
    return weights


def write_images(folder, sizes, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name, (h, w) in sizes.items():
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / name)
    return folder


def run(argv):
    return infer.main(infer.get_args_parser().parse_args([str(a) for a in argv]))


@pytest.fixture
def no_weights(tmp_path, monkeypatch):
    """No released weights and no training output are found."""
    monkeypatch.setenv('FCN_WEIGHTS', str(tmp_path / 'no-weights'))
    monkeypatch.setenv('FCN_OUT', str(tmp_path / 'no-out'))


def test_odd_sizes_and_a_folder(tmp_path):
    """Every image of a folder, odd sizes included, gets a label PNG and an overlay of its size."""
    net = tmp_path / 'deploy.prototxt'
    weights = tiny_fcn(net)
    images = write_images(tmp_path / 'images', {'a.png': (37, 53), 'b.jpg': (1, 1),
                                                'c.png': (64, 31)})
    out = tmp_path / 'out'
    assert run(['--model', 'voc-fcn8s', '--net', net, '--weights', weights, images,
                '--out', out]) == 0
    for stem, (h, w) in {'a': (37, 53), 'b': (1, 1), 'c': (64, 31)}.items():
        with Image.open(out / f'{stem}.png') as png:
            assert png.mode == 'P' and png.size == (w, h)
            assert np.array(png).max() < 21
        with Image.open(out / f'{stem}_overlay.png') as overlay:
            assert overlay.size == (w, h) and overlay.mode == 'RGB'


def test_labels_are_the_argmax_of_the_mean_subtracted_bgr_image(tmp_path):
    """The PNG holds the argmax of the net on BGR minus the VOC data layer's mean."""
    net_path = tmp_path / 'deploy.prototxt'
    weights = tiny_fcn(net_path)
    write_images(tmp_path, {'x.png': (37, 53)}, seed=3)
    assert run(['--model', 'voc-fcn32s', '--net', net_path, '--weights', weights,
                tmp_path / 'x.png', '--out', tmp_path / 'out']) == 0
    rgb = np.array(Image.open(tmp_path / 'x.png'), dtype=np.float32)
    image = (rgb[:, :, ::-1] - np.float32(voc.VOC_MEAN)).transpose(2, 0, 1)
    net = caffe.Net(str(net_path), caffe.TEST, weights=str(weights))
    net.blobs['data'].reshape(1, *image.shape)
    net.blobs['data'].data[...] = image
    net.forward()
    expected = net.blobs['score'].data[0].argmax(axis=0)
    np.testing.assert_array_equal(np.array(Image.open(tmp_path / 'out' / 'x.png')), expected)


def test_histogram_names_the_classes(tmp_path, capsys):
    """--histogram prints pixel counts per class under VOC's class names."""
    net = tmp_path / 'deploy.prototxt'
    weights = tiny_fcn(net)
    write_images(tmp_path, {'x.png': (20, 30)})
    assert run(['--model', 'voc-fcn8s', '--net', net, '--weights', weights,
                tmp_path / 'x.png', '--out', tmp_path / 'out', '--histogram']) == 0
    printed = capsys.readouterr().out
    assert 'x score: 600 pixels' in printed
    counts = [int(line.split()[-2]) for line in printed.splitlines() if line.startswith('  ')]
    assert sum(counts) == 600
    names = {line.split()[0] for line in printed.splitlines() if line.startswith('  ')}
    assert names <= {'background', 'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus',
                     'car', 'cat', 'chair', 'cow', 'diningtable', 'dog', 'horse', 'motorbike',
                     'person', 'pottedplant', 'sheep', 'sofa', 'train', 'tvmonitor'}


def test_two_heads_write_both(tmp_path):
    """A SIFT Flow net's semantic and geometric heads each get a PNG and an overlay."""
    net = tmp_path / 'deploy.prototxt'
    weights = tiny_fcn(net, heads=(('score_sem', 33), ('score_geo', 3)))
    write_images(tmp_path, {'coast.png': (25, 19)})
    assert run(['--model', 'siftflow-fcn16s', '--net', net, '--weights', weights,
                tmp_path / 'coast.png', '--out', tmp_path / 'out']) == 0
    names = sorted(p.name for p in (tmp_path / 'out').iterdir())
    assert names == ['coast_geo.png', 'coast_geo_overlay.png', 'coast_sem.png',
                     'coast_sem_overlay.png']
    assert np.array(Image.open(tmp_path / 'out' / 'coast_geo.png')).max() < 3


def test_extra_input_from_a_folder(tmp_path):
    """NYUD color-hha takes HHA images by file stem from --extra hha=FOLDER."""
    net = tmp_path / 'deploy.prototxt'
    weights = tiny_fcn(net, inputs=('color', 'hha'), heads=(('score', 40),))
    sizes = {'img_5001.png': (21, 17), 'img_5002.png': (9, 12)}
    color = write_images(tmp_path / 'color', sizes, seed=1)
    hha = write_images(tmp_path / 'hha', sizes, seed=2)
    assert run(['--model', 'nyud-fcn32s-color-hha', '--net', net, '--weights', weights,
                color, '--extra', f'hha={hha}', '--out', tmp_path / 'out']) == 0
    with Image.open(tmp_path / 'out' / 'img_5002.png') as png:
        assert png.size == (12, 9)


def test_catch_missing_extra_input(tmp_path, capsys):
    """A two-input net without --extra exits 2 naming the input to give."""
    net = tmp_path / 'deploy.prototxt'
    weights = tiny_fcn(net, inputs=('color', 'hha'), heads=(('score', 40),))
    write_images(tmp_path, {'x.png': (9, 9)})
    assert run(['--model', 'nyud-fcn32s-color-hha', '--net', net, '--weights', weights,
                tmp_path / 'x.png', '--out', tmp_path / 'out']) == 2
    assert '--extra hha=FILE_OR_FOLDER' in capsys.readouterr().err


def test_catch_extra_input_of_another_size(tmp_path, capsys):
    """Inputs of one image must share its size."""
    net = tmp_path / 'deploy.prototxt'
    weights = tiny_fcn(net, inputs=('color', 'hha'), heads=(('score', 40),))
    write_images(tmp_path / 'c', {'x.png': (9, 9)})
    write_images(tmp_path / 'h', {'x.png': (9, 10)})
    assert run(['--model', 'nyud-fcn32s-color-hha', '--net', net, '--weights', weights,
                tmp_path / 'c' / 'x.png', '--extra', f'hha={tmp_path / "h" / "x.png"}',
                '--out', tmp_path / 'out']) == 2
    assert 'differ in size' in capsys.readouterr().err


def test_catch_missing_weights(tmp_path, capsys, no_weights):
    """Without weights, the message says how to download the release or train the model."""
    write_images(tmp_path, {'x.png': (9, 9)})
    assert run(['--model', 'voc-fcn8s', tmp_path / 'x.png', '--out', tmp_path / 'out']) == 2
    err = capsys.readouterr().err
    assert 'python -m weights.download fcn8s-heavy-pascal' in err
    assert str(tmp_path / 'no-out' / 'voc-fcn8s' / 'voc-fcn8s.caffemodel') in err
    assert 'Traceback' not in err


def test_default_weights_fall_back_to_the_trained_stage(tmp_path, no_weights):
    """Without a release file, the pipeline's <out>/<model>/<model>.caffemodel is used."""
    net = tmp_path / 'deploy.prototxt'
    weights = tiny_fcn(net)
    stage = tmp_path / 'no-out' / 'voc-fcn8s'
    stage.mkdir(parents=True)
    weights.rename(stage / 'voc-fcn8s.caffemodel')
    write_images(tmp_path, {'x.png': (9, 9)})
    assert run(['--model', 'voc-fcn8s', '--net', net, tmp_path / 'x.png',
                '--out', tmp_path / 'out']) == 0
    assert (tmp_path / 'out' / 'x.png').is_file()


def test_catch_no_images(tmp_path, capsys):
    """A folder without images exits 2 with the suffixes looked for."""
    (tmp_path / 'empty').mkdir()
    assert run(['--model', 'voc-fcn8s', '--weights', tmp_path / 'w.caffemodel',
                tmp_path / 'empty', '--out', tmp_path / 'out']) == 2
    assert 'no images' in capsys.readouterr().err


def test_help_needs_no_data(capsys):
    """--help works without data, weights or a GPU, and shows an example."""
    with pytest.raises(SystemExit) as exit_:
        infer.get_args_parser().parse_args(['--help'])
    assert exit_.value.code == 0
    assert 'python -m solve.infer --model voc-fcn8s' in capsys.readouterr().out


def test_inputs_are_prepared_as_the_data_layer_prepares_them(tmp_path, monkeypatch):
    """For every dataset with a plain 'data' top, infer's input equals the test data layer's
    top for the same file: mean and the demo's scale (1/64) included."""
    from dataset_fixtures import data_net, set_dataset_env
    from nets.datasets import DATASETS
    from solve import demo_data
    root = demo_data.make_segmentation_set(tmp_path / 'demo', n_train=1, n_val=1, size=24)
    set_dataset_env(monkeypatch, demo_voc=root)
    spec = DATASETS['demo_voc']
    param_str = str(dict(split='val', randomize=False, **spec['extra']))
    net = data_net(tmp_path, spec['module'], spec['val'][0], param_str, ['data', 'label'])
    image = root / 'JPEGImages' / 'demo_val_0000.jpg'
    prepared = infer.preparers('demo_voc')['data'](image)
    np.testing.assert_allclose(prepared, net.forward()['data'][0], rtol=1e-6, atol=1e-6)
    assert abs(prepared).max() < 4  # scaled: raw BGR minus the mean reaches ~100


def test_catch_an_image_too_large_for_pillow(tmp_path, capsys, monkeypatch):
    """An image over Pillow's decompression-bomb limit is an error message, not a crash."""
    weights = tiny_fcn(tmp_path / 'deploy.prototxt')
    write_images(tmp_path / 'images', {'big.png': (8, 8)})
    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 10)  # 64 pixels > 2 x 10
    assert run(['--model', 'voc-fcn8s', '--net', str(tmp_path / 'deploy.prototxt'),
                '--weights', str(weights), str(tmp_path / 'images'),
                '--out', str(tmp_path / 'out')]) == 2
    assert 'decompression bomb; downscale the image' in capsys.readouterr().err


def test_overlay_colours_label_0_where_it_is_a_class(tmp_path):
    """NYUD's label 0 is wall: coloured in the overlay, and not black in the label PNG's
    palette; VOC's 0 is background: the overlay keeps the image there."""
    rgb = np.full((2, 3, 3), 200, np.uint8)
    seg = np.array([[0, 0, 1], [0, 1, 1]])
    for dataset, changed in (('nyud', True), ('voc', False)):
        palette = infer.make_palette('dataset', dataset)
        out = tmp_path / dataset
        out.mkdir()
        infer.save_outputs(out, 'x', rgb, {'score': seg}, palette,
                           background=0 if dataset == 'voc' else None)
        overlay = np.array(Image.open(out / 'x_overlay.png'))
        assert (overlay[0, 0] != 200).any() == changed
        assert (overlay[0, 2] != 200).any()
    assert tuple(infer.make_palette('dataset', 'nyud')[0]) == (128, 0, 0)
    assert tuple(infer.make_palette('dataset', 'voc')[0]) == (0, 0, 0)


def test_catch_weights_that_leave_layers_at_their_fillers(tmp_path, capsys):
    """A caffemodel cut at a layer boundary parses as a smaller net, and one of another
    model shares no layer name: Caffe's copy_from fills nothing silently, infer refuses."""
    from caffe_torch import formats
    net = tmp_path / 'deploy.prototxt'
    weights = tiny_fcn(net)
    param = formats.read_net_binary(weights)
    del param.layer[5:]  # data, its split, conv1, pool1, score_fr kept: upscore lost
    formats.write_binaryproto(param, tmp_path / 'cut.caffemodel')
    for layer in param.layer:
        layer.name += '_other'
    formats.write_binaryproto(param, tmp_path / 'other.caffemodel')
    images = write_images(tmp_path / 'images', {'a.png': (8, 8)})
    for name, missing in (('cut', '1 of the net\'s 3 layers with parameters (upscore)'),
                          ('other', '3 of the net\'s 3 layers')):
        assert run(['--model', 'voc-fcn8s', '--net', net, '--weights',
                    tmp_path / f'{name}.caffemodel', images, '--out', tmp_path / name]) == 2
        err = capsys.readouterr().err
        assert f'has no weights for {missing}' in err and 'truncated or of another' in err
        assert not (tmp_path / name / 'a.png').exists()


def test_catch_an_image_over_max_pixels(tmp_path, capsys):
    """An image whose forward would not fit in memory is refused before the forward."""
    net = tmp_path / 'deploy.prototxt'
    weights = tiny_fcn(net)
    images = write_images(tmp_path / 'images', {'big.png': (30, 40)})
    assert run(['--model', 'voc-fcn8s', '--net', net, '--weights', weights, images,
                '--out', tmp_path / 'out', '--max-pixels', '1000']) == 2
    err = capsys.readouterr().err
    assert 'is 40 x 30 = 1200 pixels, more than --max-pixels 1000' in err
    assert 'Downscale it' in err


def test_catch_a_net_without_inputs(tmp_path, capsys):
    net = tmp_path / 'empty.prototxt'
    net.write_text('name: "empty"\n')
    weights = tiny_fcn(tmp_path / 'deploy.prototxt')
    images = write_images(tmp_path / 'images', {'a.png': (8, 8)})
    assert run(['--model', 'voc-fcn8s', '--net', net, '--weights', weights, images,
                '--out', tmp_path / 'out']) == 2
    assert 'has no input blob (no Input layer)' in capsys.readouterr().err


@pytest.mark.parametrize('suffix', ['.caffemodel', '.h5'])
def test_catch_weights_holding_nan(tmp_path, capsys, suffix):
    """Weights with a NaN (a diverged run; binary or HDF5) gave exit 0 and NaN-made
    segmentations; infer refuses them naming the layer and the param."""
    net_path = tmp_path / 'deploy.prototxt'
    net = caffe.Net(str(net_path), caffe.TEST, weights=str(tiny_fcn(net_path)))
    net.params['score_fr'][0].data[0, 0, 0, 0] = np.nan
    weights = tmp_path / f'nan{suffix}'
    net.save_hdf5(str(weights)) if suffix == '.h5' else net.save(str(weights))
    images = write_images(tmp_path / 'images', {'a.png': (8, 8)})
    assert run(['--model', 'voc-fcn8s', '--net', net_path, '--weights', weights, images,
                '--out', tmp_path / 'out']) == 2
    err = capsys.readouterr().err
    assert 'param 0 of layer "score_fr" holds 1 NaN or infinite value(s)' in err
    assert not (tmp_path / 'out' / 'a.png').exists()


def test_catch_weights_that_are_a_folder(tmp_path, capsys):
    (tmp_path / 'w.caffemodel').mkdir()
    images = write_images(tmp_path / 'images', {'a.png': (8, 8)})
    assert run(['--model', 'voc-fcn8s', '--weights', tmp_path / 'w.caffemodel', images,
                '--out', tmp_path / 'out']) == 2
    assert 'w.caffemodel is a folder, not a file' in capsys.readouterr().err


def test_a_bad_image_is_listed_and_the_others_segmented(tmp_path, capsys):
    """The 2nd of 3 images is corrupt: the 1st and 3rd are segmented, the 2nd is named,
    and the exit status says something failed."""
    net = tmp_path / 'deploy.prototxt'
    weights = tiny_fcn(net)
    images = write_images(tmp_path / 'images', {'a.png': (8, 8), 'b.png': (8, 8),
                                                 'c.png': (6, 10)})
    (images / 'b.png').write_bytes((images / 'b.png').read_bytes()[:40])
    out = tmp_path / 'out'
    assert run(['--model', 'voc-fcn8s', '--net', net, '--weights', weights, images,
                '--out', out]) == 2
    captured = capsys.readouterr()
    assert (out / 'a.png').exists() and (out / 'c.png').exists()
    assert not (out / 'b.png').exists()
    assert 'wrote 2 segmentation(s)' in captured.out
    assert '1 of 3 image(s) could not be segmented' in captured.err and 'b.png' in captured.err
