"""The learning rate Caffe (or the engine) uses at each of 200 iterations, read exactly.

Run as `python3 lr_probe.py SOLVER N` (real pycaffe) or through `python -m caffe_torch.run`:
the net's one weight is set to 0 before each step, its diff is 1 and momentum and decay
are 0, so after the step the weight is -local_rate, a float32 read without rounding.
Prints the N rates as JSON.
"""
import json
import sys

import caffe

caffe.set_mode_cpu()
solver = caffe.get_solver(sys.argv[1])
rates = []
for _ in range(int(sys.argv[2])):
    solver.net.params['ip'][0].data[...] = 0
    solver.step(1)
    rates.append(float(-solver.net.params['ip'][0].data.flat[0]))
print(json.dumps(rates))
