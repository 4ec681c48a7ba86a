"""FCN's data layers as caffe.Layer subclasses (type "Python"), one image per forward.

    data_layers.voc            VOCSegDataLayer, SBDDSegDataLayer     tops data, label
    data_layers.nyud           NYUDSegDataLayer                      tops from color, depth,
                                                                     hha, label
    data_layers.siftflow       SIFTFlowSegDataLayer                  tops data, sem, geo
    data_layers.pascalcontext  PASCALContextSegDataLayer             tops data, label

All share data_layers.base.SegDataLayer (param_str schema, order, reshape); dataset folders
come from data_layers.paths.
"""
