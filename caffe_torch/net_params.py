"""Parameter bookkeeping of Net::Init (AppendParam, ShareWeights) as a Net mixin.

Every parameter blob gets a net-wide id. Unnamed ones and the first use of a name own
their blob and become learnable parameters with the lr_mult/decay_mult of their ParamSpec;
later uses of the name share the owner's data and diff (so their gradients add up), must
match its shape (STRICT) or count (PERMISSIVE), and may restate but not change its
multipliers.
"""
from caffe_torch.errors import LayerSetupError
from caffe_torch.proto import caffe_pb2


class ParamRegistry:
    """Net's parameter tables: params_list, param_owners, learnable_params, params_lr..."""

    def _append_params(self, layer_id, layer, net_param):
        """Register the layer's parameter blobs; True when any needs a diff.

        As Net::Init, whether a blob needs a diff comes from the net's copy of the layer
        parameter (`net_param`), its name and multipliers from the layer's own copy, which
        set-up may have extended (BatchNorm adds `lr_mult: 0` specs there): so a BatchNorm
        still counts as needing backward, and its blobs learn nothing.
        """
        specs, net_specs = layer.layer_param.param, net_param.param
        if len(net_specs) > len(layer.blobs):
            raise LayerSetupError(
                f'{self.source}: layer "{layer.name}" gives {len(net_specs)} param specs but '
                f'has {len(layer.blobs)} parameter blob(s); remove the extra `param`.')
        layer.param_propagate_down = []
        ids = []
        for j, blob in enumerate(layer.blobs):
            spec = specs[j] if j < len(specs) else caffe_pb2.ParamSpec()
            net_spec = net_specs[j] if j < len(net_specs) else caffe_pb2.ParamSpec()
            layer.param_propagate_down.append(net_spec.lr_mult != 0)
            ids.append(self._append_param(layer_id, layer, j, blob, spec))
        self.param_ids.append(ids)
        return any(layer.param_propagate_down)

    def _append_param(self, layer_id, layer, j, blob, spec):
        net_id = len(self.params_list)
        self.params_list.append(blob)
        self.param_display_names.append(spec.name or str(j))
        if not spec.name or spec.name not in self._param_by_name:
            if spec.name:
                self._param_by_name[spec.name] = (net_id, layer_id, j)
            self.param_owners.append(-1)
            self.learnable_param_ids.append(len(self.learnable_params))
            self.learnable_params.append(blob)
            self._has_lr.append(spec.HasField('lr_mult'))
            self._has_decay.append(spec.HasField('decay_mult'))
            self.params_lr.append(spec.lr_mult)
            self.params_weight_decay.append(spec.decay_mult)
            return net_id
        owner_id, owner_layer, owner_j = self._param_by_name[spec.name]
        self._check_shared_shape(spec, blob, owner_id, owner_layer, layer)
        self.param_owners.append(owner_id)
        learnable_id = self.learnable_param_ids[owner_id]
        self.learnable_param_ids.append(learnable_id)
        self._merge_mult(spec, 'lr_mult', learnable_id, self._has_lr, self.params_lr)
        self._merge_mult(spec, 'decay_mult', learnable_id, self._has_decay,
                         self.params_weight_decay)
        return net_id

    def _check_shared_shape(self, spec, blob, owner_id, owner_layer, layer):
        owner = self.params_list[owner_id]
        strict = spec.share_mode != caffe_pb2.ParamSpec.PERMISSIVE
        same = owner.shape == blob.shape if strict else owner.count == blob.count
        if not same:
            raise LayerSetupError(
                f'{self.source}: cannot share param "{spec.name}" owned by layer '
                f'"{self._layer_names[owner_layer]}" with layer "{layer.name}"; shape '
                f'mismatch: owner {owner.shape}, sharer {blob.shape}.')

    def _merge_mult(self, spec, field, learnable_id, has, values):
        if not spec.HasField(field):
            return
        if has[learnable_id] and values[learnable_id] != getattr(spec, field):
            raise LayerSetupError(
                f'{self.source}: shared param "{spec.name}" has mismatched {field}: '
                f'{values[learnable_id]} and {getattr(spec, field)}.')
        has[learnable_id], values[learnable_id] = True, getattr(spec, field)

    def _share_weights(self):
        for net_id, owner in enumerate(self.param_owners):
            if owner >= 0:
                self.params_list[net_id].share_data(self.params_list[owner])
                self.params_list[net_id].share_diff(self.params_list[owner])
