"""translate: image-to-image translation (pix2pix, CycleGAN) with an embeddable Translator.

Importing the package is cheap: heavy modules load on first use.
"""

from .version import __version__

__all__ = ["Translator", "train", "__version__"]


def train(cfg, resume: bool = False, argv=None):
    """Train ``cfg.method`` as ``translate train`` does; see :func:`translate.training.loop.train`.

    Evaluation during training (``loop.eval_every``) uses :func:`translate.evaluate.evaluate`.

    Returns:
        ``translate.training.loop.TrainResult`` (run folder, step, epoch, stopping signal, method).
    """
    from .evaluate import evaluate
    from .training.loop import train as train_loop

    return train_loop(cfg, resume=resume, argv=argv, evaluate=evaluate)


def __getattr__(name):
    if name == "Translator":
        from .translator import Translator

        return Translator
    raise AttributeError(f"module 'translate' has no attribute {name!r}")
