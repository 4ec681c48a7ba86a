"""Carry legacy net and solver definitions to the current format, as Caffe does on read.

Caffe's `UpgradeNetAsNeeded` applies, in this order:
  1. V0 -> V1: `layers { layer { type: "conv" ... } }` (padding layers folded into the
     following conv/pool's pad, flat V0 fields moved into the V1 *_param messages);
  2. data transformation: scale/mean_file/crop_size/mirror of V1 data layers move into
     transform_param;
  3. V1 -> V2: `layers` (LayerType enum, blobs_lr, weight_decay) become `layer`
     (type string, ParamSpec lr_mult/decay_mult);
  4. net inputs: `input` with `input_dim`/`input_shape` become an Input layer in front;
  5. BatchNorm layers that declare three ParamSpecs get lr_mult = decay_mult = 0.
Weight blobs are left as written (legacy 4-D num/channels/height/width included); the
shape rule that lets a legacy 1x1x1xN bias fill an N-vector lives with blob loading.

Where Caffe only logs an incompatibility and continues, we raise UpgradeError: a net that
silently loses a parameter trains differently, and the user should hear about it.
"""
from caffe_torch.errors import UpgradeError
from caffe_torch.proto import caffe_pb2

V1 = caffe_pb2.V1LayerParameter

# V1 LayerType enum value name -> layer type string (every value of the enum but NONE).
V1_TYPE_NAMES = {
    'ABSVAL': 'AbsVal', 'ACCURACY': 'Accuracy', 'ARGMAX': 'ArgMax', 'BNLL': 'BNLL',
    'CONCAT': 'Concat', 'CONTRASTIVE_LOSS': 'ContrastiveLoss',
    'CONVOLUTION': 'Convolution', 'DECONVOLUTION': 'Deconvolution', 'DATA': 'Data',
    'DROPOUT': 'Dropout', 'DUMMY_DATA': 'DummyData', 'EUCLIDEAN_LOSS': 'EuclideanLoss',
    'ELTWISE': 'Eltwise', 'EXP': 'Exp', 'FLATTEN': 'Flatten', 'HDF5_DATA': 'HDF5Data',
    'HDF5_OUTPUT': 'HDF5Output', 'HINGE_LOSS': 'HingeLoss', 'IM2COL': 'Im2col',
    'IMAGE_DATA': 'ImageData', 'INFOGAIN_LOSS': 'InfogainLoss',
    'INNER_PRODUCT': 'InnerProduct', 'LRN': 'LRN', 'MEMORY_DATA': 'MemoryData',
    'MULTINOMIAL_LOGISTIC_LOSS': 'MultinomialLogisticLoss', 'MVN': 'MVN',
    'POOLING': 'Pooling', 'POWER': 'Power', 'RELU': 'ReLU', 'SIGMOID': 'Sigmoid',
    'SIGMOID_CROSS_ENTROPY_LOSS': 'SigmoidCrossEntropyLoss', 'SILENCE': 'Silence',
    'SOFTMAX': 'Softmax', 'SOFTMAX_LOSS': 'SoftmaxWithLoss', 'SPLIT': 'Split',
    'SLICE': 'Slice', 'TANH': 'TanH', 'WINDOW_DATA': 'WindowData',
    'THRESHOLD': 'Threshold',
}

# V0 type string -> V1 LayerType enum value name.
V0_TYPE_NAMES = {
    'accuracy': 'ACCURACY', 'bnll': 'BNLL', 'concat': 'CONCAT', 'conv': 'CONVOLUTION',
    'data': 'DATA', 'dropout': 'DROPOUT', 'euclidean_loss': 'EUCLIDEAN_LOSS',
    'flatten': 'FLATTEN', 'hdf5_data': 'HDF5_DATA', 'hdf5_output': 'HDF5_OUTPUT',
    'im2col': 'IM2COL', 'images': 'IMAGE_DATA', 'infogain_loss': 'INFOGAIN_LOSS',
    'innerproduct': 'INNER_PRODUCT', 'lrn': 'LRN',
    'multinomial_logistic_loss': 'MULTINOMIAL_LOGISTIC_LOSS', 'pool': 'POOLING',
    'relu': 'RELU', 'sigmoid': 'SIGMOID', 'softmax': 'SOFTMAX',
    'softmax_loss': 'SOFTMAX_LOSS', 'split': 'SPLIT', 'tanh': 'TANH',
    'window_data': 'WINDOW_DATA',
}

