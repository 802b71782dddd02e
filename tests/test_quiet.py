"""TensorFlow's start-up lines never reach a user's stderr, whichever module loads Keras."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["kws.models.phones", "kws.models.classifier"])
def test_importing_a_model_module_prints_nothing(module):
    done = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "" and done.stdout == ""
