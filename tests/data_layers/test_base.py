"""SegDataLayer: param_str schema, split lists, order and the layer contract (through VOC)."""
import os
import random
import re

import numpy as np
import pytest

from backend import caffe
from data_layers.base import DataLayerSetupError
from data_layers.base import (COMMON_KEYS, BadDataError, ParamStrError, SampleMissingError,
                              parse_param_str)
from data_layers.paths import DatasetMissingError
from data_layers.voc import VOC_MEAN, VOCSegDataLayer
from dataset_fixtures import data_net, dataset_env, make_voc, set_dataset_env

IDS = ('a0', 'a1', 'a2', 'a3', 'a4')
VOC = ('data_layers.voc', 'VOCSegDataLayer')


@pytest.fixture
def voc(tmp_path, monkeypatch):
    """Five ids whose labels are constant: id k is labelled k everywhere, to tell them apart."""
    labels = {i: np.full((4, 5), k, dtype=np.uint8) for k, i in enumerate(IDS)}
    root = make_voc(tmp_path / 'voc', ids=IDS, sizes=(4, 5), labels=labels, seed=1,
                    splits={'train': IDS, 'seg11valid': IDS, 'empty': ()})
    set_dataset_env(monkeypatch, voc=root)
    return root


def net_of(tmp_path, param_str, tops=('data', 'label')):
    return data_net(tmp_path, *VOC, param_str, list(tops))


def loaded(net, forwards, top='label'):
    """The positions in the split list of the ids that `forwards` forward passes deliver."""
    return [int(net.forward()[top][0, 0, 0, 0]) for _ in range(forwards)]


def test_parse_reads_fcn_style_dict_strings():
    """A str(dict(...)) as fcn's net.py writes it parses, with defaults filled in."""
    text = str(dict(split='train', seed=1337, randomize=True))
    params = parse_param_str(text, VOCSegDataLayer.schema(), 'w', 'e')
    assert params == {'split': 'train', 'seed': 1337, 'randomize': True, 'mean': VOC_MEAN}


def test_parse_seed_defaults_to_none():
    """seed is optional and defaults to None (sequential layers do not need one)."""
    params = parse_param_str("{'split': 'val', 'randomize': False}", COMMON_KEYS, 'w', 'e')
    assert params['seed'] is None


def test_catch_unknown_key(tmp_path, voc):
    """An unknown key raises ParamStrError naming the layer, the key and the allowed keys."""
    with pytest.raises(ParamStrError, match=r'layer "data" \(VOCSegDataLayer\): param_str has '
                                            r"the unknown key 'flip'.*Allowed keys: split.*"
                                            r'Example'):
        net_of(tmp_path, "{'split': 'train', 'randomize': False, 'flip': True}")


def test_catch_dataset_dir_key(tmp_path, voc):
    """The reference's voc_dir key is refused with a pointer to FCN_<NAME>_DIR."""
    with pytest.raises(ParamStrError, match=r"unknown key 'voc_dir'.*FCN_<NAME>_DIR"):
        net_of(tmp_path, "{'voc_dir': '/x', 'split': 'train', 'randomize': False}")


def test_catch_missing_key(tmp_path, voc):
    """A missing required key (randomize: never inferred from the split) is named."""
    with pytest.raises(ParamStrError, match=r"lacks the required key 'randomize'"):
        net_of(tmp_path, "{'split': 'train', 'seed': 1337}")


def test_catch_empty_param_str(tmp_path, voc):
    """An empty param_str lacks the required split."""
    with pytest.raises(ParamStrError, match=r"lacks the required key 'split'"):
        net_of(tmp_path, '')


def test_catch_not_a_dict_literal(tmp_path, voc):
    """A call such as dict(...) is not a literal and is refused."""
    with pytest.raises(ParamStrError, match=r'is not a Python dict literal'):
        net_of(tmp_path, "dict(split='train', randomize=False)")


def test_catch_not_a_dict(tmp_path, voc):
    """A literal that is not a dict is refused, naming its type."""
    with pytest.raises(ParamStrError, match=r'is a list, not a dict'):
        net_of(tmp_path, "['train']")


def test_catch_code_injection_is_not_executed(tmp_path, voc, monkeypatch):
    """Code in param_str is rejected by the parser and never runs."""
    marker = tmp_path / 'executed'
    monkeypatch.chdir(tmp_path)
    for text in ("__import__('os').system('touch executed')",
                 "{'split': open('executed', 'w').name, 'randomize': False}"):
        with pytest.raises(ParamStrError, match=r'not a Python dict literal.*nothing in it is '
                                                r'evaluated'):
            net_of(tmp_path, text)
    assert not marker.exists()


