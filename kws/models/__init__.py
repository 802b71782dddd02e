"""Keras models of kws; importing this package registers the custom layers for loading."""

from kws.models import classifier

__all__ = ["classifier"]

from kws.models import vae  # noqa: E402  (registers the VAE layers)

__all__ += ["vae"]
