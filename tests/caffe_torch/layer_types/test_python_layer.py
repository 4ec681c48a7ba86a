"""The "Python" layer type: user classes imported from sys.path, run as pycaffe runs them."""
import sys
import textwrap

import numpy as np
import pytest

from caffe_torch.errors import LayerSetupError
from caffe_torch.layer_factory import layer_type_list
from caffe_torch.proto import caffe_pb2
from layer_check import check_gradient, make_layer, run_layer

USER_MODULE = textwrap.dedent('''
    import numpy as np
    from caffe_torch import Layer


    class Scale(Layer):
        """y = k * x + b: k from param_str, b a learnable blob; records the phase."""

        def setup(self, bottom, top):
            self.k = float(self.param_str)
            self.phase_at_setup = self.phase
            self.blobs.add_blob(1)
            self.blobs[0].data[...] = 0.5

        def reshape(self, bottom, top):
            top[0].reshape(*bottom[0].data.shape)

        def forward(self, bottom, top):
            top[0].data[...] = self.k * bottom[0].data + self.blobs[0].data

        def backward(self, top, propagate_down, bottom):
            if propagate_down[0]:
                bottom[0].diff[...] = self.k * top[0].diff
            self.blobs[0].diff[...] += top[0].diff.sum()


    class Probe(Layer):
        """Records what pycaffe allows on bottom/top, and what it refuses, per param_str."""

        def setup(self, bottom, top):
            self.seen = {'len': (len(bottom), len(top)), 'last': bottom[-1] is bottom[1]}
            attempts = {'iterate': lambda: [b for b in bottom], 'zip': lambda: list(zip(top)),
                        'slice': lambda: bottom[0:1], 'in': lambda: bottom[0] in bottom,
                        'float index': lambda: top[0.0], 'past the end': lambda: bottom[2]}
            for name, attempt in attempts.items():
                try:
                    attempt()
                    self.seen[name] = 'allowed'
                except (TypeError, IndexError) as e:
                    self.seen[name] = (type(e).__name__, str(e))

        def reshape(self, bottom, top):
            top[0].reshape(1)

        def forward(self, bottom, top):
            top[0].data[...] = 0

        def backward(self, top, propagate_down, bottom):
            self.propagate_down = list(propagate_down)


    class SumLoss(Layer):
        """A scalar loss written in Python: the sum of the bottom."""

        def reshape(self, bottom, top):
            top[0].reshape()

        def forward(self, bottom, top):
            top[0].data[...] = bottom[0].data.sum()

        def backward(self, top, propagate_down, bottom):
            bottom[0].diff[...] = top[0].diff


    class Broken(Layer):
        def setup(self, bottom, top):
            raise RuntimeError('bad param_str: ' + repr(self.param_str))


    class NotALayer:
        pass
''')


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """A module of layer classes on sys.path, forgotten again after the test."""
    (tmp_path / 'user_layers.py').write_text(USER_MODULE)
    (tmp_path / 'needs_missing.py').write_text('import no_such_dependency_xyz\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    yield 'user_layers'
    for name in ('user_layers', 'needs_missing'):
        sys.modules.pop(name, None)


def _python(module, layer, param_str=''):
    return (f'name: "py" type: "Python" python_param {{ module: "{module}" '
            f'layer: "{layer}" param_str: "{param_str}" }}')


def test_python_type_registered():
    """"Python" is a registered layer type."""
    assert 'Python' in layer_type_list()


def test_param_str_and_phase_delivered(user_module):
    """param_str (the string) and the phase are set before the user's setup runs."""
    layer, _, _ = make_layer(_python(user_module, 'Scale', '3'), [np.zeros(2, np.float32)],
                             phase=caffe_pb2.TEST)
    assert layer.param_str == '3' and layer.k == 3.0
    assert layer.phase_at_setup == caffe_pb2.TEST


def test_forward_backward_and_blobs(user_module):
    """The user's forward/backward run on NumPy views; blobs added in setup are params."""
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    dy = np.full((2, 3), 0.5, np.float32)
    r = run_layer(_python(user_module, 'Scale', '2'), [x], top_diffs=[dy])
    np.testing.assert_allclose(r['tops'][0], 2 * x + 0.5)
    np.testing.assert_allclose(r['bottom_diffs'][0], 2 * dy)
    np.testing.assert_allclose(r['param_diffs'][0], [3.0])


def test_bottom_and_top_are_pycaffe_raw_blob_vectors(user_module):
    """As pycaffe's RawBlobVec: len() and integer indexing (negative too); iterating, zip,
    slicing, `in` and float indices raise TypeError saying how to write it instead, so a
    layer tested here does not break on pycaffe."""
    two = [np.zeros(1, np.float32), np.ones(1, np.float32)]
    layer, _, _ = make_layer(_python(user_module, 'Probe'), two)
    seen = layer.seen
    assert seen['len'] == (2, 1) and seen['last'] is True
    for name in ('iterate', 'zip', 'slice', 'in', 'float index'):
        kind, message = seen[name]
        assert kind == 'TypeError', name
        assert 'No to_python (by-value) converter found for C++ type: caffe::Blob<float>*' \
            in message and 'range(len(top))' in message
    assert seen['past the end'][0] == 'IndexError'


def test_python_layer_gradient(user_module):
    """A correct Python layer passes the finite-difference check, its blob included."""
    x = np.random.RandomState(0).randn(2, 3).astype(np.float32)
    check_gradient(_python(user_module, 'Scale', '1.5'), [x])


def test_python_loss_layer(user_module):
    """A Python layer with loss_weight contributes loss_weight * its top to the loss."""
    text = _python(user_module, 'SumLoss') + ' loss_weight: 2'
    r = run_layer(text, [np.ones((2, 2), np.float32)], top_diffs=[None])
    assert r['loss'] == 8.0
    np.testing.assert_allclose(r['bottom_diffs'][0], 2.0)


def test_user_exception_propagates(user_module):
    """An exception raised in the user's code reaches the caller unchanged."""
    with pytest.raises(RuntimeError, match=r"bad param_str: 'oops'"):
        make_layer(_python(user_module, 'Broken', 'oops'), [])


def test_import_error_inside_module_propagates(user_module):
    """A missing dependency of the user's module is the user's ModuleNotFoundError."""
    with pytest.raises(ModuleNotFoundError, match='no_such_dependency_xyz'):
        make_layer(_python('needs_missing', 'X'), [])


def test_catch_missing_module(user_module):
    """A module not on sys.path is an error naming it, the layer and sys.path."""
    with pytest.raises(LayerSetupError,
                       match=r'layer "py".*"not_there_mod".*sys\.path'):
        make_layer(_python('not_there_mod', 'Scale'), [])


def test_catch_missing_class(user_module):
    """A class missing from the module is an error listing its Layer classes."""
    with pytest.raises(LayerSetupError, match=r'no class "Scal".*Broken, Probe, Scale, SumLoss'):
        make_layer(_python(user_module, 'Scal'), [])


def test_catch_not_a_layer_class(user_module):
    """A class that does not subclass caffe.Layer is an error."""
    with pytest.raises(LayerSetupError, match='must be a class subclassing caffe.Layer'):
        make_layer(_python(user_module, 'NotALayer'), [])


def test_catch_missing_python_param():
    """python_param without module or layer is an error."""
    with pytest.raises(LayerSetupError, match='needs both module and layer'):
        make_layer('type: "Python" python_param { module: "x" }', [])