def test_catch_wrong_type(tmp_path, voc):
    """A value of the wrong type names the key, the value and what it must be."""
    with pytest.raises(ParamStrError, match=r"has randomize='yes', but randomize must be True"):
        net_of(tmp_path, "{'split': 'train', 'randomize': 'yes', 'seed': 1}")


def test_catch_bad_mean(tmp_path, voc):
    """A mean that is not three numbers is refused."""
    with pytest.raises(ParamStrError, match=r'mean must be three numbers'):
        net_of(tmp_path, "{'split': 'train', 'randomize': False, 'mean': (1, 2)}")


def test_catch_randomize_without_seed(tmp_path, voc):
    """randomize=True without a seed is refused: the order must be reproducible."""
    with pytest.raises(ParamStrError, match=r"randomize=True but no seed"):
        net_of(tmp_path, "{'split': 'train', 'randomize': True}")


def test_sequential_order_wraps(tmp_path, voc):
    """Without randomize the ids come in list order from the first, wrapping at the end."""
    net = net_of(tmp_path, "{'split': 'train', 'randomize': False, 'seed': 3}")
    assert loaded(net, 12) == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1]


def test_random_order_is_the_references_draws(tmp_path, voc):
    """With randomize: a start drawn at setup, then randint(0, n-1) per forward, as
    random.Random(seed) draws them (so with replacement)."""
    net = net_of(tmp_path, "{'split': 'train', 'randomize': True, 'seed': 1337}")
    rng = random.Random(1337)
    expected = [rng.randint(0, len(IDS) - 1) for _ in range(30)]
    got = loaded(net, 30)
    assert got == expected
    assert any(a == b for a, b in zip(got, got[1:]))  # with replacement: repeats happen


def test_same_seed_same_order(tmp_path, voc):
    """Two nets with the same seed deliver the same ids; another seed another order."""
    first = loaded(net_of(tmp_path, "{'split': 'train', 'randomize': True, 'seed': 7}"), 20)
    again = loaded(net_of(tmp_path, "{'split': 'train', 'randomize': True, 'seed': 7}"), 20)
    other = loaded(net_of(tmp_path, "{'split': 'train', 'randomize': True, 'seed': 8}"), 20)
    assert first == again != other


def test_layers_do_not_share_random_state(tmp_path, voc):
    """Two random layers in one net draw independently, and the global RNG is untouched."""
    param_str = "{'split': 'train', 'randomize': True, 'seed': 5}"
    text = ''.join(f'layer {{ name: "{n}" type: "Python" top: "{n}_data" top: "{n}_label" '
                   f'python_param {{ module: "data_layers.voc" layer: "VOCSegDataLayer" '
                   f'param_str: "{param_str}" }} }}\n' for n in ('a', 'b'))
    (tmp_path / 'two.prototxt').write_text(text)
    random.seed(0)
    state = random.getstate()
    net = caffe.Net(str(tmp_path / 'two.prototxt'), caffe.TRAIN)
    for _ in range(10):
        out = net.forward()
        assert out['a_label'][0, 0, 0, 0] == out['b_label'][0, 0, 0, 0]
    assert random.getstate() == state


def test_order_is_not_inferred_from_the_split_name(tmp_path, voc):
    """A test split with randomize=True is random; a train split with randomize=False is
    sequential (the reference forced sequential when 'train' was not in the name)."""
    rng = random.Random(2)
    expected = [rng.randint(0, len(IDS) - 1) for _ in range(10)]
    net = net_of(tmp_path, "{'split': 'seg11valid', 'randomize': True, 'seed': 2}")
    assert loaded(net, 10) == expected
    net = net_of(tmp_path, "{'split': 'train', 'randomize': False}")
    assert loaded(net, 3) == [0, 1, 2]


def test_tops_keep_native_size(tmp_path, monkeypatch):
    """Each forward reshapes the tops to 1 x C x H x W of its own image."""
    sizes = {'s0': (4, 6), 's1': (7, 3)}
    set_dataset_env(monkeypatch, voc=make_voc(tmp_path / 'v', ids=tuple(sizes), sizes=sizes))
    net = net_of(tmp_path, "{'split': 'train', 'randomize': False}")
    for h, w in [(4, 6), (7, 3), (4, 6)]:
        out = net.forward()
        assert out['data'].shape == (1, 3, h, w) and out['label'].shape == (1, 1, h, w)