# V0 field -> {V0 type: (V1 submessage, its field)}; '*' applies to every type.
# Repeated targets (pad, kernel_size, stride) are appended to, the rest assigned.
V0_FIELDS = {
    'num_output': {'conv': ('convolution_param', 'num_output'),
                   'innerproduct': ('inner_product_param', 'num_output')},
    'biasterm': {'conv': ('convolution_param', 'bias_term'),
                 'innerproduct': ('inner_product_param', 'bias_term')},
    'weight_filler': {'conv': ('convolution_param', 'weight_filler'),
                      'innerproduct': ('inner_product_param', 'weight_filler')},
    'bias_filler': {'conv': ('convolution_param', 'bias_filler'),
                    'innerproduct': ('inner_product_param', 'bias_filler')},
    'pad': {'conv': ('convolution_param', 'pad'), 'pool': ('pooling_param', 'pad')},
    'kernelsize': {'conv': ('convolution_param', 'kernel_size'),
                   'pool': ('pooling_param', 'kernel_size')},
    'group': {'conv': ('convolution_param', 'group')},
    'stride': {'conv': ('convolution_param', 'stride'),
               'pool': ('pooling_param', 'stride')},
    'pool': {'pool': ('pooling_param', 'pool')},
    'dropout_ratio': {'dropout': ('dropout_param', 'dropout_ratio')},
    'local_size': {'lrn': ('lrn_param', 'local_size')},
    'alpha': {'lrn': ('lrn_param', 'alpha')},
    'beta': {'lrn': ('lrn_param', 'beta')},
    'k': {'lrn': ('lrn_param', 'k')},
    'source': {'data': ('data_param', 'source'),
               'hdf5_data': ('hdf5_data_param', 'source'),
               'images': ('image_data_param', 'source'),
               'window_data': ('window_data_param', 'source'),
               'infogain_loss': ('infogain_loss_param', 'source')},
    'scale': {'*': ('transform_param', 'scale')},
    'meanfile': {'*': ('transform_param', 'mean_file')},
    'batchsize': {'data': ('data_param', 'batch_size'),
                  'hdf5_data': ('hdf5_data_param', 'batch_size'),
                  'images': ('image_data_param', 'batch_size'),
                  'window_data': ('window_data_param', 'batch_size')},
    'cropsize': {'*': ('transform_param', 'crop_size')},
    'mirror': {'*': ('transform_param', 'mirror')},
    'rand_skip': {'data': ('data_param', 'rand_skip'),
                  'images': ('image_data_param', 'rand_skip')},
    'shuffle_images': {'images': ('image_data_param', 'shuffle')},
    'new_height': {'images': ('image_data_param', 'new_height')},
    'new_width': {'images': ('image_data_param', 'new_width')},
    'concat_dim': {'concat': ('concat_param', 'concat_dim')},
    'det_fg_threshold': {'window_data': ('window_data_param', 'fg_threshold')},
    'det_bg_threshold': {'window_data': ('window_data_param', 'bg_threshold')},
    'det_fg_fraction': {'window_data': ('window_data_param', 'fg_fraction')},
    'det_context_pad': {'window_data': ('window_data_param', 'context_pad')},
    'det_crop_mode': {'window_data': ('window_data_param', 'crop_mode')},
    'hdf5_output_param': {'hdf5_output': ('hdf5_output_param', None)},
}
V0_COPIED = ('name', 'type', 'blobs', 'blobs_lr', 'weight_decay')
TRANSFORM_FIELDS = ('scale', 'mean_file', 'crop_size', 'mirror')
DATA_PARAMS = {'DATA': 'data_param', 'IMAGE_DATA': 'image_data_param',
               'WINDOW_DATA': 'window_data_param'}


def net_needs_upgrade(net):
    """True when any of the five upgrade steps would change `net`."""
    return (_needs_v0(net) or _needs_data_upgrade(net) or len(net.layers) > 0
            or len(net.input) > 0 or any(_is_old_batch_norm(l) for l in net.layer))


def upgrade_net(net, source='<net>'):
    """Upgrade a NetParameter in place, in Caffe's order; `source` names it in errors."""
    if _needs_v0(net):
        _upgrade_v0_net(net, source)
    if _needs_data_upgrade(net):
        _upgrade_data_transformation(net)
    if len(net.layers):
        _upgrade_v1_net(net, source)
    if len(net.input):
        _upgrade_net_input(net, source)
    for layer in net.layer:
        if _is_old_batch_norm(layer):
            for spec in layer.param:
                spec.lr_mult, spec.decay_mult = 0.0, 0.0
    return net


