"""Files written by one side, read by the other: caffemodels (binary and HDF5) both ways,
every prototxt the toolkit generates read by Caffe's own tools, NetSpec's text on both, and
Caffe's upgrade tools against the engine's on the V1 files of 2014's model zoo.
(Solverstates, binary and HDF5, cross over in test_solvers.py.)
"""
import pathlib
import subprocess
import textwrap

import numpy as np
import pytest
from google.protobuf import text_format

import caffe_torch as caffe
from caffe_torch.proto import caffe_pb2
from real_caffe.conftest import ROOT

PARAM_NET = '''force_backward: true
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 dim: 6 dim: 6 } } }
layer { name: "ids" type: "Input" top: "ids" input_param { shape { dim: 4 dim: 2 } } }
layer { name: "conv" type: "Convolution" bottom: "x" top: "conv"
        convolution_param { num_output: 4 kernel_size: 3 group: 1 } }
layer { name: "bn" type: "BatchNorm" bottom: "conv" top: "conv" }
layer { name: "scale" type: "Scale" bottom: "conv" top: "conv" scale_param { bias_term: true } }
layer { name: "prelu" type: "PReLU" bottom: "conv" top: "conv" }
layer { name: "up" type: "Deconvolution" bottom: "conv" top: "up"
        convolution_param { num_output: 2 kernel_size: 4 stride: 2 bias_term: false } }
layer { name: "fc" type: "InnerProduct" bottom: "up" top: "fc"
        inner_product_param { num_output: 5 transpose: true } }
layer { name: "embed" type: "Embed" bottom: "ids" top: "embed"
        embed_param { num_output: 3 input_dim: 7 } }
layer { name: "lstm" type: "LSTM" bottom: "embed" bottom: "ids" top: "lstm"
        recurrent_param { num_output: 2 } }
'''
SAVE_AND_READ = '''
import sys, numpy as np, caffe
net_file, theirs, ours = sys.argv[1:4]
net = caffe.Net(net_file, caffe.TEST)
values = np.load(theirs + '.values.npz')
read = {}
net.copy_from(theirs)
read.update(('bin/%s/%d' % (l, i), b.data.copy()) for l, bs in net.params.items()
            for i, b in enumerate(bs))
net.load_hdf5(theirs + '.h5')
read.update(('h5/%s/%d' % (l, i), b.data.copy()) for l, bs in net.params.items()
            for i, b in enumerate(bs))
np.savez(ours + '.read.npz', **read)
for layer, blobs in net.params.items():
    for i, blob in enumerate(blobs):
        blob.data[...] = values['%s/%d' % (layer, i)] * 2
net.save(ours)
net.save_hdf5(ours + '.h5')
'''


def _fill(net, rng):
    values = {}
    for layer, blobs in net.params.items():
        for i, blob in enumerate(blobs):
            blob.data[...] = rng.standard_normal(blob.data.shape).astype(np.float32)
            values[f'{layer}/{i}'] = blob.data.copy()
    return values


@pytest.mark.parametrize('net_file', ['params', 'nets/demo-fcn8s/deploy.prototxt'])
def test_caffemodels_cross_both_ways(net_file, real_caffe, tmp_path):
    """The engine's caffemodel (binary, HDF5) loads in Caffe with every value; Caffe's loads
    in the engine. The binary files are byte for byte the same."""
    if net_file == 'params':
        (tmp_path / 'net.prototxt').write_text(PARAM_NET)
        net_file = tmp_path / 'net.prototxt'
    else:
        net_file = ROOT / net_file
    net = caffe.Net(str(net_file), caffe.TEST)
    values = _fill(net, np.random.default_rng(7))
    engine_file, caffe_file = tmp_path / 'engine.caffemodel', tmp_path / 'caffe.caffemodel'
    net.save(str(engine_file))
    net.save_hdf5(str(engine_file) + '.h5')
    np.savez(str(engine_file) + '.values.npz', **values)
    done = real_caffe.run(['-c', SAVE_AND_READ, net_file, engine_file, caffe_file])
    assert done.returncode == 0, done.stderr[-3000:]
    read = np.load(str(caffe_file) + '.read.npz')
    for key, value in values.items():
        assert np.array_equal(read[f'bin/{key}'], value), f'Caffe read {key} from ours'
        assert np.array_equal(read[f'h5/{key}'], value), f'Caffe read {key} from our HDF5'
    for theirs in (caffe_file, pathlib.Path(str(caffe_file) + '.h5')):
        if theirs.suffix == '.h5':
            net.load_hdf5(str(theirs))
        else:
            net.copy_from(str(theirs))
        for key, value in values.items():
            layer, i = key.split('/')
            assert np.array_equal(net.params[layer][int(i)].data, value * 2), (theirs, key)
    net.save(str(engine_file))  # the doubled values, as Caffe saved them
    assert engine_file.read_bytes() == caffe_file.read_bytes()


def generated_prototxts():
    return sorted(str(p.relative_to(ROOT)) for p in (ROOT / 'nets').glob('*/*.prototxt'))


