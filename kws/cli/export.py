"""``kws export``: write a model folder's model as TFLite (float32 or int8), parity-checked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from kws.cli import _console
from kws.cli._options import data_option, json_option
from kws.errors import UsageError
from kws.export import ExportResult, export_tflite


@click.command("export")
@click.argument("model", type=click.Path(file_okay=False))
@click.option("--format", "fmt", type=click.Choice(["tflite"]), default="tflite",
              show_default=True, help="Export format.")
@click.option("--int8", is_flag=True,
              help="Quantize to int8 and write model-int8.tflite: weights and activations "
                   "(float32 input and output, calibrated on training clips of --data), or "
                   "weights only when that does not reach the required agreement.")
@data_option("Dataset folder the model was trained on (repeatable): parity clips come "
             "from its testing and validation splits (then training, if too few), int8 "
             "calibration clips from its training split. Default: the folders recorded in "
             "the model card.")
@click.option("--clips", default=1000, show_default=True, type=int,
              help="Clips on which the TFLite and Keras models are compared.")
@click.option("--calibration-clips", default=500, show_default=True, type=int,
              help="With --int8: training clips used to calibrate the quantization.")
@json_option
def command(model, fmt, int8, data, clips, calibration_clips, as_json) -> None:
    """Export the Keras model of model folder MODEL to TFLite, into the same folder.

    Writes model.tflite (or model-int8.tflite with --int8) and records it in card.json,
    after checking on real clips that its top-1 label agrees with the Keras model's on at
    least 99% of them (97% for int8); below that nothing is written and the exit status
    is 1. kws predict then runs the TFLite file with LiteRT, without TensorFlow.
    """
    for folder in data:
        if not Path(folder).is_dir():
            raise UsageError(f"--data {folder}: no such dataset folder")
    with _console.status("exporting") as spinner:
        result = export_tflite(
            model, int8=int8, data=data, parity_clips=clips, calibration_clips=calibration_clips,
            progress=spinner.update if spinner else None, warn=_console.warn,
        )
    for note in result.rejected:
        _console.warn(f"not kept: {note}")
    if as_json:
        click.echo(json.dumps(_export_record(result)))
    else:
        _render(result)


def _export_record(result: ExportResult) -> dict[str, Any]:
    """``--json``'s line: what was written and how well it agrees with Keras."""
    return {
        "path": str(result.path), "quantization": result.quantization,
        "bytes": result.bytes, "top1_agreement": result.agreement,
        "required": result.required, "parity_clips": result.parity_clips,
        "calibration_clips": result.calibration_clips,
        "max_probability_difference": result.max_probability_difference,
        "rejected": list(result.rejected),
    }


def _render(result: ExportResult) -> None:
    """The export as a table on stdout, and a warning when the parity check was small."""
    from rich.table import Table

    table = Table(title=f"wrote {result.path}", title_justify="left", show_header=False)
    table.add_column("")
    table.add_column("value")
    table.add_row("quantization", result.quantization)
    table.add_row("size", f"{result.bytes / 1024:.1f} KiB")
    table.add_row("top-1 agreement with Keras",
                  f"{100 * result.agreement:.2f}% of {result.parity_clips} clips "
                  f"(≥ {100 * result.required:.0f}% required)")
    table.add_row("largest probability difference", f"{result.max_probability_difference:.4f}")
    if result.calibration_clips:
        table.add_row("calibration clips", str(result.calibration_clips))
    _console.print_table(table)
    if result.parity_clips < 100:
        _console.warn(f"agreement was measured on only {result.parity_clips} clips; "
                      "pass a larger --data folder for a meaningful check")
