"""A Python layer whose module says `import caffe` loads wherever the engine runs it: the
`caffe` command line, a script that imports caffe_torch as caffe, and the toolkit. The rule
(caffe_torch/alias.py): with no module `caffe` loaded the engine installs itself as `caffe`;
a `caffe` already loaded (pycaffe, a stand-in) is kept, and a layer built on it is refused
with what to do."""
import os
import subprocess
import sys

import numpy as np
import pytest

import caffe_torch
from caffe_torch.errors import LayerSetupError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

LAYER = '''import caffe


class Double(caffe.Layer):
    """Doubles its bottom."""
    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = 2 * bottom[0].data

    def backward(self, top, propagate_down, bottom):
        bottom[0].diff[...] = 2 * top[0].diff
'''

TRAIN_NET = """name: 'pynet'
layer { type: 'DummyData' name: 'data' top: 'data' top: 'label'
  dummy_data_param { shape { dim: 2 dim: 3 } shape { dim: 2 }
    data_filler { type: 'constant' value: 0.5 } data_filler { type: 'constant' value: 1 } } }
layer { type: 'Python' name: 'double' bottom: 'data' top: 'double'
  python_param { module: '%s' layer: 'Double' } }
layer { type: 'InnerProduct' name: 'ip' bottom: 'double' top: 'ip'
  inner_product_param { num_output: 2 weight_filler { type: 'constant' value: 0.1 } } }
layer { type: 'SoftmaxWithLoss' name: 'loss' bottom: 'ip' bottom: 'label' top: 'loss' }
"""
SOLVER = """net: 'net.prototxt' base_lr: 0.1 lr_policy: 'fixed' max_iter: 2 display: 1
snapshot_prefix: 'snap' random_seed: 1 solver_mode: CPU
"""
DEPLOY_NET = """name: 'pynet' input: 'data' input_shape { dim: 2 dim: 3 }
layer { type: 'Python' name: 'double' bottom: 'data' top: 'double'
  python_param { module: '%s' layer: 'Double' } }
"""
# what `pip install -e .` writes as the console script `caffe`
CONSOLE_SCRIPT = 'import sys; from caffe_torch.cli import main; sys.exit(main())'


def _write(folder, module, net=TRAIN_NET):
    (folder / f'{module}.py').write_text(LAYER)
    (folder / 'net.prototxt').write_text(net % module)
    (folder / 'solver.prototxt').write_text(SOLVER)


def _run(folder, *argv):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, str(folder)]))
    env.pop('FCN_BACKEND', None)
    proc = subprocess.run([sys.executable, *argv], cwd=folder, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture
def no_caffe():
    """No module `caffe` loaded; the process's own entries come back afterwards."""
    def caffe_entries():
        return {k: v for k, v in sys.modules.items() if k == 'caffe' or k.startswith('caffe.')}
    saved = caffe_entries()
    for name in saved:
        del sys.modules[name]
    yield
    for name in caffe_entries():
        del sys.modules[name]
    sys.modules.update(saved)


def _deploy_net(tmp_path, monkeypatch, module, net_module=caffe_torch):
    (tmp_path / f'{module}.py').write_text(LAYER)
    (tmp_path / 'deploy.prototxt').write_text(DEPLOY_NET % module)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, module, raising=False)
    return net_module.Net(str(tmp_path / 'deploy.prototxt'), net_module.TEST)


def test_caffe_cli_train_and_test(tmp_path):
    """`caffe train` then `caffe test` (the console script's code) run the layer."""
    _write(tmp_path, 'cli_import_caffe_layer')
    train = _run(tmp_path, '-c', CONSOLE_SCRIPT, 'train', '--solver=solver.prototxt')
    assert 'Optimization Done.' in train.stderr
    test = _run(tmp_path, '-c', CONSOLE_SCRIPT, 'test', '--model=net.prototxt',
                '--weights=snap_iter_2.caffemodel', '--iterations=2')
    assert 'loss = ' in test.stderr


def test_script_importing_caffe_torch_as_caffe(tmp_path):
    """A script that says `import caffe_torch as caffe` builds and runs the net."""
    _write(tmp_path, 'script_import_caffe_layer', DEPLOY_NET)
    (tmp_path / 'script.py').write_text(
        'import sys\n'
        'import caffe_torch as caffe\n'
        "net = caffe.Net('net.prototxt', caffe.TEST)\n"
        "net.blobs['data'].data[...] = 1.5\n"
        "print(net.forward()['double'].sum(), sys.modules['caffe'] is caffe)\n")
    assert _run(tmp_path, 'script.py').stdout.split() == ['18.0', 'True']


def test_toolkit_backend(tmp_path, monkeypatch):
    """The toolkit's `from backend import caffe` runs the layer."""
    from backend import caffe
    net = _deploy_net(tmp_path, monkeypatch, 'toolkit_import_caffe_layer', caffe)
    net.blobs['data'].data[...] = 1
    assert np.all(net.forward()['double'] == 2)


def test_no_caffe_loaded_the_engine_becomes_caffe(tmp_path, monkeypatch, no_caffe):
    """With no `caffe` loaded, the layer's `import caffe` gives the engine, which stays so."""
    net = _deploy_net(tmp_path, monkeypatch, 'alias_import_caffe_layer')
    net.blobs['data'].data[...] = 3
    assert np.all(net.forward()['double'] == 6)
    assert sys.modules['caffe'] is caffe_torch
    assert sys.modules['caffe.proto.caffe_pb2'] is caffe_torch.caffe_pb2


def test_a_caffe_on_sys_path_is_not_imported(tmp_path, monkeypatch, no_caffe):
    """A pycaffe that could be imported but was not is not: the engine runs its own layers."""
    stand_in = tmp_path / 'other' / 'caffe'
    stand_in.mkdir(parents=True)
    (stand_in / '__init__.py').write_text("raise ImportError('stand-in pycaffe imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path / 'other'))
    net = _deploy_net(tmp_path, monkeypatch, 'path_import_caffe_layer')
    assert net.forward()['double'].shape == (2, 3)
    assert sys.modules['caffe'] is caffe_torch


def test_catch_layer_on_another_caffe(tmp_path, monkeypatch, no_caffe):
    """A `caffe` loaded before (pycaffe) is kept; its Layer subclass is refused with the fix."""
    stand_in = tmp_path / 'other' / 'caffe'
    stand_in.mkdir(parents=True)
    (stand_in / '__init__.py').write_text('class Layer:\n    pass\n')
    monkeypatch.syspath_prepend(str(tmp_path / 'other'))
    import caffe
    with pytest.raises(LayerSetupError, match=r'(?s)module `caffe` loaded in this process is '
                       r'.*other.*caffe.*install_as_caffe\(\).*caffe_torch\.run'):
        _deploy_net(tmp_path, monkeypatch, 'other_import_caffe_layer')
    assert sys.modules['caffe'] is caffe
