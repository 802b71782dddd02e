"""Measuring a model on a dataset: accuracy, per-class precision/recall/F1, confusion.

A model and a dataset need not share their labels. The canonical 12-label test set, for
example, has ten words plus ``_silence_`` and ``_unknown_``, while a model may know thirty
words. The rule (:func:`label_mapping`): a model label the dataset also has is itself; any
other model label folds into the dataset's ``_unknown_`` (when the dataset has one) and is
otherwise kept as a column of its own, always wrong. Dataset labels the model cannot
predict are reported with their clip counts and count as errors.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kws.dataset import (
    SILENCE,
    UNKNOWN,
    Dataset,
    LabelPolicy,
    assign_labels,
    open_datasets,
)
from kws.errors import DatasetError, KwsError, UnreadableInputsError, UsageError
from kws.infer import open_runner
from kws.infer.clips import SPLIT_CHOICES, Progress, score_clips
from kws.modelfolder import ModelCard, Task, read_card, resolve_model_dir


@dataclass
class Evaluation:
    """A model's predictions on a dataset, summarised.

    ``confusion[i, j]`` counts clips of true label ``labels[i]`` predicted as
    ``labels[j]`` (after folding model labels onto the dataset's).
    """

    model: str
    data: list[str]
    split: str
    labels: list[str]
    confusion: np.ndarray
    model_labels: list[str]
    #: Model labels folded into another label: ``{model label: dataset label}``.
    folded: dict[str, str] = field(default_factory=dict)
    #: Dataset labels the model cannot predict: ``{label: clips}``.
    unknown_to_model: dict[str, int] = field(default_factory=dict)
    #: Files that could not be read: ``[(path, problem)]``.
    failed: list[tuple[str, str]] = field(default_factory=list)
    #: Entries of the dataset folders that cannot be clips (dangling links, pipes, folders
    #: named like audio): ``[(path, reason)]`` (:attr:`kws.dataset.Dataset.skipped`).
    skipped: list[tuple[str, str]] = field(default_factory=list)
    #: Remarks on the data (:attr:`kws.dataset.Dataset.notes`: the skipped entries grouped,
    #: speakers moved between splits...) and on the choice of runner.
    notes: list[str] = field(default_factory=list)
    #: The runner that scored the clips (``tflite``, ``keras``...).
    runner: str = ""

    @property
    def clips(self) -> int:
        return int(self.confusion.sum())

    @property
    def accuracy(self) -> float:
        total = self.confusion.sum()
        return float(np.trace(self.confusion) / total) if total else 0.0

    def class_metrics(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(precision, recall, f1, support)`` per label."""
        return class_metrics(self.confusion)

    def to_json(self) -> dict[str, Any]:
        """Everything as JSON-ready data (what ``kws evaluate --json`` prints)."""
        precision, recall, f1, support = self.class_metrics()
        present = support > 0
        return {
            "model": self.model,
            "data": self.data,
            "split": self.split,
            "clips": self.clips,
            "accuracy": round(self.accuracy, 6),
            "macro_f1": round(float(f1[present].mean()), 6) if present.any() else 0.0,
            "labels": self.labels,
            "per_class": {
                label: {
                    "precision": round(float(precision[i]), 6),
                    "recall": round(float(recall[i]), 6),
                    "f1": round(float(f1[i]), 6),
                    "support": int(support[i]),
                }
                for i, label in enumerate(self.labels)
            },
            "confusion": self.confusion.astype(int).tolist(),
            "model_labels": self.model_labels,
            "folded": self.folded,
            "unknown_to_model": self.unknown_to_model,
            "failed": [{"path": path, "error": problem} for path, problem in self.failed],
            "skipped": [{"path": path, "reason": reason} for path, reason in self.skipped],
            "runner": self.runner,
        }


def label_mapping(
    model_labels: Sequence[str], dataset_labels: Sequence[str]
) -> tuple[list[str], np.ndarray, dict[str, str]]:
    """Map each model output onto a column of the confusion matrix.

    Returns ``(labels, index, folded)``: the matrix's labels (the dataset's, then model
    labels that could not fold), ``index[k]`` the column of model output ``k``, and the
    model labels folded into the dataset's ``_unknown_``.
    """
    labels = list(dataset_labels)
    column = {label: i for i, label in enumerate(labels)}
    index, folded = [], {}
    for label in model_labels:
        if label in column:
            index.append(column[label])
        elif UNKNOWN in column:
            index.append(column[UNKNOWN])
            folded[label] = UNKNOWN
        else:
            column[label] = len(labels)
            labels.append(label)
            index.append(column[label])
    return labels, np.asarray(index, dtype=np.int64), folded


def confusion_matrix(true: np.ndarray, predicted: np.ndarray, size: int) -> np.ndarray:
    """``(size, size)`` counts of (true, predicted) index pairs."""
    true = np.asarray(true, dtype=np.int64)
    predicted = np.asarray(predicted, dtype=np.int64)
    flat = np.bincount(true * size + predicted, minlength=size * size)
    return flat.reshape(size, size)


def class_metrics(confusion: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall, F1 and support of every label of a confusion matrix.

    A ratio with a zero denominator (a label never predicted, or with no clips) is 0.
    """
    confusion = np.asarray(confusion, dtype=np.float64)
    hits = np.diag(confusion)
    predicted = confusion.sum(axis=0)
    support = confusion.sum(axis=1)
    precision = np.divide(hits, predicted, out=np.zeros_like(hits), where=predicted > 0)
    recall = np.divide(hits, support, out=np.zeros_like(hits), where=support > 0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(hits), where=total > 0)
    return precision, recall, f1, support.astype(np.int64)


def is_test_layout(dataset: Dataset) -> bool:
    """Whether a dataset has ``_silence_``/``_unknown_`` folders (the 12-label test layout)."""
    return any(
        clip.word == SILENCE or clip.path.parent.name == UNKNOWN
        for clip in dataset.clips
        if not clip.is_segment
    )


def evaluation_policy(card: ModelCard, dataset: Dataset) -> LabelPolicy:
    """How to label a dataset for a model.

    A dataset in the 12-label test layout brings its own labels (its folders). Otherwise
    the dataset is labelled as the model's training data was: the model's words, other
    words as ``_unknown_`` and silence cut from background noise when the model has those
    labels, at the shares recorded in its card.
    """
    if is_test_layout(dataset):
        return LabelPolicy(words=None, silence_percent=0.0, unknown_percent=0.0)
    words = tuple(label for label in card.labels if label not in (SILENCE, UNKNOWN))
    recipe = card.recipe or {}
    return LabelPolicy(
        words=words if UNKNOWN in card.labels else None,
        silence_percent=float(recipe.get("silence_percent", 10.0)) if SILENCE in card.labels
        else 0.0,
        unknown_percent=float(recipe.get("unknown_percent", 10.0)),
    )


def score(
    probabilities: np.ndarray,
    true_labels: Sequence[str],
    model_labels: Sequence[str],
    dataset_labels: Sequence[str],
) -> tuple[list[str], np.ndarray, dict[str, str]]:
    """Confusion matrix of model outputs against true labels; ``(labels, confusion, folded)``."""
    labels, index, folded = label_mapping(model_labels, dataset_labels)
    column = {label: i for i, label in enumerate(labels)}
    true = np.asarray([column[label] for label in true_labels], dtype=np.int64)
    predicted = index[np.argmax(probabilities, axis=1)] if len(true) else true
    return labels, confusion_matrix(true, predicted, len(labels)), folded


def unsplit_training_folders(card: ModelCard, folders: Sequence[str | os.PathLike],
                             resplit: Sequence[str | os.PathLike]) -> list[str]:
    """The ``folders`` the model was trained on split by ``--resplit`` (matched by name:
    the card holds the trainer's paths) that are not resplit here: their test split then
    holds clips the model trained on."""
    trained = {Path(folder).name for folder in card.recipe.get("resplit") or ()}
    here = {Path(folder).resolve() for folder in resplit}
    return [str(folder) for folder in folders
            if Path(folder).name in trained and Path(folder).resolve() not in here]


def evaluate(
    model_dir: str | os.PathLike | None,
    data: Sequence[str | os.PathLike],
    split: str = "test",
    batch_size: int | None = None,
    validation_percent: float = 10.0,
    testing_percent: float = 10.0,
    backgrounds: Sequence[str | os.PathLike] = (),
    resplit: Sequence[str | os.PathLike] = (),
    runner: str = "auto",
    progress: Progress | None = None,
) -> Evaluation:
    """Run a model folder's model on a split of dataset folders and score it.

    Parameters
    ----------
    model_dir
        A model folder (``None``: the shipped default).
    data
        Dataset folders in either Speech Commands layout.
    split
        ``test``, ``validation``, ``train`` or ``all``.
    resplit
        Folders of ``data`` split by speaker as ``kws train --resplit`` does.
    runner
        ``auto`` runs a current TFLite export with LiteRT, else Keras (see
        :func:`kws.infer.open_runner`).
    progress
        Called with ``(done, total)`` as clips are scored.
    """
    if split not in SPLIT_CHOICES:
        raise UsageError(f"--split: {split!r} is not one of {', '.join(SPLIT_CHOICES)}")
    if batch_size is not None and batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    folder = resolve_model_dir(model_dir)
    card = read_card(folder)
    if card.task != Task.CLASSIFIER:
        raise KwsError(f"{folder}: a {card.task} model; kws evaluate needs a classifier")
    dataset = open_datasets(data, validation_percent, testing_percent, backgrounds, resplit)
    clips, dataset_labels = assign_labels(dataset, evaluation_policy(card, dataset))
    wanted = SPLIT_CHOICES[split]
    if wanted is not None:
        clips = [clip for clip in clips if clip.split == wanted]
    if not clips:
        raise DatasetError(f"{', '.join(map(str, data))}: no clips in the {split} split")
    loaded = open_runner(folder, runner)
    kept, probabilities, failed = score_clips(loaded, clips, batch_size, progress)
    if not kept:
        raise UnreadableInputsError(
            f"{', '.join(map(str, data))}: none of the "
            f"{'' if split == 'all' else split + ' '}clips is readable",
            [f"{path}: {problem}" for path, problem in failed], dataset.notes)
    true_labels = [clip.label for clip in kept]
    labels, confusion, folded = score(probabilities, true_labels, card.labels, dataset_labels)
    counts = dict(zip(labels, confusion.sum(axis=1).tolist(), strict=True))
    predictable = set(card.labels) | set(folded.values())
    unknown_to_model = {
        label: int(counts[label])
        for label in dataset_labels
        if label not in predictable and counts.get(label)
    }
    return Evaluation(
        model=str(folder),
        data=[str(Path(root)) for root in data],
        split=split,
        labels=labels,
        confusion=confusion,
        model_labels=list(card.labels),
        folded=folded,
        unknown_to_model=unknown_to_model,
        failed=failed,
        skipped=[(str(path), reason) for path, reason in dataset.skipped],
        runner=loaded.name,
        notes=[*dataset.notes, *loaded.notes],
    )


def predict_probabilities(model_dir: str | os.PathLike, x: np.ndarray, batch_size: int = 256,
                          runner: str = "keras") -> np.ndarray:
    """Class probabilities of a model folder's model for waveforms ``x``, in batches."""
    loaded = open_runner(model_dir, runner)
    if len(x) == 0:
        return np.zeros((0, len(loaded.labels)), dtype=np.float32)
    return np.concatenate([loaded(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])
