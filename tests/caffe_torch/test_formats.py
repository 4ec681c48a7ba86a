"""Reading and writing Caffe's files: round trips, atomic writes and the error messages."""
import os

import pytest

from caffe_torch import formats
from caffe_torch.errors import CaffemodelError, PrototxtError
from caffe_torch.proto import caffe_pb2

NET = '''name: "tiny"
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: 1 dim: 1 dim: 4 dim: 4 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 2 kernel_size: 3 } }
'''


def _weights():
    net = caffe_pb2.NetParameter(name='tiny')
    layer = net.layer.add(name='conv', type='Convolution')
    layer.blobs.add(shape=caffe_pb2.BlobShape(dim=[2, 1, 3, 3]), data=[0.5] * 18)
    return net


def test_prototxt_round_trip(tmp_path):
    """A net written as prototxt reads back equal."""
    net = formats.parse_prototxt(NET, caffe_pb2.NetParameter())
    formats.write_prototxt(net, tmp_path / 'net.prototxt')
    assert formats.read_net(tmp_path / 'net.prototxt') == net


def test_caffemodel_round_trip(tmp_path):
    """A caffemodel written in binary reads back equal, blob values included."""
    formats.write_binaryproto(_weights(), tmp_path / 'w.caffemodel')
    assert formats.read_net_binary(tmp_path / 'w.caffemodel') == _weights()


def test_golden_solver_reads(golden):
    """Solver prototxts written for real Caffe read as SolverParameter."""
    solver = formats.read_solver(golden / 'tiny_fcn' / 'solver_adam.prototxt')
    assert solver.type == 'Adam'


def test_atomic_write_keeps_old_file_on_crash(tmp_path, monkeypatch):
    """A write that fails before the rename leaves the previous file and no temporary."""
    path = tmp_path / 'w.caffemodel'
    formats.write_binaryproto(_weights(), path)
    before = path.read_bytes()

    def crash(src, dst):
        raise KeyboardInterrupt('killed during the write')
    monkeypatch.setattr(os, 'replace', crash)
    with pytest.raises(KeyboardInterrupt):
        formats.write_binaryproto(caffe_pb2.NetParameter(name='other'), path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ['w.caffemodel']


def test_catch_syntax_error_with_line_and_column(tmp_path):
    """A prototxt syntax error names the file, line and column."""
    path = tmp_path / 'bad.prototxt'
    path.write_text('name: "x"\nlayer {\n  name: "a"\n  type: "ReLU"\n')
    with pytest.raises(PrototxtError, match=r'bad\.prototxt:4:9: cannot parse NetParameter: Expected "}"; fix'):
        formats.read_net(path)


def test_catch_missing_closing_brace_says_so(tmp_path):
    """A layer left open makes the next `layer` look like a field of LayerParameter: the
    message points at the missing brace instead of listing LayerParameter's 80 fields."""
    path = tmp_path / 'open.prototxt'
    path.write_text('layer { name: "a" type: "Input" top: "a"\n'
                    'layer { name: "b" type: "ReLU" bottom: "a" top: "b" }\n')
    with pytest.raises(PrototxtError) as caught:
        formats.read_net(path)
    message = str(caught.value)
    assert 'open.prototxt:2:' in message
    assert 'is a closing "}" missing above this line?' in message
    assert 'bottom_mrs' not in message and len(message) < 300


def test_catch_unknown_field_suggests_the_right_one(tmp_path):
    """An unknown field names its message and suggests the closest real field."""
    path = tmp_path / 'typo.prototxt'
    path.write_text('layer { name: "c" type: "Convolution"\n'
                    '  convolution_param { num_output: 2 kernal_size: 3 } }\n')
    with pytest.raises(PrototxtError, match=r'typo\.prototxt:2:.*ConvolutionParameter.*'
                                            r'"kernal_size".*did you mean \'kernel_size\''):
        formats.read_net(path)


def test_catch_bad_enum_value(tmp_path):
    """A wrong enum value is reported at its position."""
    path = tmp_path / 'enum.prototxt'
    path.write_text('layer { name: "p" type: "Pooling" pooling_param { pool: MEDIAN } }')
    with pytest.raises(PrototxtError, match=r'enum\.prototxt:1:.*MEDIAN'):
        formats.read_net(path)


def test_catch_truncated_caffemodel(tmp_path):
    """A caffemodel cut short is refused, with its size and what to do."""
    data = _weights().SerializeToString()
    path = tmp_path / 'cut.caffemodel'
    path.write_bytes(data[:len(data) - 7])
    with pytest.raises(CaffemodelError, match=r'cut\.caffemodel: not a valid binary '
                                              r'NetParameter .*truncated'):
        formats.read_net_binary(path)


def test_catch_prototxt_given_as_caffemodel(tmp_path):
    """A text file passed where a caffemodel is expected is refused."""
    path = tmp_path / 'net.caffemodel'
    path.write_text(NET)
    with pytest.raises(CaffemodelError, match=r'net\.caffemodel'):
        formats.read_net_binary(path)


def test_catch_caffemodel_given_as_prototxt(tmp_path, golden):
    """A binary caffemodel passed as prototxt says it is not text and what to use."""
    with pytest.raises(PrototxtError, match='not a text file.*read_net_binary'):
        formats.read_net(golden / 'tiny_fcn' / 'weights.caffemodel')


def test_catch_empty_netparameter_binary(tmp_path):
    """A file that parses as NetParameter but holds no layer is not a caffemodel."""
    path = tmp_path / 'empty.caffemodel'
    path.write_bytes(caffe_pb2.NetParameter(name='x').SerializeToString())
    with pytest.raises(CaffemodelError, match='holds no layers'):
        formats.read_net_binary(path)


def test_catch_missing_file(tmp_path):
    """A missing file names the path."""
    with pytest.raises(FileNotFoundError, match='nothere.prototxt: no such file'):
        formats.read_net(tmp_path / 'nothere.prototxt')


@pytest.mark.parametrize('name', ['w.caffemodel', 'w.h5', 'net.prototxt'])
def test_catch_folder_where_a_file_belongs(tmp_path, name):
    """A folder named like the weights or the net is said to be a folder (it was a raw
    IsADirectoryError, or for HDF5 "damaged or of another kind")."""
    from caffe_torch import Net, TEST
    net = tmp_path / 'n.prototxt'
    net.write_text('name: "n" layer { name: "d" type: "Input" top: "d" '
                   'input_param { shape { dim: 1 dim: 2 } } }')
    (tmp_path / name).mkdir()
    with pytest.raises(IsADirectoryError, match=rf'{name}: is a folder, not a file; give the '
                                                r'path of the file itself'):
        if name.endswith('prototxt'):
            Net(str(tmp_path / name), TEST)
        else:
            Net(str(net), TEST, weights=str(tmp_path / name))
