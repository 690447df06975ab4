"""translate: image-to-image translation (pix2pix, CycleGAN) with an embeddable Translator.

Importing the package is cheap: heavy modules load on first use.
"""

__version__ = "0.1.0"

__all__ = ["Translator", "train", "__version__"]


def __getattr__(name):
    if name == "Translator":
        from .translator import Translator

        return Translator
    if name == "train":
        from .train.loop import train

        return train
    raise AttributeError(f"module 'translate' has no attribute {name!r}")
