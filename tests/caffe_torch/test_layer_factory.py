"""The layer registry: where each built-in type lives, and loading only what a net names."""
import json
import os
import subprocess
import sys

import pytest

from caffe_torch import layer_factory
from caffe_torch.errors import UnknownLayerTypeError
from caffe_torch.proto import caffe_pb2

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_builtin_table_names_the_module_that_registers_each_type():
    types = layer_factory.layer_type_list()
    registered = {t: layer_factory._REGISTRY[t].__module__ for t in types
                  if layer_factory._REGISTRY[t].__module__.startswith('caffe_torch.layer_types.')}
    assert registered == layer_factory.BUILTIN


def test_registering_a_builtin_name_twice_is_refused():
    layer_factory.layer_type_list()
    with pytest.raises(ValueError, match='"ReLU" is already registered to '
                                         'caffe_torch.layer_types.neuron'):
        layer_factory.register('ReLU')(object)


FRESH = '''
import json, sys
sys.path.insert(0, {root!r})
from caffe_torch import layer_factory
from caffe_torch.errors import UnknownLayerTypeError
from caffe_torch.proto import caffe_pb2
from google.protobuf import text_format
import caffe_torch as caffe
open('n.prototxt', 'w').write("""
layer {{ name: 'data' type: 'Input' top: 'data'
        input_param {{ shape {{ dim: 1 dim: 1 dim: 5 dim: 5 }} }} }}
layer {{ name: 'conv' type: 'Convolution' bottom: 'data' top: 'conv'
        convolution_param {{ num_output: 2 kernel_size: 3 }} }}
layer {{ name: 'relu' type: 'ReLU' bottom: 'conv' top: 'conv' }}
""")
caffe.Net('n.prototxt', caffe.TEST)
loaded = sorted(m for m in sys.modules if m.startswith('caffe_torch.layer_types.'))
try:
    layer_factory.create_layer(text_format.Parse("name: 'x' type: 'Convolutoin'",
                                                 caffe_pb2.LayerParameter()))
except UnknownLayerTypeError as e:
    message = str(e)
print(json.dumps({{'loaded': loaded, 'message': message}}))
'''


def test_a_fresh_process_loads_only_the_modules_its_net_names(tmp_path):
    """A net of Input, Convolution and ReLU imports three layer modules; an unknown type
    still lists every built-in type and suggests the near one."""
    done = subprocess.run([sys.executable, '-c', FRESH.format(root=ROOT)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out['loaded'] == ['caffe_torch.layer_types.data', 'caffe_torch.layer_types.neuron',
                             'caffe_torch.layer_types.vision']
    assert 'Did you mean Convolution or Deconvolution?' in out['message']
    assert 'WindowData' in out['message'] and 'HDF5Output' in out['message']


def test_unknown_type_is_refused_with_the_known_ones():
    param = caffe_pb2.LayerParameter(name='x', type='Poolng')
    with pytest.raises(UnknownLayerTypeError, match=r'^n\.prototxt: layer "x" has unknown type '
                                                    r'"Poolng"\. Did you mean Pooling\? '
                                                    r'Known types: AbsVal, '):
        layer_factory.create_layer(param, where='n.prototxt')
