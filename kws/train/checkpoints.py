"""Per-epoch checkpoints: written whole or not at all, read back with validation.

A run's checkpoints live in ``OUT/checkpoint/epoch-NNNN/``, each holding::

    state.json      the run's state: epoch, history, early-stopping state, labels,
                    task and configuration (see :class:`CheckpointState`)
    variables.npz   numpy arrays named ``model_00000``, ``optimizer_00000``, ``best_00000``
                    ...: the model's variables, the optimizer's, and the best weights so far

Each epoch folder is written with :func:`kws.files.atomic_folder`, so an interruption
leaves the previous epoch whole. Reading validates everything (a JSON object with the
right fields, a readable zip of plain numeric arrays, nothing pickled) and turns any damage
into one line naming the checkpoint and how to start over. Only kws's own ``epoch-NNNN``
folders and temporaries are ever removed: files a user put in ``OUT/checkpoint`` stay.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kws import files
from kws.errors import KwsError, UsageError
from kws.modelfolder import CARD_FILE

CHECKPOINT_FOLDER = "checkpoint"
STATE_FILE = "state.json"
VARIABLES_FILE = "variables.npz"
#: Array groups of ``variables.npz``.
GROUPS = ("model", "optimizer", "best")
_EPOCH = re.compile(r"epoch-(\d{4,})")
_ARRAY = re.compile(r"(model|optimizer|best)_(\d{5})")


class DamagedCheckpoint(KwsError):
    """A checkpoint that cannot be read back (truncated, garbage, wrong shapes)."""


@dataclass
class CheckpointState:
    """The ``state.json`` of an epoch checkpoint.

    ``history`` maps each Keras log entry to its value per epoch; ``best_value`` and
    ``best_epoch`` are the monitored value's best so far; ``wait`` counts epochs without
    improvement and ``stopped`` says early stopping ended the run; ``config`` is the run's
    :meth:`~kws.train.config.RunConfig.to_json`.
    """

    epoch: int
    labels: list[str]
    config: dict[str, Any]
    task: str
    history: dict[str, list[float]] = field(default_factory=dict)
    best_value: float | None = None
    best_epoch: int | None = None
    wait: int = 0
    stopped: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def checkpoint_folder(out: str | os.PathLike) -> Path:
    """``OUT/checkpoint``."""
    return Path(out) / CHECKPOINT_FOLDER


def epoch_folders(out: str | os.PathLike) -> list[Path]:
    """kws's own ``epoch-NNNN`` folders in ``OUT/checkpoint``, oldest first."""
    folder = checkpoint_folder(out)
    if not folder.is_dir() or folder.is_symlink():
        return []
    found = []
    for entry in folder.iterdir():
        match = _EPOCH.fullmatch(entry.name)
        if match and entry.is_dir() and not entry.is_symlink():
            found.append((int(match.group(1)), entry))
    return [path for _, path in sorted(found)]


def latest_checkpoint(out: str | os.PathLike) -> Path | None:
    """The newest epoch checkpoint of an output folder, or None."""
    folders = epoch_folders(out)
    return folders[-1] if folders else None


def no_checkpoint_message(out: str | os.PathLike) -> str:
    """Why ``--resume`` cannot continue in ``out``."""
    if (Path(out) / CARD_FILE).is_file():
        return f"{out}: training there has finished (no checkpoint left to resume)"
    return f"{out}: no checkpoint to resume from"


def damaged(path: str | os.PathLike, problem: str) -> DamagedCheckpoint:
    """The one-line error of a damaged checkpoint."""
    return DamagedCheckpoint(f"{path}: damaged checkpoint ({problem}); start over with "
                             "--overwrite")


# ----------------------------------------------------------------------------- writing


def write_checkpoint(out: str | os.PathLike, state: CheckpointState,
                     arrays: Mapping[str, Sequence[np.ndarray]]) -> Path:
    """Write the checkpoint of epoch ``state.epoch`` atomically; keep only the newest.

    ``arrays`` maps a group of :data:`GROUPS` to its variables' values.
    """
    final = checkpoint_folder(out) / f"epoch-{state.epoch:04d}"
    flat = {f"{group}_{i:05d}": np.asarray(value)
            for group, values in arrays.items() for i, value in enumerate(values)}
    with files.atomic_folder(final) as temporary:
        with open(temporary / VARIABLES_FILE, "wb") as handle:
            np.savez(handle, **flat)
        (temporary / STATE_FILE).write_text(json.dumps(state.to_json(), indent=1),
                                            encoding="utf-8")
    for old in epoch_folders(out):
        if old != final:
            shutil.rmtree(old, ignore_errors=True)
    return final