def upgrade_solver(solver, source='<solver>'):
    """Turn the deprecated `solver_type` enum into the `type` string, in place."""
    if not solver.HasField('solver_type'):
        return solver
    if solver.HasField('type'):
        raise UpgradeError(
            f'{source}: both the deprecated `solver_type` ({solver.solver_type}) and '
            f'`type` ("{solver.type}") are set; delete `solver_type`.')
    names = {'SGD': 'SGD', 'NESTEROV': 'Nesterov', 'ADAGRAD': 'AdaGrad',
             'RMSPROP': 'RMSProp', 'ADADELTA': 'AdaDelta', 'ADAM': 'Adam'}
    enum = caffe_pb2.SolverParameter.SolverType.Name(solver.solver_type)
    solver.type = names[enum]
    solver.ClearField('solver_type')
    return solver


def _needs_v0(net):
    return any(l.HasField('layer') for l in net.layers)


def _needs_data_upgrade(net):
    for layer in net.layers:
        field = DATA_PARAMS.get(V1.LayerType.Name(layer.type))
        if field and any(getattr(layer, field).HasField(f) for f in TRANSFORM_FIELDS):
            return True
    return False


def _is_old_batch_norm(layer):
    return layer.type == 'BatchNorm' and len(layer.param) == 3


def _upgrade_v0_net(net, source):
    v0_layers = _fold_padding_layers(net, source)
    del net.layers[:]
    for v0 in v0_layers:
        _upgrade_v0_layer(v0, net.layers.add(), source)


def _fold_padding_layers(net, source):
    """Drop V0 "padding" layers, moving their pad into the conv/pool that reads them."""
    producer = {name: None for name in net.input}
    kept = []
    for v0 in net.layers:
        if v0.layer.type != 'padding':
            kept.append(_copy(v0))
        for j, bottom in enumerate(v0.bottom):
            if bottom not in producer:
                raise UpgradeError(
                    f'{source}: V0 layer "{v0.layer.name}" reads blob "{bottom}", which '
                    f'no earlier layer produces and which is not a net input.')
            pad_layer = producer[bottom]
            if pad_layer is None or pad_layer.layer.type != 'padding':
                continue
            if v0.layer.type not in ('conv', 'pool') or len(v0.bottom) != 1:
                raise UpgradeError(
                    f'{source}: V0 padding layer "{pad_layer.layer.name}" feeds layer '
                    f'"{v0.layer.name}" of type "{v0.layer.type}"; Caffe only folds '
                    f'padding into a single-input "conv" or "pool" layer.')
            kept[-1].layer.pad = pad_layer.layer.pad
            kept[-1].bottom[j] = pad_layer.bottom[0]
        for top in v0.top:
            producer[top] = v0
    return kept


def _upgrade_v0_layer(v0, v1, source):
    v1.bottom.extend(v0.bottom)
    v1.top.extend(v0.top)
    old = v0.layer
    kind = old.type
    if old.HasField('type'):
        if kind not in V0_TYPE_NAMES:
            raise UpgradeError(
                f'{source}: V0 layer "{old.name}" has unknown type "{kind}"; known V0 '
                f'types: {", ".join(sorted(V0_TYPE_NAMES))}.')
        v1.type = V1.LayerType.Value(V0_TYPE_NAMES[kind])
    if old.HasField('name'):
        v1.name = old.name
    v1.blobs.extend(old.blobs)
    v1.blobs_lr.extend(old.blobs_lr)
    v1.weight_decay.extend(old.weight_decay)
    for field, value in old.ListFields():
        if field.name in V0_COPIED:
            continue
        _move_v0_field(old, field.name, value, v1, source)


def _move_v0_field(old, name, value, v1, source):
    targets = V0_FIELDS.get(name, {})
    target = targets.get('*') or targets.get(old.type)
    if target is None:
        raise UpgradeError(
            f'{source}: V0 layer "{old.name}" of type "{old.type}" sets `{name}`, which '
            f'Caffe cannot carry to that type; remove it or fix the layer type.')
    message_name, field_name = target
    message = getattr(v1, message_name)
    if field_name is None:
        message.CopyFrom(value)
    elif name == 'pool':
        message.pool = caffe_pb2.PoolingParameter.PoolMethod.Value(
            caffe_pb2.V0LayerParameter.PoolMethod.Name(value))
    elif name in ('weight_filler', 'bias_filler'):
        getattr(message, field_name).CopyFrom(value)
    elif message.DESCRIPTOR.fields_by_name[field_name].is_repeated:
        getattr(message, field_name).append(value)
    else:
        setattr(message, field_name, value)


