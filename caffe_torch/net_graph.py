"""Proto-level steps of Caffe's Net::Init: state filtering and automatic Split layers.

`filter_net` keeps the layers whose include/exclude rules the NetState (phase, level,
stages) meets; `insert_splits` gives every blob consumed more than once (or consumed and
also used as a loss) a Split layer, named exactly as Caffe names it, so that diffs from
the consumers are summed:
    layer  <blob>_<producer>_<top index>_split
    tops   <blob>_<producer>_<top index>_split_<k>
Once the layers are set up, `check_layer_names` refuses two of one name holding parameters.
"""
from collections import defaultdict

from caffe_torch.errors import LayerSetupError
from caffe_torch.proto import caffe_pb2


def state_meets_rule(state, rule):
    """Caffe's StateMeetsRule: phase, level range, all `stage`s and no `not_stage`."""
    if rule.HasField('phase') and rule.phase != state.phase:
        return False
    if rule.HasField('min_level') and state.level < rule.min_level:
        return False
    if rule.HasField('max_level') and state.level > rule.max_level:
        return False
    stages = set(state.stage)
    return all(s in stages for s in rule.stage) and \
        not any(s in stages for s in rule.not_stage)


def filter_net(net, source='<net>'):
    """A copy of `net` keeping the layers that net.state includes."""
    filtered = caffe_pb2.NetParameter()
    filtered.CopyFrom(net)
    del filtered.layer[:]
    for layer in net.layer:
        if layer.include and layer.exclude:
            raise LayerSetupError(
                f'{source}: layer "{layer.name}" has both include and exclude rules; '
                f'Caffe takes one kind only. Keep include or exclude.')
        if _included(layer, net.state):
            filtered.layer.add().CopyFrom(layer)
    return filtered


def _included(layer, state):
    if layer.include:
        return any(state_meets_rule(state, rule) for rule in layer.include)
    return not any(state_meets_rule(state, rule) for rule in layer.exclude)


def check_layer_names(names, layers, source='<net>'):
    """Refuse two layers of one name when either holds parameters.

    Caffe accepts them, but weights are matched by layer name (CopyTrainedLayersFrom takes
    the first layer of the name), so a saved and reloaded net loses one layer's weights.
    Parameter-less layers may share a name, as the two "loss" layers of Caffe's own
    examples/mnist/mnist_autoencoder.prototxt do: nothing is matched by theirs.
    """
    first = {}
    for i, (name, layer) in enumerate(zip(names, layers)):
        j = first.setdefault(name, i)
        if j != i and (layer.blobs or layers[j].blobs):
            raise LayerSetupError(
                f'{source}: layers {j} ({layers[j].type}) and {i} ({layer.type}) are both '
                f'named "{name}", and weights are matched by layer name: Caffe would save '
                f'both but load them into the first one only, silently losing the other\'s '
                f'weights (net.params shows one of them). Rename one of the layers.')


def split_layer_name(layer_name, blob_name, top_index):
    return f'{blob_name}_{layer_name}_{top_index}_split'


def split_blob_name(layer_name, blob_name, top_index, split_index):
    return f'{blob_name}_{layer_name}_{top_index}_split_{split_index}'


def insert_splits(net, source='<net>'):
    """A copy of `net` with Split layers after every top that is used more than once."""
    producer_of, uses, loss_weight, source_of = _count_uses(net, source)
    out = caffe_pb2.NetParameter()
    out.CopyFrom(net)
    del out.layer[:]
    next_split = defaultdict(int)
    for i, original in enumerate(net.layer):
        layer = out.layer.add()
        layer.CopyFrom(original)
        for j, blob in enumerate(layer.bottom):
            top = source_of[(i, j)]
            if uses[top] > 1:
                producer = net.layer[top[0]].name
                layer.bottom[j] = split_blob_name(producer, blob, top[1], next_split[top])
                next_split[top] += 1
        for j, blob in enumerate(original.top):
            if uses[(i, j)] > 1:
                weight = loss_weight.get((i, j), 0.0)
                _add_split_layer(out, original.name, blob, j, uses[(i, j)], weight)
                if weight:
                    layer.ClearField('loss_weight')
                    next_split[(i, j)] += 1
    return out


def _count_uses(net, source):
    """Where each bottom comes from, and how often each top is consumed."""
    producer_of, uses, loss_weight, source_of = {}, defaultdict(int), {}, {}
    for i, layer in enumerate(net.layer):
        for j, blob in enumerate(layer.bottom):
            if blob not in producer_of:
                raise LayerSetupError(
                    f'{source}: layer "{layer.name}" reads unknown bottom blob "{blob}" '
                    f'(bottom index {j}); no earlier layer has it as a top. Check the '
                    f'name and the include/exclude rules of its producer.')
            source_of[(i, j)] = producer_of[blob]
            uses[producer_of[blob]] += 1
        for j, blob in enumerate(layer.top):
            producer_of[blob] = (i, j)
        for j, weight in enumerate(layer.loss_weight[:len(layer.top)]):
            top = producer_of[layer.top[j]]
            loss_weight[top] = weight
            if weight:
                uses[top] += 1
    return producer_of, uses, loss_weight, source_of


def _add_split_layer(net, producer, blob, top_index, count, loss_weight):
    split = net.layer.add(name=split_layer_name(producer, blob, top_index), type='Split',
                          bottom=[blob])
    for k in range(count):
        split.top.append(split_blob_name(producer, blob, top_index, k))
        if loss_weight:  # ConfigureSplitLayer: the loss on top 0, weight 0 on the others
            split.loss_weight.append(loss_weight if k == 0 else 0)