def remove_checkpoints(out: str | os.PathLike) -> None:
    """Remove kws's own checkpoints and temporaries; the folder too if nothing else is in it.

    Call only while holding the output folder's lock (then no other kws run writes there).
    """
    folder = checkpoint_folder(out)
    for old in epoch_folders(out):
        shutil.rmtree(old, ignore_errors=True)
    if folder.is_dir() and not folder.is_symlink():
        files.remove_stale_temporaries(folder, older_than_s=0.0)
        try:
            folder.rmdir()
        except OSError:
            pass


# ----------------------------------------------------------------------------- reading


def read_state(path: str | os.PathLike) -> CheckpointState:
    """The validated ``state.json`` of an epoch checkpoint folder."""
    path = Path(path)
    try:
        raw = json.loads((path / STATE_FILE).read_text(encoding="utf-8"),
                         parse_constant=_no_constant)
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise damaged(path, f"{STATE_FILE}: {_short(error)}") from None
    if not isinstance(raw, dict):
        raise damaged(path, f"{STATE_FILE} is not an object")
    problem = _state_problem(raw)
    if problem:
        raise damaged(path, f"{STATE_FILE}: {problem}")
    known = set(CheckpointState.__dataclass_fields__)
    return CheckpointState(**{key: value for key, value in raw.items() if key in known})


def _state_problem(raw: dict) -> str | None:
    def whole(value: Any, low: int = 0) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= low

    def number(value: Any) -> bool:
        return (isinstance(value, int | float) and not isinstance(value, bool)
                and math.isfinite(value))

    checks = (
        ("epoch", lambda v: whole(v, 1), "a whole number from 1"),
        ("labels", lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
         "a list of strings"),
        ("config", lambda v: isinstance(v, dict), "an object"),
        ("task", lambda v: isinstance(v, str), "a string"),
        ("history", lambda v: isinstance(v, dict) and all(
            isinstance(values, list) and all(number(x) for x in values)
            for values in v.values()), "an object of lists of numbers"),
        ("best_value", lambda v: v is None or number(v), "a number or null"),
        ("best_epoch", lambda v: v is None or whole(v, 1), "a whole number or null"),
        ("wait", whole, "a whole number"),
        ("stopped", lambda v: isinstance(v, bool), "true or false"),
    )
    required = ("epoch", "labels", "config", "task")
    for name, ok, expected in checks:
        if name not in raw:
            if name in required:
                return f"field {name!r} is missing"
            continue
        if not ok(raw[name]):
            return f"field {name!r} must be {expected}"
    return None


def read_arrays(path: str | os.PathLike) -> dict[str, list[np.ndarray]]:
    """The variables of an epoch checkpoint, grouped as written and checked to be whole.

    Nothing pickled is loaded; any unreadable, missing or non-numeric array is damage.
    """
    path = Path(path)
    file = path / VARIABLES_FILE
    groups: dict[str, dict[int, np.ndarray]] = {}
    try:
        with np.load(file, allow_pickle=False) as stored:
            if not hasattr(stored, "files"):
                raise damaged(path, f"{VARIABLES_FILE} is not an npz archive")
            for key in stored.files:
                match = _ARRAY.fullmatch(key)
                if match is None:
                    raise damaged(path, f"{VARIABLES_FILE} holds an unknown array {key!r}")
                value = stored[key]
                if value.dtype.kind not in "biuf":
                    raise damaged(path, f"{VARIABLES_FILE}: {key} is not numeric")
                groups.setdefault(match.group(1), {})[int(match.group(2))] = value
    except DamagedCheckpoint:
        raise
    except Exception as error:  # noqa: BLE001  (a damaged zip raises many kinds of errors)
        raise damaged(path, f"{VARIABLES_FILE}: {_short(error)}") from None
    result = {}
    for group, items in groups.items():
        if sorted(items) != list(range(len(items))):
            raise damaged(path, f"{VARIABLES_FILE}: {group} arrays are not numbered 0..n-1")
        result[group] = [items[i] for i in range(len(items))]
    if "model" not in result:
        raise damaged(path, f"{VARIABLES_FILE} holds no model variables")
    return result


def check_arrays(path: str | os.PathLike, group: str, variables: Sequence[Any],
                 values: Sequence[np.ndarray]) -> None:
    """Raise :class:`DamagedCheckpoint` unless ``values`` fit ``variables`` one to one."""
    if len(values) != len(variables):
        raise damaged(path, f"{len(values)} {group} arrays for {len(variables)} variables")
    for index, (variable, value) in enumerate(zip(variables, values, strict=True)):
        if tuple(variable.shape) != tuple(np.shape(value)):
            raise damaged(path, f"{group} array {index} has shape {tuple(np.shape(value))}, "
                                f"the model's is {tuple(variable.shape)}")


def saved_config(out: str | os.PathLike) -> dict[str, Any]:
    """The configuration (JSON) of the run whose checkpoint is in ``out`` (for --resume)."""
    latest = latest_checkpoint(out)
    if latest is None:
        raise UsageError(no_checkpoint_message(out))
    return read_state(latest).config


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a valid JSON number")


def _short(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text[:160]