def _upgrade_data_transformation(net):
    for layer in net.layers:
        field = DATA_PARAMS.get(V1.LayerType.Name(layer.type))
        if not field:
            continue
        param = getattr(layer, field)
        for name in TRANSFORM_FIELDS:
            if param.HasField(name):
                setattr(layer.transform_param, name, getattr(param, name))
                param.ClearField(name)


def _upgrade_v1_net(net, source):
    if len(net.layer):
        raise UpgradeError(
            f'{source}: the net mixes V1 `layers` and current `layer` definitions; '
            f'Caffe would drop the `layer` ones. Write every layer in one format.')
    v1_layers = [_copy(l) for l in net.layers]
    del net.layers[:]
    for i, v1 in enumerate(v1_layers):
        _upgrade_v1_layer(v1, net.layer.add(), f'{source}: V1 layer {i} "{v1.name}"')


def _upgrade_v1_layer(v1, layer, where):
    if v1.HasField('layer'):
        raise UpgradeError(f'{where} still holds a V0 `layer`; it cannot be upgraded.')
    layer.bottom.extend(v1.bottom)
    layer.top.extend(v1.top)
    if v1.HasField('name'):
        layer.name = v1.name
    layer.include.extend(v1.include)
    layer.exclude.extend(v1.exclude)
    if v1.HasField('type'):
        enum = V1.LayerType.Name(v1.type)
        layer.type = '' if enum == 'NONE' else V1_TYPE_NAMES[enum]
    layer.blobs.extend(v1.blobs)
    _param_specs(layer, len(v1.param), lambda s, i: setattr(s, 'name', v1.param[i]))
    _param_specs(layer, len(v1.blob_share_mode), lambda s, i: setattr(
        s, 'share_mode', caffe_pb2.ParamSpec.DimCheckMode.Value(
            V1.DimCheckMode.Name(v1.blob_share_mode[i]))))
    _param_specs(layer, len(v1.blobs_lr),
                 lambda s, i: setattr(s, 'lr_mult', v1.blobs_lr[i]))
    _param_specs(layer, len(v1.weight_decay),
                 lambda s, i: setattr(s, 'decay_mult', v1.weight_decay[i]))
    layer.loss_weight.extend(v1.loss_weight)
    for field, value in v1.ListFields():
        if field.name.endswith('_param'):
            getattr(layer, field.name).CopyFrom(value)


def _param_specs(layer, count, assign):
    for i in range(count):
        while len(layer.param) <= i:
            layer.param.add()
        assign(layer.param[i], i)


def _upgrade_net_input(net, source):
    """Replace deprecated net inputs by an Input layer named "input", placed first."""
    has_shape, has_dim = len(net.input_shape) > 0, len(net.input_dim) > 0
    if has_shape or has_dim:
        _check_input_counts(net, has_shape, source)
        layers = [_copy(l) for l in net.layer]
        del net.layer[:]
        layer = net.layer.add(name='input', type='Input')
        for i, name in enumerate(net.input):
            layer.top.append(name)
            shape = layer.input_param.shape.add()
            if has_shape:
                shape.CopyFrom(net.input_shape[i])
            else:
                shape.dim.extend(net.input_dim[4 * i:4 * i + 4])
        net.layer.extend(layers)
    # A legacy caffemodel may name inputs without shapes: dropping them is enough.
    net.ClearField('input')
    net.ClearField('input_shape')
    net.ClearField('input_dim')


def _check_input_counts(net, has_shape, source):
    n = len(net.input)
    if has_shape and len(net.input_shape) != n:
        raise UpgradeError(
            f'{source}: {n} net inputs but {len(net.input_shape)} input_shape entries; '
            f'give exactly one input_shape per input.')
    if not has_shape and len(net.input_dim) != 4 * n:
        raise UpgradeError(
            f'{source}: {n} net inputs need {4 * n} input_dim values (num, channels, '
            f'height, width each), got {len(net.input_dim)}.')


def _copy(message):
    clone = type(message)()
    clone.CopyFrom(message)
    return clone

