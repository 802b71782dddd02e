"""kws: keyword spotting on raw waveforms.

Importing the package is cheap and changes no process state: TensorFlow, Keras and librosa
are imported only by the modules that need them, and TensorFlow's start-up noise is
silenced by :mod:`kws.runtime` when a command first imports it.
"""

__version__ = "0.2.0"
