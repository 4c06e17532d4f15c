"""tiedae: does pretraining an autoencoder on all images help a classifier with few labels,
and does tying the decoder's weights to the encoder's matter?"""

from tiedae import quiet

quiet.install()  # first: before anything imports TensorFlow (tiedae/quiet.py)

__version__ = "0.1.0"
