"""The committed train/val nets equal the reference implementation's, layer by layer.

tests/nets/reference_nets.py rebuilds what shelhamer/fcn.berkeleyvision.org's net.py
scripts write; each layer must match ours in name, type, bottoms, tops, phase rules and
every parameter (protobuf equality, so a field set to its default counts as set). Only
the data layer's python_param differs by design (our modules, splits and options).
"""
import difflib
import importlib.util
import pathlib

import pytest
from google.protobuf import text_format

from caffe_torch import formats
from caffe_torch.proto import caffe_pb2
from nets.generate import NETS

# tests/nets is not on sys.path (only tests/ is): load the sibling module by its path
_SPEC = importlib.util.spec_from_file_location(
    'reference_nets', pathlib.Path(__file__).with_name('reference_nets.py'))
reference_nets = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(reference_nets)
BUILDERS, reference_net = reference_nets.BUILDERS, reference_nets.reference_net

def _cases():
    for model_id in BUILDERS:
        for which in ('train', 'val'):
            yield pytest.param(model_id, which, id=f'{model_id}-{which}')


def _comparable(layer):
    copy = caffe_pb2.LayerParameter()
    copy.CopyFrom(layer)
    copy.ClearField('python_param')
    return copy


def _text(message):
    return text_format.MessageToString(message).splitlines()


def _diff(a, b, ours='ours', theirs='reference'):
    return '\n'.join(difflib.unified_diff(_text(a), _text(b), ours, theirs, lineterm=''))


@pytest.mark.parametrize('model_id, which', list(_cases()))
def test_net_equals_the_references(model_id, which, tmp_path):
    ours = formats.read_net(NETS / model_id / f'{which}.prototxt')
    # the reference net as Caffe would read its prototxt: written, parsed, upgraded
    path = tmp_path / 'reference.prototxt'
    path.write_text(str(reference_net(model_id, which)))
    ref = formats.read_net(path)

    names = [layer.name for layer in ours.layer], [layer.name for layer in ref.layer]
    assert names[0] == names[1], 'layer names differ:\n' + '\n'.join(
        difflib.unified_diff(*names, 'ours', 'reference', lineterm=''))

    problems = [f'layer {a.name}:\n{_diff(_comparable(a), _comparable(b))}'
                for a, b in zip(ours.layer, ref.layer) if _comparable(a) != _comparable(b)]
    net_ours, net_ref = caffe_pb2.NetParameter(), caffe_pb2.NetParameter()
    net_ours.CopyFrom(ours)
    net_ref.CopyFrom(ref)
    for net in (net_ours, net_ref):
        net.ClearField('layer')
    if net_ours != net_ref:
        problems.append(f'net-level fields:\n{_diff(net_ours, net_ref)}')
    assert not problems, f'{model_id} {which} differs from the reference:\n' + '\n'.join(
        problems)


def test_data_layer_is_the_only_python_layer():
    """python_param is set aside above; make sure it is only ever the data layer's."""
    for model_id in BUILDERS:
        for which in ('train', 'val'):
            for net in (formats.read_net(NETS / model_id / f'{which}.prototxt'),
                        reference_net(model_id, which)):
                python = [layer.name for layer in net.layer if layer.type == 'Python']
                assert python == [net.layer[0].name], (model_id, which, python)
