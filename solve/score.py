"""Segmentation scoring as in the FCN paper (CVPR 2015, §5) and fcn's score.py.

All four metrics come from one confusion histogram h (rows ground truth, columns prediction),
accumulated with fcn's fast_hist over every test image:

    pixel accuracy     sum_i h_ii / sum h                       ('overall accuracy')
    mean accuracy      nanmean_i h_ii / sum_j h_ij
    mean IU            nanmean_i h_ii / (sum_j h_ij + sum_j h_ji - h_ii)
    f.w. IU            sum_{i: freq_i > 0} freq_i * IU_i,  freq_i = sum_j h_ij / sum h  ('fwavacc')

nanmean drops the 0/0 classes (neither labelled nor predicted); a class predicted but never
labelled scores IU 0. The paper's SIFT Flow table instead averages over the classes present
in the test set only: `compute(present_only=True)`.
"""
import dataclasses
import datetime
import logging
import os

import numpy as np

import backend
from solve import vis
from solve.console import progress_bar

logger = logging.getLogger('fcn.score')


@dataclasses.dataclass(frozen=True, eq=False)  # eq would compare the per-class arrays
class SegMetrics:
    """The paper's four metrics (fractions, not percent) and their per-class terms."""
    pixel_accuracy: float
    mean_accuracy: float
    mean_iu: float
    fw_iu: float
    class_iu: np.ndarray        # (n,) nan where 0/0
    class_accuracy: np.ndarray  # (n,) nan where the class is absent from the ground truth
    class_pixels: np.ndarray    # (n,) ground-truth pixels per class
    class_names: tuple
    present_only: bool = False
    loss: float | None = None   # mean test loss, when scored by evaluate()

    def as_dict(self):
        return {'pixel_accuracy': self.pixel_accuracy, 'mean_accuracy': self.mean_accuracy,
                'mean_iu': self.mean_iu, 'fw_iu': self.fw_iu, 'loss': self.loss}

    def __str__(self):
        rule = 'classes present in the ground truth' if self.present_only else 'nanmean'
        rows = [f'pixel acc {100 * self.pixel_accuracy:.2f}  '
                f'mean acc {100 * self.mean_accuracy:.2f}  '
                f'mean IU {100 * self.mean_iu:.2f}  f.w. IU {100 * self.fw_iu:.2f}  ({rule})',
                f'{"class":<20} {"IU":>7} {"acc":>7} {"pixels":>12}']
        for name, iu, acc, pixels in zip(self.class_names, self.class_iu,
                                         self.class_accuracy, self.class_pixels):
            rows.append(f'{name:<20} {100 * iu:7.2f} {100 * acc:7.2f} {pixels:12d}')
        return '\n'.join(rows)