def test_backward_does_nothing(tmp_path, voc):
    """backward leaves the tops alone and needs no bottoms."""
    net = net_of(tmp_path, "{'split': 'train', 'randomize': False}")
    data = net.forward()['data'].copy()
    net.layers[0].backward(net.top_vecs[0], [], [])
    np.testing.assert_array_equal(net.blobs['data'].data, data)


def test_catch_bottom(tmp_path, voc):
    """A data layer given a bottom blob refuses it."""
    (tmp_path / 'b.prototxt').write_text(
        'input: "x" input_shape { dim: 1 }\n'
        'layer { name: "data" type: "Python" bottom: "x" top: "data" top: "label" '
        'python_param { module: "data_layers.voc" layer: "VOCSegDataLayer" '
        'param_str: "{\'split\': \'train\', \'randomize\': False}" } }\n')
    with pytest.raises(DataLayerSetupError, match=r'takes no bottom blobs, got 1'):
        caffe.Net(str(tmp_path / 'b.prototxt'), caffe.TRAIN)


def test_catch_wrong_top_count(tmp_path, voc):
    """Declaring a number of tops other than the layer's is refused, listing them."""
    with pytest.raises(DataLayerSetupError, match=r'produces 2 top\(s\) \(data, label\).*but 3'):
        net_of(tmp_path, "{'split': 'train', 'randomize': False}", ('data', 'label', 'x'))


def test_catch_missing_dataset_folder(tmp_path, monkeypatch):
    """A dataset folder that is not there says where it looked and how to get the data."""
    set_dataset_env(monkeypatch, voc=tmp_path / 'nowhere')
    with pytest.raises(DatasetMissingError, match=r'layer "data".*dataset "voc" not found at '
                                                  r'.*nowhere.*FCN_VOC_DIR'):
        net_of(tmp_path, "{'split': 'train', 'randomize': False}")


def test_catch_missing_split_list(tmp_path, voc):
    """An unknown split names the list it looked for, the lists there and how to get them."""
    pattern = (r'no list for split "trainval" at .*' + re.escape('trainval.txt') +
               r' \(split lists there: empty, seg11valid, train\).*python -m data_layers.fetch voc')
    with pytest.raises(DatasetMissingError, match=pattern):
        net_of(tmp_path, "{'split': 'trainval', 'randomize': False}")


def test_catch_empty_split_list(tmp_path, voc):
    """An empty split list is refused, naming the file."""
    with pytest.raises(BadDataError, match=r'split list .*empty\.txt is empty'):
        net_of(tmp_path, "{'split': 'empty', 'randomize': False}")


def test_dataset_env_sets_and_restores(tmp_path, monkeypatch):
    """The fixtures' dataset_env points FCN_<NAME>_DIR at a folder inside the block only."""
    monkeypatch.delenv('FCN_NYUD_DIR', raising=False)
    with dataset_env(nyud=tmp_path):
        assert os.environ['FCN_NYUD_DIR'] == str(tmp_path)
    assert 'FCN_NYUD_DIR' not in os.environ


@pytest.mark.parametrize('split', ['x' * 10_000_000, 'a/b', '../train', '..', ' train',
                                   'tr\0ain'])
def test_catch_split_names_that_are_no_file_names(tmp_path, voc, split):
    """A 10 MB split name gave a raw OSError (file name too long); a split with "/" could
    name a list elsewhere: both are refused as param_str errors."""
    with pytest.raises(ParamStrError, match=r'has split=.*but split must be the name of a '
                                            r'split list'):
        data_net(tmp_path, 'data_layers.voc', 'VOCSegDataLayer',
                 f"{{'split': {split!r}, 'randomize': False}}", ['data', 'label'])


def test_catch_repeated_param_str_key(tmp_path, voc):
    """A dict literal keeps the last of two equal keys silently; the layer refuses it."""
    with pytest.raises(ParamStrError, match=r"gives the key 'split' more than once"):
        data_net(tmp_path, 'data_layers.voc', 'VOCSegDataLayer',
                 "{'split': 'seg11valid', 'randomize': False, 'split': 'train'}",
                 ['data', 'label'])


def test_catch_folder_where_an_image_belongs(tmp_path, voc):
    """A folder named like the image is not "missing": the message says what it is."""
    image = voc / 'JPEGImages' / f'{IDS[0]}.jpg'
    image.unlink()
    image.mkdir()
    with pytest.raises(SampleMissingError, match=rf'{IDS[0]}\.jpg is a folder, not a file'):
        data_net(tmp_path, 'data_layers.voc', 'VOCSegDataLayer',
                 "{'split': 'seg11valid', 'randomize': False}", ['data', 'label']).forward()
