"""The one training engine: configuration, task protocol, events, checkpoints and ``fit``.

A model family plugs in by subclassing :class:`~kws.train.task.Task` (and
:class:`~kws.train.config.RunConfig` for its options) and calling :func:`fit`. Importing
this package does not import TensorFlow; :func:`fit` does, after every check of
:func:`check_run` has passed.
"""

from kws.train.config import DEFAULT_DATA, RunConfig, option
from kws.train.engine import RunPlan, TrainResult, batch_dataset, check_run, fit
from kws.train.events import Shown, TrainEvents
from kws.train.task import Batches, Prepared, Task

__all__ = [
    "DEFAULT_DATA", "Batches", "Prepared", "RunConfig", "RunPlan", "Shown", "Task",
    "TrainEvents", "TrainResult", "batch_dataset", "check_run", "fit", "option",
]
