"""``--verify``: the phone model as a second opinion on the classifier's detections."""

from __future__ import annotations

import os

import click

verify_option = click.option(
    "--verify", is_flag=True,
    help="Have the phone model confirm each detection: how surely the keyword's phones are "
         "said there (far fewer false accepts in ordinary speech; fewer words found in "
         "noise). Thresholds: `kws calibrate --verify`'s in the card, else 0.6.")


def detector_verifier(model: str | os.PathLike | None, verify: bool):
    """:func:`kws.phones.verify.detector_verifier`, imported only when a command runs."""
    from kws.phones import verify as phones_verify

    return phones_verify.detector_verifier(model, verify)
