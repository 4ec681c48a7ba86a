"""Real pycaffe's half of the differential tests. Runs under the system Python that BVLC
Caffe was built for, with that build's python/ folder on PYTHONPATH; it imports nothing of
the project, and the two sides meet through files only.

    python3 pycaffe_side.py layers ROOT
    python3 pycaffe_side.py solvers ROOT

`layers` records every case folder under ROOT that has no result yet (solvers: see solve). A case folder holds
net.prototxt, inputs.npz (`bottom/<blob>`, optional `param/<layer>/<i>` and
`input_arrays/{data,label}`) and meta.json (phase, seed, backward, forwards, param_low,
param_high, output_file). The result is golden.npz in the format of tests/golden/README.md.
Before each case its name goes to ROOT/.current: when Caffe aborts (a failed CHECK), the
caller knows which case it was, records the abort and starts this script again.
"""
import json
import os
import sys

import numpy as np

import caffe


def _uniform(rng, shape, low=-1.0, high=1.0):
    return rng.uniform(low, high, shape).astype(np.float32)


def _set_params(net, given, rng, meta):
    """Each param blob gets its given value, else one drawn from the case's seed. A shared
    param's blobs are one memory: the value recorded is the last one set."""
    for layer, blobs in net.params.items():
        for i, blob in enumerate(blobs):
            value = given.get('param/%s/%d' % (layer, i))
            if value is None:
                value = _uniform(rng, blob.data.shape, meta.get('param_low', -1.0),
                                 meta.get('param_high', 1.0))
            blob.data[...] = value
    return {'param/%s/%d' % (layer, i): blob.data.copy()
            for layer, blobs in net.params.items() for i, blob in enumerate(blobs)}


def _loss_outputs(net):
    weights = net.blob_loss_weights
    return {name for name in net.outputs if weights[name] != 0}


def record(folder):
    meta = json.load(open(os.path.join(folder, 'meta.json')))
    inputs = dict(np.load(os.path.join(folder, 'inputs.npz')))
    rng = np.random.RandomState(meta['seed'])
    phase = caffe.TEST if meta.get('phase') == 'TEST' else caffe.TRAIN
    os.chdir(folder)
    sys.path.insert(0, folder)
    try:
        net = caffe.Net('net.prototxt', phase)
        result = _run(net, inputs, rng, meta)
        del net  # HDF5Output closes its file with the net
        if meta.get('output_file'):
            import h5py
            with h5py.File(meta['output_file'], 'r') as f:
                for name in f:
                    result['output_file/' + name] = f[name][()]
            os.remove(meta['output_file'])
        np.savez(os.path.join(folder, 'golden.npz'), **result)
    finally:
        sys.path.remove(folder)
        for name in meta.get('modules', []):
            sys.modules.pop(name, None)


def _run(net, inputs, rng, meta):
    result = {}
    bottoms = {k.split('/', 1)[1]: v for k, v in inputs.items() if k.startswith('bottom/')}
    for name, value in bottoms.items():
        net.blobs[name].data[...] = value
        result['bottom/' + name] = value
    given = {k: v for k, v in inputs.items() if k.startswith('param/')}
    params = _set_params(net, given, rng, meta)
    result.update(params)
    if 'input_arrays/data' in inputs:
        data = np.ascontiguousarray(inputs['input_arrays/data'], np.float32)
        label = np.ascontiguousarray(inputs['input_arrays/label'], np.float32)
        net.set_input_arrays(data, label)
        result['input_arrays/data'], result['input_arrays/label'] = data, label
    net.forward()
    for name, blob in net.blobs.items():
        if name not in bottoms:
            result['top/' + name] = blob.data.copy()
    for key, before in params.items():
        layer, i = key.split('/')[1:]
        after = net.params[layer][int(i)].data
        if not np.array_equal(after, before):
            result['param_after/%s/%s' % (layer, i)] = after.copy()
    if meta.get('backward', True):
        net.clear_param_diffs()
        losses = _loss_outputs(net)
        for name in net.outputs:
            if name not in losses:
                diff = _uniform(rng, net.blobs[name].diff.shape)
                net.blobs[name].diff[...] = diff
                result['top_diff/' + name] = diff
        net.backward()
        for name in bottoms:
            if name not in meta.get('no_bottom_diff', []):
                result['bottom_diff/' + name] = net.blobs[name].diff.copy()
        for key in params:
            layer, i = key.split('/')[1:]
            result['param_diff/%s/%s' % (layer, i)] = net.params[layer][int(i)].diff.copy()
    for k in range(2, meta.get('forwards', 1) + 1):
        net.forward()
        for name, blob in net.blobs.items():
            if name not in bottoms:
                result['forward%d/%s' % (k, name)] = blob.data.copy()
    return result


def each_case(root, work, result):
    """work(folder) for every case folder under `root` without `result` or an abort."""
    for case in sorted(os.listdir(root)):
        folder = os.path.join(root, case)
        done = [os.path.exists(os.path.join(folder, f)) for f in (result, 'caffe_abort.txt')]
        if not os.path.isdir(folder) or any(done):
            continue
        with open(os.path.join(root, '.current'), 'w') as f:
            f.write(case)
        work(folder)
    if os.path.exists(os.path.join(root, '.current')):
        os.remove(os.path.join(root, '.current'))


def _solver(folder):
    """The case's solver (solver.prototxt in `folder`), its params and data as given."""
    os.chdir(folder)
    inputs = dict(np.load('inputs.npz'))
    solver = caffe.get_solver('solver.prototxt')
    for key, value in inputs.items():
        kind, name = key.split('/', 1)
        if kind == 'param':
            layer, i = name.rsplit('/', 1)
            solver.net.params[layer][int(i)].data[...] = value
        else:
            solver.net.blobs[name].data[...] = value
    return solver, inputs


def _steps(solver, count, first):
    """Step one iteration at a time; every param and the loss after each."""
    record = {}
    for k in range(first, first + count):
        solver.step(1)
        record['loss/%d' % k] = np.float32(solver.net.blobs['loss'].data)
        for layer, blobs in solver.net.params.items():
            for i, blob in enumerate(blobs):
                record['step%d/%s/%d' % (k, layer, i)] = blob.data.copy()
    return record


def solve(folder):
    """`before` steps, a snapshot, `after` more (caffe.npz); then, where the engine left a
    snapshot of its own, `after` steps from it (resumed.npz)."""
    meta = json.load(open(os.path.join(folder, 'meta.json')))
    solver, _ = _solver(folder)
    record = _steps(solver, meta['before'], 1)
    solver.snapshot()
    record.update(_steps(solver, meta['after'], meta['before'] + 1))
    if os.path.exists(meta['engine_state']):
        solver, _ = _solver(folder)
        solver.restore(meta['engine_state'])
        resumed = {'iter': np.int64(solver.iter)}
        resumed.update(_steps(solver, meta['after'], meta['before'] + 1))
        np.savez('resumed.npz', **resumed)
    np.savez('caffe.npz', **record)


if __name__ == '__main__':
    command, root = sys.argv[1:3]
    caffe.set_mode_cpu()
    if command == 'layers':
        each_case(os.path.abspath(root), record, 'golden.npz')
    elif command == 'solvers':
        each_case(os.path.abspath(root), solve, 'caffe.npz')
    else:
        sys.exit('usage: pycaffe_side.py layers|solvers ROOT')
