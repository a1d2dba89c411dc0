"""Per-epoch records for the commands, as a trainer class (no instance is patched).

RecBole picks a model's trainer by name (``recbole.trainer.<Name>Trainer``, else its type's default;
:func:`recbole_ext.register_model` registers a plugin's own with ``trainer_class``);
:func:`with_epoch_records` extends whichever class that is.
"""

import time

import torch


class EpochRecords:
    """A trainer mixin keeping what RecBole's ``fit`` computes but does not hand on: each epoch's
    training seconds (``train_seconds``) and the last validation's whole result (``last_valid_result``)."""

    def _train_epoch(self, *args, **kwargs):
        if not hasattr(self, "train_seconds"):
            self.train_seconds = []
        start = time.perf_counter()
        loss = super()._train_epoch(*args, **kwargs)
        if str(self.device).startswith("cuda"):
            torch.cuda.synchronize()
        self.train_seconds.append(time.perf_counter() - start)
        return loss

    def _valid_epoch(self, *args, **kwargs):
        score, result = super()._valid_epoch(*args, **kwargs)
        self.last_valid_result = dict(result)
        return score, result


def with_epoch_records(trainer_class):
    """``trainer_class`` with :class:`EpochRecords` mixed in (RecBole's or a plugin's trainer)."""
    return type(f"{trainer_class.__name__}WithEpochRecords", (EpochRecords, trainer_class), {})
