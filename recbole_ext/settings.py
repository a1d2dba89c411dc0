"""The settings recbole-ext's hooks act on, read and checked once per RecBole ``Config``.

``train_mode`` (how training samples are cut), ``lean_sequences`` (whether RecBole's sequential
datasets keep their prefix samples as rows of the flat interactions) and the evaluation protocol's
keys decide which data
the dataset builds, how the loaders batch it and how the model and the evaluator read it. They are
read here, into one :class:`RunSettings`, when the ``Config`` is built (a bad value is one
:class:`~recbole_ext.errors.ConfigError` before any data is loaded); the dataset, the loaders, the
model and the evaluator all ask :func:`of` instead of reading the keys again.
"""

import weakref
from dataclasses import dataclass

from recbole_ext import keys
from recbole_ext.errors import ConfigError
from recbole_ext.protocols.settings import ProtocolSettings, read_settings

# prefix: RecBole's one sample per prefix; sequence: whole-sequence windows; session: GRU4Rec's
# session-parallel rows (recbole_ext/data/sequence.py)
TRAIN_MODES = ("sequence", "prefix", "session")
WHOLE_SEQUENCE_MODES = ("sequence", "session")


@dataclass(frozen=True)
class RunSettings:
    train_mode: str
    protocol: ProtocolSettings
    lean: bool  # lean_sequences: RecBole's sequential datasets keep their samples as rows (data/lean.py)

    @property
    def held_out(self):
        """True when the evaluation protocol replaces RecBole's own split (user_split, session_split)."""
        return self.protocol.held_out

    @property
    def whole_sequences(self):
        """True when the training split is rewritten into whole-sequence windows or session steps."""
        return self.train_mode in WHOLE_SEQUENCE_MODES


_resolved = weakref.WeakKeyDictionary()


def resolve(config):
    """Read and check the settings of ``config`` (called as RecBole builds it) and keep them."""
    settings = RunSettings(train_mode=_train_mode(config), protocol=read_settings(config), lean=_lean(config))
    _resolve_per_train_mode(config, settings.train_mode)
    _check_folds(config)
    _resolved[config] = settings
    return settings


def of(config):
    """The settings of ``config``: those read when it was built, or read now (a config unpickled
    from a checkpoint was never built here)."""
    settings = _resolved.get(config)
    return settings if settings is not None else resolve(config)


def _train_mode(config):
    model = config["model"]
    # a plugin model declares its train modes (recbole_ext.registry's contract); RecBole's do not
    declared = getattr(config.model_class, "train_modes", None)
    plugin = declared is not None
    allowed = declared or ("prefix",)
    value = config["train_mode"]
    if value is None:
        return "prefix" if "prefix" in allowed else allowed[0]
    if value not in allowed:
        why = "" if plugin else f" ({model} is RecBole's: it trains on RecBole's prefix samples)"
        raise ConfigError(f"train_mode: {value!r} is not allowed; use one of {list(allowed)}{why}")
    return value


def _resolve_per_train_mode(config, train_mode):
    """``learning_rate: ~`` and ``train_batch_size: ~`` (the plugin RNNs' YAML) become the run's train
    mode's measured values from ``train_mode_learning_rates`` and ``train_mode_batch_sizes``: one value
    does not suit all modes (sequence mode makes one update per ``train_batch_size`` targets; session
    mode one per step of its ``train_batch_size`` rows). A value given in any config layer is kept."""
    for key, table_key, allowed, read in (
        ("learning_rate", "train_mode_learning_rates", "a number > 0",
         lambda where, value: keys.number({where: value}, where, 0, min_inclusive=False)),
        ("train_batch_size", "train_mode_batch_sizes", "an integer >= 1",
         lambda where, value: keys.integer({where: value}, where, 1)),
    ):
        if config[key] is not None:
            continue
        table = config[table_key]
        if not isinstance(table, dict) or train_mode not in table:
            raise ConfigError(f"{key}: None is not allowed without a value for train_mode {train_mode!r} in "
                              f"{table_key} ({table!r}); set {key} to {allowed}")
        config[key] = read(f"{table_key}.{train_mode}", table[train_mode])


def _lean(config):
    value = config["lean_sequences"]
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ConfigError(f"lean_sequences: {value!r} is not allowed; use true or false")
    return value


def _check_folds(config):
    # the rating models' k-fold keys (recbole_ext.data.rating_dataset), checked before data is loaded
    final = config.final_config_dict
    if "folds" in final:
        from recbole_ext.data.rating_dataset import check_fold

        folds, fold = final.get("folds"), final.get("fold")
        check_fold(folds, 0 if fold is None else fold)