class ConfusionMatrix:
    """Confusion histogram of label maps against predictions (fcn's fast_hist).

    Ground-truth pixels equal to `ignore_label` (void) are dropped. Any other label outside
    [0, num_classes) raises, where fcn drops it silently: such a label means num_classes or
    the label source is wrong. Float labels (Caffe blobs) are truncated to int as
    SoftmaxWithLoss does.
    """

    def __init__(self, num_classes, class_names=None, ignore_label=255):
        if int(num_classes) != num_classes or num_classes < 1:
            raise ValueError(f'num_classes must be a positive integer, got {num_classes}')
        self.num_classes = n = int(num_classes)
        names = tuple(class_names) if class_names is not None else tuple(map(str, range(n)))
        if len(names) != n:
            raise ValueError(f'class_names has {len(names)} entries for {n} classes')
        self.class_names, self.ignore_label = names, ignore_label
        self.hist = np.zeros((n, n), dtype=np.int64)

    def update(self, label, prediction):
        """Add one image: label (H, W) ground truth, prediction (H, W) class indices."""
        n = self.num_classes
        gt, pred = np.asarray(label), np.asarray(prediction)
        if gt.shape != pred.shape:
            raise ValueError(f'label shape {gt.shape} != prediction shape {pred.shape}')
        gt = gt.astype(np.int64)
        keep = (gt >= 0) & (gt < n)
        self._check_labels(gt[~keep])
        pred = self._check_prediction(pred)[keep]
        self.hist += np.bincount(n * gt[keep] + pred, minlength=n * n).reshape(n, n)
        return self

    def _check_labels(self, outside):
        bad = outside[outside != self.ignore_label] if self.ignore_label is not None else outside
        if bad.size:
            raise ValueError(f'label value {bad[0]} is outside [0, {self.num_classes}) and is '
                             f'not the ignore_label {self.ignore_label}; check num_classes '
                             f'and the labels\' void value')

    def _check_prediction(self, pred):
        if pred.dtype.kind not in 'iub':
            raise TypeError(f'prediction must hold class indices, got dtype {pred.dtype}; '
                            f'take the argmax over the score channels first')
        if pred.size and (pred.min() < 0 or pred.max() >= self.num_classes):
            raise ValueError(f'prediction values [{pred.min()}, {pred.max()}] fall outside '
                             f'[0, {self.num_classes}); the score blob has more channels '
                             f'than num_classes?')
        return pred.astype(np.int64)

    def merge(self, other):
        """Add another matrix's counts (e.g. from another evaluation process); returns self."""
        if not isinstance(other, ConfusionMatrix):
            raise TypeError(f'can only merge a ConfusionMatrix, got {type(other).__name__}')
        if other.num_classes != self.num_classes:
            raise ValueError(f'cannot merge a {other.num_classes}-class matrix into a '
                             f'{self.num_classes}-class one')
        self.hist += other.hist
        return self

    def __iadd__(self, other):
        return self.merge(other)

    def __add__(self, other):
        total = ConfusionMatrix(self.num_classes, self.class_names, self.ignore_label)
        return total.merge(self).merge(other)

    def reset(self):
        self.hist[...] = 0

    def compute(self, present_only=False):
        """The four metrics; present_only averages accuracy and IU over the classes with
        ground-truth pixels (the paper's SIFT Flow rule), which changes mean IU only."""
        h = self.hist.astype(np.float64)
        diag, gt_pixels, predicted = np.diag(h), h.sum(1), h.sum(0)
        with np.errstate(divide='ignore', invalid='ignore'):
            pixel_acc = diag.sum() / h.sum()
            class_acc = diag / gt_pixels
            class_iu = diag / (gt_pixels + predicted - diag)
            freq = gt_pixels / h.sum()
        averaged = gt_pixels > 0 if present_only else np.ones(self.num_classes, bool)
        return SegMetrics(
            pixel_accuracy=float(pixel_acc),
            mean_accuracy=_nanmean(class_acc[averaged]),
            mean_iu=_nanmean(class_iu[averaged]),
            fw_iu=float((freq[freq > 0] * class_iu[freq > 0]).sum()) if h.sum() else np.nan,
            class_iu=class_iu, class_accuracy=class_acc,
            class_pixels=self.hist.sum(1), class_names=self.class_names,
            present_only=present_only)

    def __str__(self):
        return str(self.compute())


def _nanmean(values):
    """np.nanmean without its warning: nan when nothing is defined (an empty histogram)."""
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else np.nan


