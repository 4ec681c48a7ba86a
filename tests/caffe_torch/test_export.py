"""caffe_torch.export: nets as torch modules, TorchScript, torch.export and ONNX files, and
back into caffemodels. References: Caffe's own per-layer vectors (tests/golden), the
engine's forward and backward, onnxruntime, and the caffemodel bytes the engine writes."""
import pathlib

import numpy as np
import pytest
import torch

import caffe_torch as caffe
from caffe_torch import formats
from caffe_torch.export import NoFunctionalForm, OPS, to_caffemodel, to_module
from caffe_torch.export.__main__ import export, get_args_parser, main
from golden_check import CASES, groups, rel_error

ROOT = pathlib.Path(__file__).resolve().parents[2]
NETS = ROOT / 'nets'
NAMED = ['voc-fcn8s', 'voc-fcn8s-atonce', 'voc-fcn-alexnet', 'siftflow-fcn8s',
         'nyud-fcn32s-color-hha']
OTHERS = sorted(p.name for p in NETS.iterdir() if (p / 'deploy.prototxt').is_file()
                and p.name not in NAMED and p.name != 'ilsvrc-nets')


# Cases whose recorded diffs are Caffe's in-place quirk, not a gradient: an in-place Power
# multiplies by dy/dx twice (caffe_torch.layer_types.neuron); the module's is the true one.
FORWARD_ONLY = {'inplace_chain'}


def _golden_cases():
    for case in sorted(p.name for p in CASES.iterdir()):
        types = {layer.type for layer in formats.read_net(CASES / case / 'net.prototxt').layer}
        has_tops = any(k.startswith('top/') for k in np.load(CASES / case / 'golden.npz'))
        if types - {'Input'} <= set(OPS) and 'dropout' not in case and has_tops:
            yield case


@pytest.mark.parametrize('case', list(_golden_cases()))
def test_every_op_matches_caffe_forward_and_backward(case):
    """On Caffe's recorded cases: the module's outputs are Caffe's tops, and autograd from
    Caffe's top diffs gives Caffe's bottom and parameter diffs."""
    golden = groups(np.load(CASES / case / 'golden.npz'))
    net = caffe.Net(str(CASES / case / 'net.prototxt'), caffe.TEST if 'test' in case
                    else caffe.TRAIN)
    for key, value in golden.get('param', {}).items():
        layer, index = key.rsplit('/', 1)
        net.params[layer][int(index)].data[...] = value
    module = to_module(net).eval()
    inputs = {name: torch.tensor(golden['bottom'][name], requires_grad=True)
              for name in module.inputs}
    outputs = module(**inputs)
    assert outputs, case
    loss = 0
    for name, value in outputs.items():
        assert rel_error(value.detach().numpy(), golden['top'][name]) < 1e-5, (case, name)
        if name in golden.get('top_diff', {}) and value.requires_grad:
            loss = loss + (value * torch.from_numpy(golden['top_diff'][name])).sum()
    if not torch.is_tensor(loss) or case in FORWARD_ONLY:
        return
    loss.backward()
    for name, x in inputs.items():
        if name in golden.get('bottom_diff', {}) and x.grad is not None:
            assert rel_error(x.grad.numpy(), golden['bottom_diff'][name]) < 1e-4, (case, name)
    for key, want in golden.get('param_diff', {}).items():
        layer, index = key.rsplit('/', 1)
        got = module.params[layer.replace('.', '_')][int(index)].grad
        assert rel_error(got.numpy(), want) < 1e-4, (case, key)


def _random_net(model, seed=0, force_backward=False, tmp_path=None):
    """The model's deploy net with seeded random weights of unit-ish scale (FCN's scorers
    start at zero, which would make every output 0)."""
    path = NETS / model / 'deploy.prototxt'
    if force_backward:
        param = formats.read_net(path)
        param.force_backward = True
        path = tmp_path / f'{model}.prototxt'
        formats.write_prototxt(param, path)
    net = caffe.Net(str(path), caffe.TEST)
    rng = np.random.default_rng(seed)
    for blobs in net.params.values():
        for blob in blobs:
            fan_in = max(1, int(np.prod(blob.shape[1:])))
            uniform = rng.random(blob.shape, dtype=np.float32) - np.float32(0.5)
            blob.data[...] = uniform * np.float32(3.5 / np.sqrt(fan_in))
    return net