def test_every_generated_prototxt_reads_in_caffe(real_caffe, tmp_path):
    """Caffe's upgrade_net_proto_text / upgrade_solver_proto_text read each file of nets/
    (a field Caffe does not know aborts them) and find nothing to upgrade: the message they
    write back equals ours."""
    tools = real_caffe.folder / 'build' / 'tools'
    for i, name in enumerate(generated_prototxts()):
        solver = 'solver' in pathlib.Path(name).name
        tool = tools / ('upgrade_solver_proto_text' if solver else 'upgrade_net_proto_text')
        out = tmp_path / f'{i}.prototxt'
        done = subprocess.run([tool, ROOT / name, out], env=real_caffe.env(),
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f'{name}: {done.stderr[-2000:]}'
        kind = caffe_pb2.SolverParameter if solver else caffe_pb2.NetParameter
        ours, theirs = kind(), kind()
        text_format.Parse((ROOT / name).read_text(), ours)
        text_format.Parse(out.read_text(), theirs)
        assert ours == theirs, name


NETSPEC = textwrap.dedent('''
    import caffe
    from caffe import layers as L, params as P
    n = caffe.NetSpec()
    n.data, n.label = L.Input(ntop=2, input_param=dict(shape=[dict(dim=[1, 3, 32, 32]),
                                                               dict(dim=[1, 1, 32, 32])]))
    n.conv = L.Convolution(n.data, num_output=8, kernel_size=3, pad=100,
                           param=[dict(lr_mult=1, decay_mult=1), dict(lr_mult=2, decay_mult=0)],
                           weight_filler=dict(type='gaussian', std=0.01))
    n.relu = L.ReLU(n.conv, in_place=True)
    n.pool = L.Pooling(n.relu, pool=P.Pooling.MAX, kernel_size=2, stride=2)
    n.score = L.Convolution(n.pool, num_output=2, kernel_size=1)
    n.up = L.Deconvolution(n.score, convolution_param=dict(num_output=2, kernel_size=4,
                           stride=2, bias_term=False), param=[dict(lr_mult=0)])
    n.crop = L.Crop(n.up, n.data, crop_param=dict(axis=2, offset=[99]))
    n.loss = L.SoftmaxWithLoss(n.crop, n.label, loss_param=dict(ignore_label=255,
                                                                 normalize=False))
    print(n.to_proto())
''')


def test_netspec_writes_the_same_text_on_both(real_caffe, tmp_path):
    """A NetSpec program prints the same net on pycaffe and the engine (the same message; the
    text differs only in how the two protobuf releases print floats: 4.21 writes `1.0`, 7.x
    writes `1`), and each side's text builds a net on the other."""
    theirs = real_caffe.run(['-c', NETSPEC])
    assert theirs.returncode == 0, theirs.stderr[-2000:]
    ours = subprocess.run(['python3', '-c', 'import caffe_torch; caffe_torch.install_as_caffe()'
                           + '\n' + NETSPEC], capture_output=True, text=True, cwd=ROOT)
    assert ours.returncode == 0, ours.stderr[-2000:]
    parsed = [text_format.Parse(out.stdout, caffe_pb2.NetParameter()) for out in (ours, theirs)]
    assert parsed[0] == parsed[1] and len(parsed[0].layer) == 8
    (tmp_path / 'net.prototxt').write_text(theirs.stdout)
    assert list(caffe.Net(str(tmp_path / 'net.prototxt'), caffe.TRAIN).blobs)[-1] == 'loss'
    built = real_caffe.run(['-c', f'import caffe; print(list(caffe.Net('
                            f'"{tmp_path / "net.prototxt"}", caffe.TRAIN).blobs)[-1])'])
    assert built.stdout.strip() == 'loss', built.stderr[-2000:]


def test_upgrade_tools_equal_caffes(real_caffe, tmp_path):
    """Caffe's upgrade_net_proto_text/_binary and upgrade_solver_proto_text against the
    engine's on V1 files as the 2014 model zoo wrote them (enum layer types, blobs_lr,
    input_dim, 4-d legacy blobs) and a solver with the old solver_type enum: the same
    messages, and the same bytes for the binary."""
    from caffe_torch import formats
    from caffe_torch.tools import smoke
    formats.write_prototxt(smoke.v1_net(), tmp_path / 'v1.prototxt')
    formats.write_binaryproto(smoke.v1_weights(), tmp_path / 'v1.caffemodel')
    (tmp_path / 'v1_solver.prototxt').write_text(
        'net: "v1.prototxt"\nbase_lr: 0.01\nlr_policy: "fixed"\nsolver_type: NESTEROV\n'
        'momentum: 0.9\n')
    tools = real_caffe.folder / 'build' / 'tools'
    for tool, source, kind in (
            ('upgrade_net_proto_text', 'v1.prototxt', caffe_pb2.NetParameter),
            ('upgrade_net_proto_binary', 'v1.caffemodel', caffe_pb2.NetParameter),
            ('upgrade_solver_proto_text', 'v1_solver.prototxt', caffe_pb2.SolverParameter)):
        outputs = []
        for side, command in (('caffe', [tools / tool]),
                              ('engine', ['python3', '-m', f'caffe_torch.tools.{tool}'])):
            out = tmp_path / f'{side}-{source}'
            done = subprocess.run(command + [tmp_path / source, out], env=real_caffe.env()
                                  if side == 'caffe' else None, cwd=ROOT, capture_output=True,
                                  text=True, timeout=120)
            assert done.returncode == 0, f'{side} {tool}: {done.stderr[-2000:]}'
            outputs.append(out)
        if source.endswith('.caffemodel'):
            assert outputs[0].read_bytes() == outputs[1].read_bytes(), tool
        else:
            theirs, ours = (text_format.Parse(p.read_text(), kind()) for p in outputs)
            assert theirs == ours, tool
