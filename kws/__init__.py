"""kws: keyword spotting on raw waveforms.

Importing the package is cheap: TensorFlow, Keras and librosa are imported only by the
modules that need them.
"""

__version__ = "0.1.0"