def _inputs(net, h=40, w=56, seed=1):
    rng = np.random.default_rng(seed)
    arrays = {}
    for name in net.inputs:
        shape = (1, net.blobs[name].shape[1], h, w)
        net.blobs[name].reshape(*shape)
        arrays[name] = rng.standard_normal(shape).astype(np.float32)
    net.reshape()
    return arrays


@pytest.mark.parametrize('model', NAMED)
def test_named_nets_equal_the_engine_forward_and_backward(model, tmp_path):
    """Outputs equal the engine's TEST forward (rel. L2 1e-5); one autograd step from a
    random top diff gives the engine's parameter diffs."""
    net = _random_net(model, force_backward=True, tmp_path=tmp_path)
    arrays = _inputs(net)
    want = {k: v.copy() for k, v in net.forward(**arrays).items()}
    module = to_module(net).eval()
    got = module(**{k: torch.from_numpy(v) for k, v in arrays.items()})
    assert set(got) == set(want)
    rng, loss = np.random.default_rng(2), 0
    for name, value in got.items():
        assert rel_error(value.detach().numpy(), want[name]) < 1e-5, name
        top_diff = rng.standard_normal(value.shape).astype(np.float32)
        net.blobs[name].diff[...] = top_diff
        loss = loss + (value * torch.from_numpy(top_diff)).sum()
    net.clear_param_diffs()
    net.backward()
    loss.backward()
    checked = 0
    for i, layer in enumerate(net.layers):
        for j, blob in enumerate(layer.blobs):
            if net.param_owners[net.param_ids[i][j]] != -1 or not layer.param_propagate_down[j]:
                continue
            grad = module.params[layer.name.replace('.', '_')][j].grad.numpy()
            assert rel_error(grad, blob.diff) < 1e-4, (layer.name, j)
            checked += 1
    assert checked >= 10


@pytest.mark.parametrize('model', OTHERS)
def test_every_other_model_exports(model):
    """Every other deploy net of nets/ (classifiers at their fixed input size)."""
    net = _random_net(model)
    fixed = any(layer.type == 'InnerProduct' for layer in net.layers)
    arrays = _inputs(net, *(net.blobs[net.inputs[0]].shape[2:] if fixed else (32, 40)))
    want = {k: v.copy() for k, v in net.forward(**arrays).items()}
    with torch.no_grad():
        got = to_module(net).eval()(**{k: torch.from_numpy(v) for k, v in arrays.items()})
    for name in want:
        assert rel_error(got[name].numpy(), want[name]) < 1e-5, name


@pytest.mark.parametrize('model, dynamic', [('voc-fcn8s', True), ('voc-fcn-alexnet', False)])
def test_onnx_runs_in_onnxruntime_with_the_engines_outputs(model, dynamic, tmp_path):
    """The ONNX file's outputs in onnxruntime equal the engine's (rel. 1e-4); with
    --dynamic also at a size other than the one exported."""
    ort = pytest.importorskip('onnxruntime')
    net = _random_net(model)
    _inputs(net, 40, 56)
    export(net, tmp_path / 'net.onnx', (1, 3, 40, 56), dynamic)
    session = ort.InferenceSession(str(tmp_path / 'net.onnx'),
                                   providers=['CPUExecutionProvider'])
    for h, w in ([(40, 56), (37, 61)] if dynamic else [(40, 56)]):
        arrays = _inputs(net, h, w, seed=h)
        want = net.forward(**arrays)
        got = session.run(None, arrays)
        for name, value in zip([o.name for o in session.get_outputs()], got):
            assert rel_error(value, want[name]) < 1e-4, (h, w, name)


