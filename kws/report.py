"""Tables and figures of training and evaluation, in one place.

Tables are :mod:`rich` renderables (the caller chooses the console); figures are PNG files
drawn with matplotlib's Agg canvas (no display needed), imported only when a figure is
drawn and written atomically (:func:`kws.files.atomic_write`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from kws import files
from kws.stats import wilson_interval


def format_percent(value: float | None) -> str:
    """A fraction as a percentage (``12.34%``), ``-`` when missing."""
    return "-" if value is None else f"{100 * value:.2f}%"


def format_duration(seconds: float) -> str:
    """``1h02m03s``, ``2m03s`` or ``4.5s``."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def format_count(value: int | None) -> str:
    """A large count with a unit: ``12.3 k``, ``4.56 M``."""
    if value is None:
        return "-"
    for scale, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return str(value)


#: The classifier's figures in the summary table: (row label, metric key, metric key of the
#: clips it was measured on), as percentages with their confidence interval.
CLASSIFIER_FIGURES = (
    ("final validation accuracy", "final_validation_accuracy", "validation_clips"),
    ("best validation accuracy", "best_validation_accuracy", "validation_clips"),
    ("training accuracy (clean)", "train_accuracy", "train_clips"),
    ("test accuracy", "test_accuracy", "test_clips"),
)
#: Confidence of the intervals in the summary (table and ``--json``).
CONFIDENCE = 0.95
#: The phone model's figures in the summary table.
PHONE_FIGURES = (
    ("training PER", "train_per"),
    ("validation PER", "validation_per"),
    ("test PER", "test_per"),
    ("test word accuracy (closest lexicon entry)", "test_word_accuracy"),
)


def accuracy_intervals(metrics: Mapping[str, Any],
                       figures: Sequence[tuple[str, ...]] = CLASSIFIER_FIGURES,
                       confidence: float = CONFIDENCE) -> dict[str, list[float]]:
    """Wilson intervals of the accuracies in ``metrics`` whose clip count is recorded.

    ``figures`` are ``(label, metric key, count key)`` rows (see :data:`CLASSIFIER_FIGURES`);
    rows without a count key, or whose figure or count is missing from ``metrics`` (a card
    of an older version, a run without a test split), get no interval. Returns
    ``{metric key: [low, high]}`` as fractions: the one place the summary's intervals
    (table and ``--json``) are computed.
    """
    intervals = {}
    for _, key, *count_key in figures:
        value = metrics.get(key)
        count = metrics.get(count_key[0]) if count_key else None
        if value is None or not count:
            continue
        low, high = wilson_interval(round(value * count), int(count), confidence)
        intervals[key] = [round(low, 6), round(high, 6)]
    return intervals


def format_accuracy(value: float | None, count: int | None = None,
                    interval: Sequence[float] | None = None) -> str:
    """An accuracy with its interval and clip count: ``91.94% (88.6–94.3%, 359 clips)``.

    Without a count or interval it is :func:`format_percent` alone.
    """
    if value is None or count is None or interval is None:
        return format_percent(value)
    low, high = interval
    return f"{format_percent(value)} ({100 * low:.1f}–{100 * high:.1f}%, {count:,} clips)"


def _figure_rows(metrics: Mapping[str, Any],
                 figures: Sequence[tuple[str, ...]]) -> list[tuple[str, str]]:
    """The summary rows of the task's figures, accuracies with their intervals."""
    intervals = accuracy_intervals(metrics, figures)
    rows = []
    for label, key, *count_key in figures:
        count = metrics.get(count_key[0]) if count_key else None
        rows.append((label, format_accuracy(metrics.get(key), count, intervals.get(key))))
    return rows


def _format_split_sizes(clips: Mapping[str, int] | None) -> str:
    """Clips per split, ``training / validation / testing``; ``-`` when not given."""
    if not clips:
        return "-"
    return " / ".join(f"{clips.get(split, 0):,}"
                      for split in ("training", "validation", "testing"))


def training_summary_table(summary: Mapping[str, Any],
                           figures: Sequence[tuple[str, ...]] = CLASSIFIER_FIGURES,
                           what: str = "model") -> Table:
    """The table a training command prints at the end.

    ``summary`` is :attr:`kws.train.TrainResult.summary`: ``out``, ``epochs``,
    ``best_epoch``, ``metrics``, ``wall_time_s``, ``clips_per_s``, ``parameters``,
    ``multiply_adds`` and, when the run exported, ``export`` (one "TFLite export" row).
    ``figures`` lists the task's ``(label, metrics key)`` rows, fractions shown as
    percentages; missing entries print as ``-``. A ``(label, metrics key, count key)`` row
    whose count is in ``metrics`` also shows the 95% Wilson interval and the clips it was
    measured on (:func:`accuracy_intervals`), so a figure of 71 clips is not mistaken for
    one of 2,000. ``clips`` (per split) gives the split sizes row.
    """
    metrics = summary.get("metrics", {})
    table = Table(title=f"{what} saved to {summary.get('out', '?')}", title_justify="left")
    table.add_column("")
    table.add_column("value", justify="right")
    best_epoch = summary.get("best_epoch")
    rows = [
        ("epochs run", str(summary.get("epochs", "-"))),
        ("best epoch", "-" if best_epoch is None else str(best_epoch)),
        ("clips (training / validation / testing)", _format_split_sizes(summary.get("clips"))),
        *_figure_rows(metrics, figures),
        ("wall time", format_duration(summary.get("wall_time_s", 0.0))),
        ("training clips/s", _format_speed(summary.get("clips_per_s"))),
        ("parameters", format_count(summary.get("parameters"))),
        (f"multiply-adds per {summary.get('multiply_adds_per', 'clip')}",
         format_count(summary.get("multiply_adds"))),
    ]
    if summary.get("export"):
        rows.append(("TFLite export", _format_export(summary["export"])))
    for name, value in rows:
        table.add_row(name, value)
    return table


