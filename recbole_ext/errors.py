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


class ModelContractError(RecBoleExtError):
    """A plugin model class that does not declare what :func:`recbole_ext.register_model` needs."""


class OutputError(RecBoleExtError, OSError):
    """An output file that could not be written whole (a full disk, a file size limit, a missing
    permission): the message names the file; the earlier file, if any, is kept as it was. Also an
    OSError, as the failed write was."""


class RecBoleExtWarning(UserWarning):
    """Input that works, but not as it probably was meant: the message says what was done."""


class DataError(ConfigError):
    """A dataset file or folder recbole-ext cannot use or write safely: the message names the path,
    and for a bad file the column and the first bad line. A ConfigError, so every script's bad-input
    handling (one line on stderr, exit 2) covers it."""
