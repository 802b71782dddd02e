"""Phone recognition on raw waveforms: lexicon, TIMIT reader, CTC, metrics and spotting.

``kws phones`` trains a model that emits 39 phones (plus the CTC blank) frame by frame
from the waveform, using the classifier's learned front end. Speech Commands clips are
trained from their word's pronunciations (:mod:`kws.phones.lexicon`) with CTC, so no
alignment is needed; TIMIT-format folders (:mod:`kws.phones.timit`) bring their own
phone labels. Importing this package is cheap: Keras is imported only where needed.
"""
