"""The configuration every training run shares, its JSON form, checks and CLI metadata.

A task's configuration subclasses :class:`RunConfig` (a dataclass) and adds its own fields.
Fields declared with :func:`option` carry their command-line help in the field's metadata,
so ``kws/cli/_training.py`` generates the Click options of ``kws train``, ``kws vae train``
and ``kws phones train`` from the dataclasses: one declaration per option, and the CLI's
defaults are the library's. JSON round-trip (tuples become lists and back) and the checks
of the common fields are generic, so a subclass writes only what it adds.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from kws.download import dataset_folder
from kws.errors import UsageError
from kws.runtime import DISTRIBUTE_CHOICES

#: Where ``kws download`` puts Speech Commands v0.01, the data a plain run uses.
DEFAULT_DATA = str(dataset_folder("v0.01"))
#: Fields of a configuration that may change when a run is resumed.
RESUMABLE_CHANGES = frozenset({"epochs", "patience", "workers", "distribute", "out",
                               "export"})
#: Key of a field's metadata holding its :class:`OptionSpec`.
OPTION_KEY = "kws_option"

C = TypeVar("C", bound="RunConfig")


@dataclass(frozen=True)
class OptionSpec:
    """How a configuration field appears on the command line.

    ``help`` is the option's help; ``flag`` overrides the option name (default
    ``--field-name``; a bool field becomes ``--name/--no-name``); ``choices`` makes a
    ``click.Choice``; ``parse`` turns the Click value into the field's value (for instance
    ``0 -> None`` for ``--patience``); ``default_text`` replaces the shown default (``""``
    shows none, for a help text that already says it).
    """

    help: str
    flag: str | None = None
    choices: tuple[str, ...] | None = None
    parse: Callable[[Any], Any] | None = None
    default_text: str | None = None
    metavar: str | None = None
    #: A text option read as-is (``--words yes,no``) even when the field is a tuple.
    text: bool = False


def option(default: Any = dataclasses.MISSING, *, help: str,
           default_factory: Any = dataclasses.MISSING, **spec: Any) -> Any:
    """A dataclass field that is also a command-line option (see :class:`OptionSpec`)."""
    metadata = {OPTION_KEY: OptionSpec(help=help, **spec)}
    if default_factory is not dataclasses.MISSING:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def option_spec(cls: type, name: str) -> OptionSpec | None:
    """The :class:`OptionSpec` of field ``name``, inherited when a subclass redeclares it."""
    for klass in cls.__mro__:
        declared = getattr(klass, "__dataclass_fields__", {}).get(name)
        if declared is not None and OPTION_KEY in declared.metadata:
            return declared.metadata[OPTION_KEY]
    return None


def option_name(name: str) -> str:
    """``batch_size`` -> ``--batch-size``."""
    return "--" + name.replace("_", "-")


def _is_tuple_field(hint: Any) -> bool:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return any(_is_tuple_field(arg) for arg in typing.get_args(hint))
    return typing.get_origin(hint) is tuple


@dataclass
class RunConfig:
    """What every training run has: data, splits, recipe, distribution and output folder.

    ``out=None`` means the task's default folder; ``workers=None`` up to 4 loader threads,
    one per CPU core; ``augmentation`` holds overrides of :class:`kws.augment.Augmentation`'s
    defaults; ``steps_per_epoch`` caps an epoch (None: every training clip once).
    """

    data: tuple[str, ...] = option(
        (DEFAULT_DATA,), metavar="FOLDER",
        help=f"Dataset folder in Speech Commands layout (repeatable) [default: {DEFAULT_DATA}, "
             "where `kws download` puts it].", default_text="")
    background: tuple[str, ...] = option(
        (), metavar="PATH",
        help="Extra folder or file of background noise (repeatable); the datasets' "
             "_background_noise_ folders are always used.")
    resplit: tuple[str, ...] = option(
        (), metavar="FOLDER",
        help="A --data folder to split by speaker with kws's own salted hash (10% validation, "
             "50% testing) instead of its lists, e.g. the 12-label test set. Repeatable.")
    epochs: int = option(30, help="Epochs to train (at most).")
    batch_size: int = option(64, help="Clips per training step.")
    learning_rate: float = option(
        2e-3, help="Peak learning rate (after warm-up, before cosine decay).")
    warmup_epochs: float = 1.0
    weight_decay: float = 1e-4
    average_epochs: float = option(
        0.0, metavar="EPOCHS",
        help="Validate and keep an exponential moving average of the weights over about this "
             "many epochs instead of the last step's weights (0: no average).")
    #: Epochs without a better monitored value before stopping; None never stops early.
    patience: int | None = option(
        10, parse=lambda value: value or None,
        help="Stop after this many epochs without a better validation score (0: never stop "
             "early).")
    seed: int = option(0, help="Seed of the initial weights, data order and augmentation.")
    validation_percent: float = option(
        10.0, help="Validation share of folders without list files.")
    testing_percent: float = option(10.0, help="Testing share of folders without list files.")
    augment: bool = option(
        True, help="Augment training batches on the fly (background noise, shift, gain).")
    augmentation: dict[str, Any] = field(default_factory=dict)
    distribute: str = option(
        "none", choices=DISTRIBUTE_CHOICES,
        help="tf.distribute strategy: MirroredStrategy (GPUs of this machine) or "
             "MultiWorkerMirroredStrategy (machines named in TF_CONFIG).")
    #: Threads preparing training batches (the batches do not depend on it).
    workers: int | None = option(
        None, help="Threads preparing training batches [default: one per CPU core, up to 4].")
    steps_per_epoch: int | None = None
    out: str | None = option(None, metavar="FOLDER", default_text="models/<name of the model>",
                             help="Model folder to write.")
    export: bool = option(
        True, help="Write the model's LiteRT file(s) at the end (float32, checked against "
                   "Keras), so it runs without TensorFlow at once.")

    # ------------------------------------------------------------------------- JSON

    def to_json(self) -> dict[str, Any]:
        """The configuration as JSON-ready values (tuples become lists, at any depth)."""
        return {item.name: _json_ready(getattr(self, item.name))
                for item in dataclasses.fields(self)}

    @classmethod
    def from_json(cls: type[C], values: Mapping[str, Any]) -> C:
        """A configuration from :meth:`to_json` output; unknown keys are ignored.

        Lists become tuples for the fields typed as tuples. Raises ``UsageError`` when
        ``values`` is not an object.
        """
        if not isinstance(values, Mapping):
            raise UsageError(f"a run configuration must be an object, not "
                             f"{type(values).__name__}")
        hints = typing.get_type_hints(cls)
        kept = {}
        for item in dataclasses.fields(cls):
            if item.name not in values:
                continue
            value = values[item.name]
            if isinstance(value, list) and _is_tuple_field(hints.get(item.name)):
                value = tuple(value)
            kept[item.name] = value
        return cls(**kept)

    # ------------------------------------------------------------------------- checks

    def problems(self) -> list[str]:
        """What is wrong with the options, one message each naming the option.

        Subclasses extend the list (``return [*super().problems(), ...]``).
        """
        checks = [
            (_whole(self.epochs) and self.epochs >= 1, "--epochs must be at least 1"),
            (_whole(self.batch_size) and self.batch_size >= 1,
             "--batch-size must be at least 1"),
            (_number(self.learning_rate) and self.learning_rate > 0,
             "--learning-rate must be positive"),
            (_number(self.warmup_epochs) and self.warmup_epochs >= 0,
             "warm-up epochs must not be negative"),
            (_number(self.weight_decay) and self.weight_decay >= 0,
             "weight decay must not be negative"),
            (_number(self.average_epochs) and self.average_epochs >= 0,
             "--average-epochs must not be negative"),
            (self.patience is None or (_whole(self.patience) and self.patience >= 1),
             "--patience must be at least 1 (0: never stop early)"),
            (_whole(self.seed), "--seed must be a whole number"),
            (self.workers is None or (_whole(self.workers) and self.workers >= 1),
             "--workers must be at least 1"),
            (self.distribute in DISTRIBUTE_CHOICES,
             f"--distribute must be one of {', '.join(DISTRIBUTE_CHOICES)}"),
            (self.steps_per_epoch is None
             or (_whole(self.steps_per_epoch) and self.steps_per_epoch >= 1),
             "steps per epoch must be at least 1"),
            (bool(self.data), "--data: at least one dataset folder is needed"),
            (isinstance(self.augmentation, dict), "augmentation settings must be an object"),
        ]
        for name in ("validation_percent", "testing_percent"):
            value = getattr(self, name)
            checks.append((_number(value) and 0 <= value <= 100,
                           f"{option_name(name)} must be in 0..100"))
        problems = [message for ok, message in checks if not ok]
        if not problems and self.validation_percent + self.testing_percent >= 100:
            problems.append("--validation-percent plus --testing-percent must be under 100")
        if not problems and self.augment:
            problems.extend(self._augmentation_problems())
        return problems

    def _augmentation_problems(self) -> list[str]:
        from kws.augment import Augmentation

        unknown = set(self.augmentation) - {f.name for f in dataclasses.fields(Augmentation)}
        if unknown:
            return [f"unknown augmentation setting(s): {', '.join(sorted(unknown))}"]
        return []

    def validate(self) -> None:
        """Raise :class:`~kws.errors.UsageError` with the first problem, if any."""
        problems = self.problems()
        if problems:
            raise UsageError(problems[0])

    def augmentation_settings(self):
        """The :class:`kws.augment.Augmentation` of the run (``NO_AUGMENTATION`` if off)."""
        from kws.augment import NO_AUGMENTATION, Augmentation

        if not self.augment:
            return NO_AUGMENTATION
        return Augmentation.from_dict(self.augmentation)

    def with_defaults(self: C, out: str) -> C:
        """The configuration with ``out`` and ``workers`` filled in when unset."""
        workers = self.workers or max(1, min(4, os.cpu_count() or 1))
        return dataclasses.replace(self, out=self.out or out, workers=workers)

    def resume_differences(self, saved: RunConfig) -> list[str]:
        """Option names whose values differ from a checkpoint's and may not (for resume)."""
        mine, theirs = self.to_json(), saved.to_json()
        return [option_name(name) for name in mine
                if name not in RESUMABLE_CHANGES and theirs.get(name) != mine[name]]


def _json_ready(value: Any) -> Any:
    """``value`` as JSON reads it back: tuples as lists, dictionaries copied, at any depth,
    so a configuration compares equal to itself after a round trip through a checkpoint."""
    if isinstance(value, tuple | list):
        return [_json_ready(item) for item in value]
    if isinstance(value, dict):
        return {key: _json_ready(item) for key, item in value.items()}
    return value


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


def cli_fields(cls: type[RunConfig], exclude: Sequence[str] = ()) -> list[dataclasses.Field]:
    """The fields of a configuration class that are command-line options."""
    return [item for item in dataclasses.fields(cls)
            if item.name not in exclude and option_spec(cls, item.name) is not None]
