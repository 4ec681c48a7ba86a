"""pycaffe's caffe.net_spec: the engine's."""
import sys

import caffe_torch.net_spec

sys.modules[__name__] = caffe_torch.net_spec
