"""examples/pycaffe/linreg.prototxt and its Python loss layer (examples/pycaffe/layers/
pyloss.py on PYTHONPATH) on whichever pycaffe runs this: real pycaffe, or the engine through
`python -m caffe_torch.run`. Imports nothing of the project.

    linreg_side.py LINREG_PROTOTXT INPUTS_NPZ OUT_NPZ

The net's DummyData layers draw gaussian x and y from the framework's generator, so this
sets x, y and the InnerProduct params from INPUTS_NPZ, runs forward from ipx (past the
DummyData layers) and backward, and saves the loss, tops and diffs.
"""
import sys

import numpy as np

import caffe

prototxt, inputs, out = sys.argv[1:4]
given = np.load(inputs)
caffe.set_mode_cpu()
net = caffe.Net(prototxt, caffe.TRAIN)
for name in ('x', 'y'):
    net.blobs[name].data[...] = given[name]
for layer in ('ipx', 'ipy'):
    for i, blob in enumerate(net.params[layer]):
        blob.data[...] = given['%s/%d' % (layer, i)]
net.forward(start='ipx')
net.backward()
result = {'loss': net.blobs['loss'].data.copy()}
for name in ('ipx', 'ipy'):
    result['top/' + name] = net.blobs[name].data.copy()
    result['top_diff/' + name] = net.blobs[name].diff.copy()
for layer in ('ipx', 'ipy'):
    for i, blob in enumerate(net.params[layer]):
        result['param_diff/%s/%d' % (layer, i)] = blob.diff.copy()
np.savez(out, **result)
