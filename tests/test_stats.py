"""Confidence intervals of accuracies: the Wilson interval, the summary rows, the warning of a
validation split too small to pick the best epoch on."""

from __future__ import annotations

import io

import numpy as np
import pytest
from rich.console import Console

from kws.classifier import ClassifierConfig, ClassifierTask
from kws.report import (
    PHONE_FIGURES,
    accuracy_intervals,
    format_accuracy,
    training_summary_table,
)
from kws.stats import wilson_interval
from kws.train.data import small_validation_warning
from kws.train.task import Prepared

Z95 = 1.959964


def quadratic_bounds(successes: int, total: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson bounds found another way: the roots in ``q`` of
    ``(p - q)^2 = z^2 q (1 - q) / n``, the proportions whose normal test accepts ``p``."""
    share = successes / total
    roots = np.roots([1 + z * z / total, -(2 * share + z * z / total), share * share]).real
    return float(np.clip(roots.min(), 0, 1)), float(np.clip(roots.max(), 0, 1))


@pytest.mark.parametrize("successes, total", [(0, 10), (10, 10), (50, 100), (81, 263),
                                              (330, 359), (1, 2), (1999, 2000)])
def test_wilson_interval_matches_the_quadratic_roots(successes, total):
    assert wilson_interval(successes, total) == pytest.approx(
        quadratic_bounds(successes, total), abs=1e-6)


def test_wilson_interval_on_published_counts():
    """Values as tables of the Wilson interval give them (95%)."""
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    assert wilson_interval(50, 100) == pytest.approx((0.4038, 0.5962), abs=1e-4)


def test_wilson_interval_widens_with_confidence_and_narrows_with_clips():
    low95, high95 = wilson_interval(50, 100)
    low99, high99 = wilson_interval(50, 100, confidence=0.99)
    assert (low99, high99) == pytest.approx(quadratic_bounds(50, 100, z=2.575829), abs=1e-6)
    assert low99 < low95 and high99 > high95
    small, large = wilson_interval(64, 71), wilson_interval(1803, 2000)
    assert small[1] - small[0] > 3 * (large[1] - large[0])


def test_wilson_interval_of_nothing_measured_is_everything():
    assert wilson_interval(0, 0) == (0.0, 1.0)


@pytest.mark.parametrize("successes, total, confidence", [(-1, 10, 0.95), (11, 10, 0.95),
                                                          (0, -1, 0.95), (5, 10, 0.0),
                                                          (5, 10, 1.0)])
def test_wilson_interval_refuses_impossible_input(successes, total, confidence):
    with pytest.raises(ValueError):
        wilson_interval(successes, total, confidence)


CLASSIFIER_METRICS = {
    "final_validation_accuracy": 0.905292, "best_validation_accuracy": 330 / 359,
    "validation_clips": 359, "train_accuracy": 0.98, "train_clips": 2000,
    "test_accuracy": 0.76, "test_clips": 0,
}


def table_rows(summary: dict, figures=None) -> dict[str, str]:
    """The summary table rendered as plain text, ``{row name: value}``."""
    console = Console(file=io.StringIO(), force_terminal=False, width=200)
    table = (training_summary_table(summary) if figures is None
             else training_summary_table(summary, figures))
    console.print(table)
    rows = {}
    for line in console.file.getvalue().splitlines():
        cells = [cell.strip() for cell in line.strip(" │|").split("│")]
        if len(cells) == 2:
            rows[cells[0]] = cells[1]
    return rows


def test_accuracy_rows_show_interval_and_clips():
    rows = table_rows({"out": "m", "metrics": CLASSIFIER_METRICS,
                       "clips": {"training": 2000, "validation": 359, "testing": 0}})
    assert rows["best validation accuracy"] == "91.92% (88.6–94.3%, 359 clips)"
    assert rows["training accuracy (clean)"] == "98.00% (97.3–98.5%, 2,000 clips)"
    assert rows["test accuracy"] == "76.00%"  # no test clips: no interval
    assert rows["clips (training / validation / testing)"] == "2,000 / 359 / 0"


def test_figures_without_counts_show_as_before():
    """An older card (no clip counts) and the phone model's figures: percentages alone."""
    rows = table_rows({"out": "m", "metrics": {"best_validation_accuracy": 0.875}})
    assert rows["best validation accuracy"] == "87.50%"
    assert rows["test accuracy"] == "-"
    assert rows["clips (training / validation / testing)"] == "-"
    rows = table_rows({"out": "m", "metrics": {"validation_per": 0.25, "validation_clips": 80}},
                      PHONE_FIGURES)
    assert rows["validation PER"] == "25.00%"
    assert format_accuracy(0.5) == "50.00%" and format_accuracy(None, 10, (0.1, 0.2)) == "-"


def test_the_json_summary_carries_the_intervals_of_the_table():
    summary = ClassifierTask().summary(ClassifierConfig(), CLASSIFIER_METRICS)
    intervals = summary["intervals"]
    assert set(intervals) == {"final_validation_accuracy", "best_validation_accuracy",
                              "train_accuracy"}
    assert intervals == accuracy_intervals(CLASSIFIER_METRICS)
    assert intervals["best_validation_accuracy"] == pytest.approx(
        quadratic_bounds(330, 359), abs=1e-6)


class Predicts:
    """A model stand-in: scores the label given in the first input sample."""

    def predict(self, x, batch_size=256, verbose=0):
        return np.eye(3)[x[:, 0].astype(int)]


def test_classifier_metrics_record_each_split_size():
    y = {"training": np.array([0, 1, 2, 1]), "validation": np.array([0, 1, 2]),
         "testing": np.array([], dtype=int)}
    guessed = {"training": [0, 1, 2, 2], "validation": [0, 1, 2], "testing": []}
    x = {split: np.asarray(guessed[split], dtype=np.float32).reshape(-1, 1) for split in y}
    data = Prepared(["a", "b", "c"], x, y, {}, sample_rate=16000, input_length=1)
    metrics = ClassifierTask().metrics(Predicts(), ClassifierConfig(), data)
    assert metrics == {"train_clips": 4, "train_accuracy": 0.75, "validation_clips": 3,
                       "validation_accuracy": 1.0, "test_clips": 0}


LABELS = ["_silence_", "_unknown_", "yes", "no"]


def test_no_warning_for_a_validation_split_large_enough():
    assert small_validation_warning(LABELS, np.repeat(np.arange(4), 30)) is None


def test_no_warning_without_validation_clips():
    """The engine already says there is no validation split."""
    assert small_validation_warning(LABELS, np.array([], dtype=np.int32)) is None


def test_warning_for_few_clips_per_label():
    y = np.repeat(np.arange(4), [20, 18, 17, 16])
    warning = small_validation_warning(LABELS, y)
    assert warning is not None and "\n" not in warning
    assert "71 clips for 4 labels" in warning and "18 per label on average" in warning
    assert "fewest: no 16, yes 17, _unknown_ 18" in warning
    low, high = wilson_interval(35, 71)
    assert f"±{50 * (high - low):.1f} points" in warning
    assert "±11.3 points" in warning
    assert "--validation-percent" in warning


def test_warning_for_one_starved_label_in_a_large_split():
    y = np.repeat(np.arange(4), [100, 100, 100, 9])
    warning = small_validation_warning(LABELS, y)
    assert warning is not None and "fewest: no 9" in warning
    assert small_validation_warning(LABELS, np.repeat(np.arange(4), [100, 100, 100, 10])) is None


def test_warning_names_labels_without_any_validation_clip():
    warning = small_validation_warning(LABELS, np.repeat([0, 1, 2], 50))
    assert warning is not None and "fewest: no 0" in warning
