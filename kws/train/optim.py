"""The optimizers tasks train with (AdamW or Adam), linear warm-up, then cosine decay to zero.

With ``config.average_epochs`` the optimizer also keeps an exponential moving average of
the weights (Keras's ``use_ema``); the engine validates and keeps that average.
"""

from __future__ import annotations

from kws.runtime import import_keras
from kws.train.config import RunConfig


def learning_rate_schedule(config: RunConfig, steps_per_epoch: int):
    """Cosine decay to zero after a linear warm-up from zero (``config.warmup_epochs``)."""
    keras = import_keras()
    total = max(1, config.epochs * steps_per_epoch)
    warmup = min(total - 1, int(round(config.warmup_epochs * steps_per_epoch)))
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup else config.learning_rate,
        decay_steps=max(1, total - warmup),
        warmup_target=config.learning_rate if warmup else None,
        warmup_steps=warmup,
    )


def weight_average(config: RunConfig, steps_per_epoch: int) -> dict:
    """Keras optimizer options of the run's weight average: none, or its momentum per step.

    The average spans about ``config.average_epochs`` epochs whatever the data's size.
    """
    if not config.average_epochs:
        return {}
    steps = config.average_epochs * steps_per_epoch
    return {"use_ema": True, "ema_momentum": max(0.0, 1.0 - 1.0 / steps)}


def adamw(config: RunConfig, steps_per_epoch: int, **options):
    """AdamW with the run's schedule and weight decay (``options`` go to Keras)."""
    keras = import_keras()
    return keras.optimizers.AdamW(
        learning_rate=learning_rate_schedule(config, steps_per_epoch),
        weight_decay=config.weight_decay, **weight_average(config, steps_per_epoch), **options,
    )


def optimizer(name: str, config: RunConfig, steps_per_epoch: int):
    """``adamw`` (:func:`adamw`) or ``adam`` (no weight decay), both on the run's schedule."""
    if name == "adamw":
        return adamw(config, steps_per_epoch)
    if name == "adam":
        return import_keras().optimizers.Adam(
            learning_rate=learning_rate_schedule(config, steps_per_epoch),
            **weight_average(config, steps_per_epoch))
    raise ValueError(f"unknown optimizer {name!r} (known: adamw, adam)")