@pytest.mark.parametrize('model', NAMED)
def test_named_nets_in_onnxruntime_and_back_to_caffemodel_bit_for_bit(model, tmp_path):
    """Each of the five nets: its ONNX file in onnxruntime gives the engine's outputs
    (rel. 1e-4, every input at 40x56, NYUD's color and HHA included), and to_caffemodel
    of its module writes the bytes net.save writes."""
    ort = pytest.importorskip('onnxruntime')
    net = _random_net(model)
    arrays = _inputs(net, 40, 56)
    module, _ = export(net, tmp_path / 'net.onnx', (1, net.blobs[net.inputs[0]].shape[1],
                                                     40, 56))
    session = ort.InferenceSession(str(tmp_path / 'net.onnx'),
                                   providers=['CPUExecutionProvider'])
    want = net.forward(**arrays)
    got = session.run(None, {i.name: arrays[i.name] for i in session.get_inputs()})
    for name, value in zip([o.name for o in session.get_outputs()], got):
        assert rel_error(value, want[name]) < 1e-4, (model, name)
    del session
    net.save(str(tmp_path / 'engine.caffemodel'))
    fresh = caffe.Net(str(NETS / model / 'deploy.prototxt'), caffe.TEST)
    to_caffemodel(module, fresh, tmp_path / 'module.caffemodel')
    assert (tmp_path / 'module.caffemodel').read_bytes() == \
        (tmp_path / 'engine.caffemodel').read_bytes()


def test_caffemodel_round_trip_is_bit_for_bit(tmp_path):
    """module -> to_caffemodel writes the bytes the net itself writes; a change made in
    PyTorch (one optimizer step) comes back into a caffemodel Caffe users can load."""
    net = _random_net('demo-fcn8s')
    net.save(str(tmp_path / 'engine.caffemodel'))
    module = to_module(net)
    fresh = caffe.Net(str(NETS / 'demo-fcn8s' / 'deploy.prototxt'), caffe.TEST)
    to_caffemodel(module, fresh, tmp_path / 'module.caffemodel')
    assert (tmp_path / 'module.caffemodel').read_bytes() == \
        (tmp_path / 'engine.caffemodel').read_bytes()

    arrays = _inputs(net, 32, 32)
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
    module(**{k: torch.from_numpy(v) for k, v in arrays.items()})['score'].square().sum() \
        .backward()
    optimizer.step()
    to_caffemodel(module, fresh, tmp_path / 'tuned.caffemodel')
    tuned = caffe.Net(str(NETS / 'demo-fcn8s' / 'deploy.prototxt'), caffe.TEST,
                      weights=str(tmp_path / 'tuned.caffemodel'))
    for name, blobs in tuned.params.items():
        for j, blob in enumerate(blobs):
            np.testing.assert_array_equal(blob.data, module.params[name][j].detach().numpy())


def test_shared_parameters_appear_once(tmp_path):
    """Two layers sharing a named param: one nn.Parameter, gradients of both uses add."""
    (tmp_path / 'net.prototxt').write_text('''
        layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
        layer { name: "a" type: "InnerProduct" bottom: "x" top: "a" param { name: "w" }
                inner_product_param { num_output: 3 bias_term: false
                                      weight_filler { type: "gaussian" } } }
        layer { name: "b" type: "InnerProduct" bottom: "a" top: "b" param { name: "w" }
                inner_product_param { num_output: 3 bias_term: false } }''')
    net = caffe.Net(str(tmp_path / 'net.prototxt'), caffe.TEST)
    module = to_module(net)
    assert [name for name, _ in module.named_parameters()] == ['params.a.0']
    x = torch.randn(2, 3)
    weight = module.params['a'][0]
    torch.testing.assert_close(module(x)['b'], x @ weight.t() @ weight.t())