def _format_export(export: Mapping[str, Any]) -> str:
    """``model.tflite, 41.2 kB, 100.00% top-1 agreement``, or ``not written``."""
    if not export.get("file"):
        return "not written"
    return (f"{export['file']}, {export['bytes'] / 1000:.1f} kB, "
            f"{format_percent(export.get('top1_agreement'))} top-1 agreement")


def _format_speed(clips_per_s: float | None) -> str:
    """Clips per second, or ``-`` when none was measured (a run of one step)."""
    return "-" if clips_per_s is None else f"{clips_per_s:.0f}"


def metrics_table(
    labels: Sequence[str],
    precision: np.ndarray,
    recall: np.ndarray,
    f1: np.ndarray,
    support: np.ndarray,
    accuracy: float,
    title: str = "",
) -> Table:
    """Per-class precision, recall, F1 and support, with accuracy and macro averages."""
    table = Table(title=title or None, title_justify="left")
    table.add_column("label")
    for name in ("precision", "recall", "F1"):
        table.add_column(name, justify="right")
    table.add_column("clips", justify="right")
    for i, label in enumerate(labels):
        if support[i] == 0 and precision[i] == 0:
            continue
        table.add_row(label, f"{precision[i]:.3f}", f"{recall[i]:.3f}", f"{f1[i]:.3f}",
                      str(int(support[i])))
    present = support > 0
    table.add_section()
    table.add_row(
        "macro average",
        f"{precision[present].mean():.3f}" if present.any() else "-",
        f"{recall[present].mean():.3f}" if present.any() else "-",
        f"{f1[present].mean():.3f}" if present.any() else "-",
        str(int(support.sum())),
        style="bold",
    )
    table.add_row("accuracy", "", "", f"{accuracy:.3f}", str(int(support.sum())), style="bold")
    return table


def confusion_table(labels: Sequence[str], confusion: np.ndarray, title: str = "") -> Table:
    """The confusion matrix as a table: rows are true labels, columns predictions."""
    table = Table(title=title or "confusion (rows: true label, columns: predicted)",
                  title_justify="left")
    table.add_column("true \\ predicted")
    for label in labels:
        table.add_column(_short(label), justify="right")
    for i, label in enumerate(labels):
        cells = []
        for j in range(len(labels)):
            count = int(confusion[i, j])
            if count == 0:
                cells.append("[dim]·[/dim]")
            elif i == j:
                cells.append(f"[green]{count}[/green]")
            else:
                cells.append(f"[red]{count}[/red]")
        table.add_row(label, *cells)
    return table


def _short(label: str) -> str:
    return {"_silence_": "_sil_", "_unknown_": "_unk_"}.get(label, label)


def _save_figure(figure, path: str | os.PathLike) -> Path:
    """Render a matplotlib Figure with the Agg canvas to a PNG, atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    path = Path(path)
    FigureCanvasAgg(figure)
    with files.atomic_write(path, suffix=".png") as temporary:
        figure.savefig(temporary, format="png", dpi=100)
    return path


#: The panels of :func:`plot_curves` unless told: history key and title.
CURVE_PANELS = (("loss", "loss"), ("accuracy", "accuracy"))


def plot_curves(
    history: Mapping[str, Sequence[float]],
    path: str | os.PathLike,
    panels: Sequence[tuple[str, str]] = CURVE_PANELS,
) -> Path:
    """Loss and accuracy per epoch, training and validation, side by side as a PNG.

    ``panels`` chooses other history entries (``(key, title)``; ``val_<key>`` is the
    validation curve), as ``kws vae train`` does for its two loss terms.
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5 * len(panels), 4))
    for position, (key, title) in enumerate(panels, 1):
        axes = figure.add_subplot(1, len(panels), position)
        for prefix, name in (("", "training"), ("val_", "validation")):
            values = list(history.get(prefix + key, []))
            if values:
                epochs = np.arange(1, len(values) + 1)
                axes.plot(epochs, values, marker="o" if len(values) < 30 else None, label=name)
        axes.set_xlabel("epoch")
        axes.set_title(title)
        axes.grid(True, alpha=0.3)
        if axes.lines:
            axes.legend()
        if key == "accuracy":
            axes.set_ylim(0.0, 1.0)
    figure.tight_layout()
    return _save_figure(figure, path)


