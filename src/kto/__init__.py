"""kto: align language models from binary feedback with KTO and the HALO family."""
from .config import TrainConfig
from .errors import DataError, KTOError
from .losses import LOSSES, kto_loss

__version__ = "0.1.0"


def train(cfg: TrainConfig, examples=None):
    """Train with `cfg` and return the output folder (see kto.train.train)."""
    from .train import train as _train

    return _train(cfg, examples)


__all__ = ["LOSSES", "DataError", "KTOError", "TrainConfig", "kto_loss", "train"]
