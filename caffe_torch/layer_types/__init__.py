"""Built-in layer types. Each module registers its types in caffe_torch.layer_factory when
imported; the factory imports a module the first time a net names one of its types."""
