"""How each model's weights start, and the staged pipelines that chain models.

    ILSVRC classifier --weights.convert--> vgg16-fcn / alexnet-fcn / googlenet-fcn
    vgg16-fcn -> voc-fcn32s -> voc-fcn16s -> voc-fcn8s      (copy_from: new scorers stay 0)
    demo-classifier (from scratch) -> demo-fcn32s -> ...     (transplant: fc6/fc7 reshaped)
    vgg16-fcn -> nyud-fcn32s-color-d                         (conv1_1 -> conv1_1_bgrd surgery)
    nyud-fcn32s-color + nyud-fcn32s-hha -> nyud-fcn32s-color-hha   (transplant per stream)
The chain of a model is read from nets/models.py's `init` column.
"""
import logging

from nets.models import FROM_SCRATCH, MODELS
from surgery import color_d, interp, params_of, transfer, transplant

log = logging.getLogger('fcn.solve')
CONVERTED = {'vgg16-fcn': 'vgg16', 'alexnet-fcn': 'caffenet', 'googlenet-fcn': 'googlenet'}


def parents(model_id):
    """The models (or converted ILSVRC initialisations) `model_id` starts from; none for a
    net trained from its fillers."""
    init = MODELS[model_id]['init']
    return [] if init == FROM_SCRATCH else [p.strip() for p in init.split('+')]


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


def initialise(model_id, net, init):
    """Load `init` into the train net as `model_id` needs it; logs the surgery report.
    `init` None leaves the fillers' values (a net trained from scratch)."""
    if init is None:
        log.info('%s starts from its fillers', model_id)
    elif isinstance(init, (list, tuple)):
        for stream, weights in zip(('color', 'hha'), init):
            log.info('transplanting %s into the %s stream\n%s', weights, stream,
                     transplant(net, params_of(weights), suffix=stream, verbose=False))
    elif any(MODELS.get(p, {}).get('task') == 'classification' for p in parents(model_id)):
        log.info('transplanted the classifier %s (fc -> conv)\n%s', init,
                 transplant(net, params_of(init), verbose=False))
    elif model_id.endswith('color-d'):
        report = transplant(net, params_of(init), verbose=False)
        color_d(net, params_of(init))
        log.info('transplanted %s; conv1_1_bgrd from conv1_1 and its mean\n%s', init, report)
    else:
        log.info('initialised from %s\n%s', init, transfer(net, init, verbose=False))


def bilinear(net, prototxt):
    """Bilinear kernels into every frozen Deconvolution (selected by type and lr_mult) of
    `net`, built from the file `prototxt`."""
    log.info('bilinear upsampling in %s', ', '.join(interp(net, prototxt)) or 'no layer')