def test_train_nets_export_to_their_scores_and_refuse_what_has_no_form(tmp_path,
                                                                      monkeypatch):
    """A val net's data layer becomes its inputs and its loss is left out, with the label
    only the loss reads; a Python layer inside the net has no functional form, named."""
    from dataset_fixtures import set_dataset_env
    from solve import demo_data
    voc = demo_data.make_segmentation_set(tmp_path / 'voc', n_train=1, n_val=1, size=32)
    set_dataset_env(monkeypatch, demo_voc=voc)
    module = to_module(caffe.Net(str(NETS / 'demo-fcn32s' / 'val.prototxt'), caffe.TEST))
    assert module.inputs == ['data', 'label'] and module.outputs == ['score']
    assert not module.training  # a TEST net: Dropout off, as the net runs it
    train = to_module(caffe.Net(str(NETS / 'demo-fcn32s' / 'train.prototxt'), caffe.TRAIN))
    assert train.training and train.outputs == ['score']
    (tmp_path / 'twice.py').write_text(
        'import caffe\n'
        'class Twice(caffe.Layer):\n'
        '    def setup(self, bottom, top): pass\n'
        '    def reshape(self, bottom, top): top[0].reshape(*bottom[0].data.shape)\n'
        '    def forward(self, bottom, top): top[0].data[...] = 2 * bottom[0].data\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    caffe.install_as_caffe()
    (tmp_path / 'mid.prototxt').write_text(
        'layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 } } }\n'
        'layer { name: "p" type: "Python" bottom: "x" top: "y"\n'
        '        python_param { module: "twice" layer: "Twice" } }\n')
    with pytest.raises(NoFunctionalForm, match=r'layer "p" \(Python\) has no functional '
                                               r'form.*runs Python code'):
        to_module(caffe.Net(str(tmp_path / 'mid.prototxt'), caffe.TEST))


def test_cli_writes_torchscript_torch_export_and_onnx(tmp_path, capsys):
    """Each format loads and gives the engine's outputs, at another size with --dynamic."""
    net = _random_net('demo-fcn8s')
    net.save(str(tmp_path / 'w.caffemodel'))
    deploy = str(NETS / 'demo-fcn8s' / 'deploy.prototxt')
    for suffix in ('.pt', '.pt2', '.onnx'):
        args = get_args_parser().parse_args([deploy, str(tmp_path / 'w.caffemodel'), '--to',
                                             str(tmp_path / f'net{suffix}'), '--input-shape',
                                             '1,3,48,48', '--dynamic'])
        assert main(args) == 0
    printed = capsys.readouterr().out
    assert 'onnxruntime: outputs within relative L2' in printed or 'not installed' in printed
    arrays = _inputs(net, 40, 52)
    want = net.forward(**arrays)['score']
    x = torch.from_numpy(arrays['data'])
    loaded = {'.pt': torch.jit.load(str(tmp_path / 'net.pt')),
              '.pt2': torch.export.load(str(tmp_path / 'net.pt2')).module()}
    for suffix, program in loaded.items():
        assert rel_error(program(x)[0].detach().numpy(), want) < 1e-5, suffix
    assert not list(tmp_path.glob('.*')), 'an atomic write left its temporary file'


def test_cli_errors_are_one_line(tmp_path, capsys):
    deploy = str(NETS / 'demo-fcn8s' / 'deploy.prototxt')
    for argv, says in (([deploy, str(tmp_path / 'none.caffemodel'), '--to', 'x.onnx'],
                        'no such caffemodel'),
                       ([deploy, deploy, '--to', str(tmp_path / 'x.txt')], None)):
        assert main(get_args_parser().parse_args(argv)) == 2
        err = capsys.readouterr().err
        assert err.startswith('error: ') and (says is None or says in err)


def test_mixed_precision_and_compile_run_the_module():
    """The module is plain torch: autocast (bfloat16 on the CPU) and torch.compile's
    graph capture run it, with the float32 outputs to their precision."""
    net = _random_net('demo-fcn8s')
    x = torch.from_numpy(_inputs(net, 32, 32)['data'])
    module = to_module(net).eval()
    with torch.no_grad():
        want = module(x)['score']
        with torch.autocast('cpu', dtype=torch.bfloat16):
            low = module(x)['score']
        compiled = torch.compile(module, backend='aot_eager')(x)['score']
    assert low.dtype == torch.bfloat16
    assert rel_error(low.float().numpy(), want.numpy()) < 5e-2
    assert rel_error(compiled.numpy(), want.numpy()) < 1e-5
