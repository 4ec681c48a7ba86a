"""The typed form of a model's recipe (nets/models.py): what builds its nets, its solver's
settings, the stages it starts from and how, and the outputs it is scored on.

A recipe names its behaviour in fields, not through its id: how the weights start is an
`Init`, the scored outputs are `Head`s, the stages before it a tuple of ids. Defaults are
the paper's heavy recipe (SGD, fixed lr, momentum 0.99, weight decay 5e-4, batch 1,
summed loss), which every released FCN but AlexNet's and GoogLeNet's uses.
"""
import enum
from dataclasses import dataclass
from typing import Callable, Optional

FROM_SCRATCH = 'scratch (msra fillers)'   # the init of a net trained from its fillers


class Init(enum.Enum):
    """How a stage's train net receives its initial weights (solve.stages.initialise)."""
    FILLERS = 'fillers'         # no parent: the fillers' values
    COPY = 'copy'               # copy_from by layer name; new scorers keep their zeros
    TRANSPLANT = 'transplant'   # a classifier's fc6/fc7 reshaped into convolutions
    COLOR_D = 'color-d'         # transplant, then conv1_1 -> conv1_1_bgrd (a depth channel)
    FUSION = 'fusion'           # transplant each parent into its stream (Recipe.streams)


@dataclass(frozen=True)
class Head:
    """One scored output: its name in scores.csv, the blobs scored, and whether its
    classes are those present in the test set only (SIFT Flow's semantic head)."""
    head: str
    score: str
    label: str
    loss: str
    present_only: bool = False


SEGMENTATION = (Head('score', 'score', 'label', 'loss'),)
CLASSIFICATION = (Head('class', 'fc8', 'label', 'loss'),)
SIFTFLOW = (Head('sem', 'score_sem', 'sem', 'loss', present_only=True),
            Head('geo', 'score_geo', 'geo', 'loss_geo'))


@dataclass(frozen=True)
class Recipe:
    """One model of the paper (or of the demo). `build(split=...)` returns its NetSpec;
    `rounds` x `step` is the reference's solve.py loop; `streams` are the layer-name
    suffixes of a FUSION net's streams, one per parent."""
    build: Callable
    dataset: str
    base_lr: float
    parents: tuple
    init: Init
    expected: str
    test_iter: int
    max_iter: int
    rounds: int
    step: int
    snapshot: int = 0
    heads: tuple = SEGMENTATION
    type: str = 'SGD'
    momentum: float = 0.99
    momentum2: Optional[float] = None
    iter_size: int = 1
    normalized: bool = False
    weight_decay: float = 5e-4
    lr_policy: str = 'fixed'
    gamma: Optional[float] = None
    stepsize: Optional[int] = None
    random_seed: Optional[int] = None
    ours: bool = False
    origin: Optional[str] = None
    lr_rule: Optional[str] = None
    notes: Optional[str] = None  # a Markdown file under nets/ its README ends with
    task: str = 'segmentation'
    streams: tuple = ('',)

    def __post_init__(self):
        wants = {Init.FILLERS: 0, Init.FUSION: 2}.get(self.init, 1)
        if len(self.parents) != wants:
            raise ValueError(f'an {self.init.name} recipe starts from {wants} parent(s), not '
                             f'{self.parents}: fix its parents or its init in nets/models.py')
        if len(self.streams) != max(len(self.parents), 1):
            raise ValueError(f'{len(self.parents)} parent(s) need as many streams, not '
                             f'{self.streams}: give FUSION recipes one suffix per parent')

    @property
    def init_display(self):
        """The parents as READMEs and tables show them ('a + b'; FROM_SCRATCH if none)."""
        return ' + '.join(self.parents) if self.parents else FROM_SCRATCH

    @property
    def modalities(self):
        """A NYUD net's inputs ('color', 'hha', 'color-d', 'color-hha'), else None."""
        return getattr(self.build, 'keywords', {}).get('modalities')

    @property
    def is_classifier(self):
        return self.task == 'classification'
