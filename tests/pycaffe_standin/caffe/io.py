"""pycaffe's caffe.io: the engine's (the same functions and names)."""
import sys

import caffe_torch.io

sys.modules[__name__] = caffe_torch.io
