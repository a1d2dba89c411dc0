"""Per-epoch records for the commands, as a trainer class (no instance is patched).

RecBole picks a model's trainer by name (``recbole.trainer.<Name>Trainer``, else its type's default;
:func:`recbole_ext.register_model` registers a plugin's own with ``trainer_class``);
:func:`with_epoch_records` extends whichever class that is, :func:`resumable` likewise (the ``run``
command's trainer: it keeps the state to continue a killed run).
"""

import contextlib
import os
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


class ResumableTraining:
    """A trainer mixin that keeps the state to continue its run after a kill, and continues one.

    Just before every epoch after the first, the state after the epoch before is written to
    :attr:`resume_file`, ``NAME.resume.pth`` beside the best checkpoint ``NAME.pth`` (:func:`recbole_ext.checkpoints.save_resume_state`: weights, optimizer,
    early-stopping state, loss history, the best checkpoint's path, random states including the
    training loader's generator). :meth:`resume_checkpoint` reads one back (weights-only); the random
    states are put back just before the next epoch, at the point where they were taken, so the
    continued run draws what the uninterrupted one would have drawn and ends with the same weights.
    RecBole's own ``resume_checkpoint`` restarts from a best-epoch checkpoint, without any of that.
    """

    _resume_file = None
    _pending_random_state = None

    @property
    def resume_file(self):
        from recbole_ext import checkpoints

        return self._resume_file or checkpoints.resume_file_of(self.saved_model_file)

    def _train_epoch(self, train_data, epoch_idx, *args, **kwargs):
        from recbole_ext import checkpoints

        if self._pending_random_state is not None:
            checkpoints.set_random_state(self._pending_random_state, train_data)
            self._pending_random_state = None
        elif epoch_idx > self.start_epoch and self._writes_files():
            first = not os.path.exists(self.resume_file)
            checkpoints.save_resume_state(self, epoch_idx - 1, self.resume_file, train_data)
            if first:
                self.logger.info(f"the state to continue this run is saved before every epoch to {self.resume_file}: "
                                 f"python -m recbole_ext run --resume={self.resume_file}")
        return super()._train_epoch(train_data, epoch_idx, *args, **kwargs)

    def _writes_files(self):
        return self.config["single_spec"] or self.config["local_rank"] == 0  # RecBole's rule: rank 0 writes

    def resume_checkpoint(self, resume_file, state=None):
        """Continue the run whose state ``resume_file`` holds (see the class docstring); ``state``:
        that file already loaded (:func:`recbole_ext.checkpoints.load_resume_state`)."""
        from recbole_ext import checkpoints
        from recbole_ext.errors import CheckpointError

        state = checkpoints.load_resume_state(resume_file) if state is None else state
        resume = state[checkpoints.RESUME_KEY]
        try:
            self.model.load_state_dict(state["state_dict"])
        except RuntimeError as error:
            reason = str(error).strip().splitlines()[0]
            raise CheckpointError(f"--resume: the weights in {resume_file} do not fit the model built from the data "
                                  f"now ({reason}); did the dataset change since the run started?") from None
        self.model.load_other_parameter(state.get("other_parameter"))
        self.optimizer.load_state_dict(state["optimizer"])
        self.start_epoch = state["epoch"] + 1
        self.cur_step = state["cur_step"]
        self.best_valid_score = state["best_valid_score"]
        self.best_valid_result = resume["best_valid_result"]
        self.train_loss_dict = dict(resume["train_loss_dict"])
        self.saved_model_file = resume["saved_model_file"]
        self._resume_file = str(resume_file)
        self._pending_random_state = resume["random_state"]
        self.logger.info(f"continuing the run of {resume_file} from epoch {self.start_epoch} "
                         f"(best checkpoint: {self.saved_model_file})")

    def finish(self):
        """The run is done (trained and tested): its resume state is no longer needed."""
        if self._writes_files():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.resume_file)


def resumable(trainer_class):
    """``trainer_class`` with :class:`ResumableTraining` mixed in (RecBole's or a plugin's trainer)."""
    return type(f"{trainer_class.__name__}Resumable", (ResumableTraining, trainer_class), {})
