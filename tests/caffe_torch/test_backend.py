"""The backend switch: the engine as `caffe` by default, pycaffe only on request."""
import os
import subprocess
import sys
import textwrap

import pytest

import backend


def _python(code, **env):
    """Run `code` in a fresh interpreter: no module cache, FCN_BACKEND only as given."""
    full_env = {k: v for k, v in os.environ.items() if k != 'FCN_BACKEND'}
    full_env.update(env)
    return subprocess.run([sys.executable, '-c', textwrap.dedent(code)], env=full_env,
                          capture_output=True, text=True)


def test_default_backend_is_the_engine_importable_as_caffe():
    """With FCN_BACKEND unset, `import caffe` and `caffe.proto.caffe_pb2` give the engine."""
    out = _python('''
        from backend import caffe
        import caffe as c
        from caffe.proto import caffe_pb2
        import caffe_torch
        print(c is caffe is caffe_torch, caffe_pb2 is caffe_torch.proto.caffe_pb2)''')
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ['True', 'True']


def test_python_layer_written_for_pycaffe_runs(tmp_path):
    """A layer module doing `import caffe; class L(caffe.Layer)` loads into the engine."""
    (tmp_path / 'pyc_layer.py').write_text(textwrap.dedent('''
        import caffe
        class Twice(caffe.Layer):
            def setup(self, bottom, top): pass
            def reshape(self, bottom, top): top[0].reshape(*bottom[0].data.shape)
            def forward(self, bottom, top): top[0].data[...] = 2 * bottom[0].data
            def backward(self, top, propagate_down, bottom): pass'''))
    (tmp_path / 'net.prototxt').write_text(textwrap.dedent('''
        layer { name: 'x' type: 'Input' top: 'x' input_param { shape { dim: 3 } } }
        layer { name: 't' type: 'Python' bottom: 'x' top: 'y'
                python_param { module: 'pyc_layer' layer: 'Twice' } }'''))
    out = _python(f'''
        import sys, numpy as np
        sys.path.insert(0, {str(tmp_path)!r})
        from backend import caffe
        net = caffe.Net({str(tmp_path / 'net.prototxt')!r}, caffe.TEST)
        print(net.forward(x=np.array([1, 2, 3], np.float32))['y'].tolist())''')
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == '[2.0, 4.0, 6.0]'


def test_catch_pycaffe_missing():
    """FCN_BACKEND=caffe without pycaffe is an ImportError saying how to fix it."""
    out = _python("import backend", FCN_BACKEND='caffe')
    assert out.returncode != 0
    assert 'FCN_BACKEND=caffe, but pycaffe does not import' in out.stderr
    assert 'unset FCN_BACKEND' in out.stderr


def test_catch_unknown_backend():
    """An unknown backend name lists the two choices."""
    with pytest.raises(backend.BackendError, match='"tf" is not a backend'):
        backend.load('tf')
