"""Built-in layer types, registered in caffe_torch.layer_factory on import."""
from caffe_torch.layer_types import (common, data, elementwise, loss, neuron,  # noqa: F401
                                     pooling, python_layer, vision)
