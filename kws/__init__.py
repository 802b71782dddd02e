"""kws: keyword spotting on raw waveforms.

Importing the package is cheap: TensorFlow, Keras and librosa are imported only by the
modules that need them.
"""

import os

__version__ = "0.1.0"

# TensorFlow's C++ start-up chatter (CPU feature notices) is noise on a user's stderr.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
