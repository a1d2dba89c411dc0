"""The errors recbole-ext raises for bad input, so callers can catch them in one place."""


class RecBoleExtError(ValueError):
    """Bad input to recbole-ext: the message names the bad value and what is allowed."""


class ConfigError(RecBoleExtError):
    """A config key holds a value the model or tool cannot use."""


class UnknownModelError(RecBoleExtError):
    """A model name that neither recbole-ext nor RecBole provides."""


class CheckpointError(RecBoleExtError):
    """A checkpoint that cannot be saved or loaded safely (weights-only)."""


class DatasetNotFoundError(RecBoleExtError):
    """A dataset whose atomic files are not on disk and that RecBole could not download."""
