"""pycaffe's caffe.coord_map (not imported by `import caffe`, as in pycaffe): the engine's."""
import sys

import caffe_torch.coord_map

sys.modules[__name__] = caffe_torch.coord_map