def plot_confusion(
    labels: Sequence[str], confusion: np.ndarray, path: str | os.PathLike, title: str = ""
) -> Path:
    """The confusion matrix as a PNG heat map, each row normalised to recall."""
    from matplotlib.figure import Figure

    confusion = np.asarray(confusion, dtype=np.float64)
    totals = confusion.sum(axis=1, keepdims=True)
    normalised = np.divide(confusion, totals, out=np.zeros_like(confusion), where=totals > 0)
    size = max(4.0, 0.5 * len(labels) + 2)
    figure = Figure(figsize=(size + 1, size))
    axes = figure.add_subplot(1, 1, 1)
    image = axes.imshow(normalised, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="share of the true label")
    ticks = np.arange(len(labels))
    axes.set_xticks(ticks, labels=list(labels), rotation=90)
    axes.set_yticks(ticks, labels=list(labels))
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    if title:
        axes.set_title(title)
    if len(labels) <= 20:
        for i in range(len(labels)):
            for j in range(len(labels)):
                if confusion[i, j]:
                    colour = "white" if normalised[i, j] > 0.5 else "black"
                    axes.text(j, i, str(int(confusion[i, j])), ha="center", va="center",
                              fontsize=7, color=colour)
    figure.tight_layout()
    return _save_figure(figure, path)


def plot_latent(
    points: np.ndarray, words: Sequence[str], path: str | os.PathLike, title: str = ""
) -> Path:
    """A 2-D scatter of points (e.g. latent codes projected by PCA) coloured by word, as a PNG.

    Each word's centroid is labelled with the word, so 30 colours stay readable.
    """
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    points = np.asarray(points, dtype=np.float64)
    words = np.asarray(words)
    names = list(dict.fromkeys(words.tolist()))
    colours = colormaps["tab20"].colors + colormaps["tab20b"].colors
    figure = Figure(figsize=(9, 7.5))
    axes = figure.add_subplot(1, 1, 1)
    for index, name in enumerate(names):
        chosen = points[words == name]
        colour = colours[index % len(colours)]
        axes.scatter(chosen[:, 0], chosen[:, 1], s=10, alpha=0.6, color=colour, label=name)
        centre = chosen.mean(axis=0)
        axes.annotate(name, centre, fontsize=8, weight="bold", ha="center", va="center",
                      color=colour)
    axes.set_xlabel("first principal component")
    axes.set_ylabel("second principal component")
    axes.grid(True, alpha=0.3)
    if title:
        axes.set_title(title, fontsize=10)
    if len(names) <= 40:
        axes.legend(fontsize=7, markerscale=1.5, ncol=2, loc="center left",
                    bbox_to_anchor=(1.01, 0.5))
    figure.tight_layout()
    return _save_figure(figure, path)


def plot_det(
    lines: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    path: str | os.PathLike,
    title: str = "",
    targets: Sequence[float] = (),
    emphasise: str | None = None,
) -> Path:
    """DET curves as a PNG: miss rate against false accepts per hour (log scale).

    ``lines`` maps a name (a keyword) to ``(fa_per_hour, miss_rate)`` points in threshold
    order, as openWakeWord and Porcupine publish theirs. Points at zero false accepts sit
    on the left edge (a log axis has no zero); ``targets`` are drawn as dotted verticals;
    the line named ``emphasise`` (the pooled one) is drawn thick and black.
    """
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    positive = [x for fa, _ in lines.values() for x in fa if x > 0 and np.isfinite(x)]
    left = min([*positive, *targets, 1.0]) / 2
    right = max([*positive, *targets, 10.0]) * 1.5
    figure = Figure(figsize=(8, 5.5))
    axes = figure.add_subplot(1, 1, 1)
    colours = colormaps["tab20"].colors + colormaps["tab20b"].colors
    for index, (name, (fa, miss)) in enumerate(lines.items()):
        fa = np.maximum(np.asarray(fa, dtype=np.float64), left)
        miss = np.asarray(miss, dtype=np.float64)
        if name == emphasise:
            axes.plot(fa, miss, color="black", linewidth=2.5, marker="o", markersize=3,
                      label=name, zorder=3)
        else:
            axes.plot(fa, miss, color=colours[index % len(colours)], linewidth=1.2,
                      marker=".", markersize=4, label=name)
    for target in targets:
        axes.axvline(target, color="grey", linestyle=":", linewidth=1)
    axes.set_xscale("log")
    axes.set_xlim(left, right)
    axes.set_ylim(0.0, 1.0)
    axes.set_xlabel("false accepts per hour")
    axes.set_ylabel("miss rate")
    axes.grid(True, which="both", alpha=0.3)
    if title:
        axes.set_title(title, fontsize=10)
    if lines:
        axes.legend(fontsize=7, ncol=2 if len(lines) > 12 else 1, loc="center left",
                    bbox_to_anchor=(1.01, 0.5))
    figure.tight_layout()
    return _save_figure(figure, path)