def evaluate(net, num_images, score_blob='score', label_blob='label', loss_blob='loss',
             num_classes=None, save_dir=None, ids=None, palette=None, progress=True,
             class_names=None, present_only=False):
    """Score a test net over num_images forwards, as fcn's compute_hist.

    The net's data layer supplies the images in its own sequential order; `ids` only names
    the saved PNGs, so it must follow that order. Per forward: argmax over the channel axis
    of score_blob (N x C x H x W, or N x C for a classifier, whose images count as pixels)
    against label_blob (N x 1 x H x W, or N); the loss blob (if the net has it) is summed.
    With save_dir, each prediction is written as {id}.png with the palette (VOC colours by
    default). Returns (metrics, mean loss or None, ConfusionMatrix).
    """
    _check_evaluate_args(net, num_images, (score_blob, label_blob), save_dir, ids)
    if save_dir is not None:
        os.makedirs(save_dir, exist_ok=True)  # fcn's os.mkdir fails on a second test
        palette = vis.make_palette(vis.PALETTE_SIZE) if palette is None else palette
    confusion, loss_sum = None, 0.0
    has_loss = loss_blob is not None and loss_blob in net.blobs
    backend.keep_blobs(net, [score_blob, label_blob] + ([loss_blob] if has_loss else []))
    with progress_bar(num_images, desc='scoring', enabled=progress) as bar:
        for i in range(num_images):
            net.forward()
            scores, label = net.blobs[score_blob].data, net.blobs[label_blob].data
            if confusion is None:
                confusion = ConfusionMatrix(num_classes or scores.shape[1], class_names)
            prediction = scores.argmax(axis=1)
            confusion.update(label[:, 0] if label.ndim == 4 else label, prediction)
            if has_loss:
                loss_sum += float(np.sum(net.blobs[loss_blob].data))
            if save_dir is not None:
                _check_one_map(prediction, score_blob)
                vis.save_label_png(os.path.join(save_dir, f'{ids[i]}.png'), prediction[0], palette)
            bar.update(1)
    mean_loss = loss_sum / num_images if has_loss else None
    metrics = dataclasses.replace(confusion.compute(present_only), loss=mean_loss)
    return metrics, mean_loss, confusion


def _check_one_map(prediction, score_blob):
    if prediction.ndim != 3 or prediction.shape[0] != 1:
        raise ValueError(f'save_dir writes one label map per forward, but {score_blob} gives '
                         f'predictions of shape {prediction.shape}; save from a batch-1 '
                         f'segmentation net (N x C x H x W with N = 1)')


def _check_evaluate_args(net, num_images, blob_names, save_dir, ids):
    if int(num_images) != num_images or num_images < 1:
        raise ValueError(f'num_images must be a positive integer, got {num_images}')
    for name in blob_names:
        if name not in net.blobs:
            raise KeyError(f'the net has no blob {name}; its blobs: {", ".join(net.blobs)}')
    if save_dir is not None and ids is None:
        raise ValueError(f'save_dir={save_dir!r} needs ids: one PNG name per test image')
    if ids is not None and len(ids) != num_images:
        raise ValueError(f'{len(ids)} ids for num_images={num_images}; give one id per '
                         f'image, in the data layer\'s order')


def seg_tests(solver, num_images, score_blob='score', label_blob='label', loss_blob='loss',
              save_format=None, ids=None, test_net_id=0, **kwargs):
    """Score test net `test_net_id` with the solver's current weights, as fcn's seg_tests.

    The test net shares the train net's parameters (share_with: no copy). save_format, a
    str.format pattern given the iteration (e.g. 'seg-iter{}'), names the folder for the
    predictions. The metrics are logged on 'fcn.score' in fcn's words and returned.
    """
    net = solver.test_nets[test_net_id]
    net.share_with(solver.net)
    save_dir = save_format.format(solver.iter) if save_format else None
    metrics, loss, _ = evaluate(net, num_images, score_blob, label_blob, loss_blob,
                                save_dir=save_dir, ids=ids, **kwargs)
    _log_metrics(solver.iter, metrics)
    return metrics


def _log_metrics(iteration, metrics):
    lines = [('loss', metrics.loss), ('overall accuracy', metrics.pixel_accuracy),
             ('mean accuracy', metrics.mean_accuracy), ('mean IU', metrics.mean_iu),
             ('fwavacc', metrics.fw_iu)]
    for name, value in lines:
        if value is not None:
            logger.info('>>> %s Iteration %d %s %s', datetime.datetime.now(), iteration,
                        name, value)
