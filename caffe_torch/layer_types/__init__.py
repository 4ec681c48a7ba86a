"""Built-in layer types, registered in caffe_torch.layer_factory on import."""
from caffe_torch.layer_types import (activations, common, data, db_data,  # noqa: F401
                                     elementwise, hdf5_layers, image_data, indexing, loss,
                                     lstm_unit, margin_losses, memory_data, neuron,
                                     normalization, pooling, probability_losses,
                                     python_layer, recurrent, reduction, spatial, vision)
