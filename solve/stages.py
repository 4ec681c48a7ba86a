"""How each model's weights start, and the staged pipelines that chain models.

    ILSVRC classifier --weights.convert--> vgg16-fcn / alexnet-fcn / googlenet-fcn
    vgg16-fcn -> voc-fcn32s -> voc-fcn16s -> voc-fcn8s      (copy_from: new scorers stay 0)
    demo-classifier (from scratch) -> demo-fcn32s -> ...     (transplant: fc6/fc7 reshaped)
    vgg16-fcn -> nyud-fcn32s-color-d                         (conv1_1 -> conv1_1_bgrd surgery)
    nyud-fcn32s-color + nyud-fcn32s-hha -> nyud-fcn32s-color-hha   (transplant per stream)
The chain of a model is read from its recipe's `parents`, the surgery from its `init` kind
(nets/recipe.py's Init).
"""
import logging

from nets.generate import NETS
from nets.models import MODELS
from nets.recipe import Init
from surgery import color_d, interp, params_of, transfer, transplant
from surgery.transplants import COPIED, RESHAPED

log = logging.getLogger('fcn.solve')
CONVERTED = {'vgg16-fcn': 'vgg16', 'alexnet-fcn': 'caffenet', 'googlenet-fcn': 'googlenet'}


def parents(model_id):
    """The models (or converted ILSVRC initialisations) `model_id` starts from; none for a
    net trained from its fillers."""
    return list(MODELS[model_id].parents)


def chain(model_id):
    """Every stage `model_id` needs, earliest first (converted initialisations included)."""
    order = []

    def visit(name):
        for parent in parents(name) if name in MODELS else []:
            visit(parent)
        if name not in order:
            order.append(name)
    visit(model_id)
    return order


class InitWeightsError(ValueError):
    """Initial weights that leave layers the previous stage trained at their fillers, or
    that hold NaN or Inf."""


def initialise(model_id, net, init):
    """Load `init` into the train net as `model_id` needs it; logs the surgery report and
    fails if a layer the previous stage has got nothing (a truncated caffemodel, another
    model's). `init` None leaves the fillers' values (a net trained from scratch)."""
    if init is None:
        log.info('%s starts from its fillers', model_id)
        return
    kind = MODELS[model_id].init
    if kind in (Init.FUSION, Init.FILLERS) and not isinstance(init, (list, tuple)):
        kind = Init.COPY  # one caffemodel (--init): this net's own weights, copied by name
    reports = _SURGERY[kind](model_id, net, init)
    _check_complete(model_id, init, reports)
    _check_finite(net, init)


def _fusion(model_id, net, init):
    """Each parent's weights into its stream, fc6/fc7 transplanted, names suffixed."""
    reports = []
    for stream, weights in zip(MODELS[model_id].streams, init):
        reports.append(transplant(net, params_of(weights), suffix=stream, verbose=False))
        log.info('transplanting %s into the %s stream\n%s', weights, stream, reports[-1])
    return reports


def _transplant(model_id, net, init):
    report = transplant(net, params_of(_single(model_id, init)), verbose=False)
    log.info('transplanted the classifier %s (fc -> conv)\n%s', init, report)
    return [report]


def _color_d(model_id, net, init):
    report = transplant(net, params_of(_single(model_id, init)), verbose=False)
    color_d(net, params_of(init))
    log.info('transplanted %s; conv1_1_bgrd from conv1_1 and its mean\n%s', init, report)
    return [report]


def _copy(model_id, net, init):
    report = transfer(net, _single(model_id, init), verbose=False)
    log.info('initialised from %s\n%s', init, report)
    return [report]


def _single(model_id, init):
    """One caffemodel: a single-stream recipe has one parent."""
    if isinstance(init, (list, tuple)):
        raise InitWeightsError(f'{model_id} starts from one caffemodel, not {_names(init)}; '
                               f'pass only the weights of {" + ".join(parents(model_id))}')
    return init


_SURGERY = {Init.FUSION: _fusion, Init.TRANSPLANT: _transplant, Init.COLOR_D: _color_d,
            Init.COPY: _copy}


def _check_finite(net, init):
    import numpy as np
    bad = [name for name, blobs in net.params.items()
           if any(not np.isfinite(blob.data).all() for blob in blobs)]
    if bad:
        raise InitWeightsError(f'the initial weights {_names(init)} hold NaN or Inf in '
                               f'{", ".join(bad[:5])}: the file is damaged. Pass a sound '
                               f'caffemodel (rerun the stage that wrote it).')


def _check_complete(model_id, init, reports):
    filled = {row.target for report in reports for row in report
              if row.action in (COPIED, RESHAPED)}
    missing = [name for name in required_layers(model_id) if name not in filled]
    if missing:
        shown = ', '.join(missing[:8]) + (f' and {len(missing) - 8} more'
                                          if len(missing) > 8 else '')
        raise InitWeightsError(
            f'{model_id}: the initial weights {_names(init)} give nothing to {len(missing)} '
            f'layer(s) that {" and ".join(parents(model_id))} trained: {shown}. The file '
            f'is truncated or of another model; pass the previous stage\'s caffemodel '
            f'(or rerun it), or the released weights of the right model.')


def _names(init):
    return ' + '.join(map(str, init)) if isinstance(init, (list, tuple)) else str(init)


def required_layers(model_id):
    """The layers of `model_id`'s train net with weights that its parents also have: what
    its initialisation must fill (new layers, such as FCN-16s's score_pool4, start at
    their fillers by design). Per stream suffix for late fusion."""
    ours = _weighted_layers(NETS / model_id / 'train.prototxt')
    required = []
    for parent, suffix in zip(parents(model_id), _suffixes(model_id)):
        theirs = {name + suffix for name in _weighted_layers(_parent_net(parent))}
        required += [name for name in ours if name in theirs and name not in required]
    return required


def _suffixes(model_id):
    """The layer-name suffix each parent's layers take in `model_id`'s net."""
    return MODELS[model_id].streams


def _parent_net(parent):
    if parent in CONVERTED:
        from weights.convert import CONVERSIONS
        return NETS / CONVERSIONS[CONVERTED[parent]].classifier_net
    return NETS / parent / 'train.prototxt'


WEIGHTED_TYPES = {'Convolution', 'Deconvolution', 'InnerProduct', 'Scale', 'Bias',
                  'BatchNorm', 'PReLU', 'Embed'}


def _weighted_layers(prototxt):
    from backend import files
    net = files.read_prototxt(prototxt)
    return [layer.name for layer in net.layer if layer.type in WEIGHTED_TYPES]


def bilinear(net, prototxt):
    """Bilinear kernels into every frozen Deconvolution (selected by type and lr_mult) of
    `net`, built from the file `prototxt`."""
    log.info('bilinear upsampling in %s', ', '.join(interp(net, prototxt)) or 'no layer')
