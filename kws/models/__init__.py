"""Keras models of kws; importing this package registers the custom layers for loading.

Whichever model module is imported first, this package is imported before it and loads
Keras through :func:`kws.runtime.import_keras`, so TensorFlow's start-up lines are
silenced for every command that builds or loads a model.
"""

from kws.runtime import import_keras

import_keras()

from kws.models import classifier, vae  # noqa: E402  (registers the custom layers)

__all__ = ["classifier", "vae"]
