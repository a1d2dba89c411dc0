"""Reading and checking config keys.

* Validators for a model's ``__init__`` (:func:`choice`, :func:`integer`, :func:`number`, ...): a bad
  value raises one :class:`ConfigError` that names the key, the value and what is allowed.
* :func:`literal_value`: how a ``--key=value`` string becomes a value: a Python literal or, failing
  that, the string itself. Nothing a user or a file supplies is ever evaluated as code.
* :func:`check_ranges`, :func:`no_sampler_for_ce` and :func:`check_known_keys`, run on every RecBole
  ``Config`` (:mod:`recbole_ext.hooks.config`): RecBole's numeric keys in their ranges, CE without
  a negative sampler, and keys that no config layer defines (a warning naming the closest known key;
  an error with ``strict_keys: True``).
"""

import ast
import difflib
import math
import warnings

from recbole_ext.errors import ConfigError, RecBoleExtWarning


class UnknownKeyWarning(RecBoleExtWarning):
    """A config key that no layer defines: most likely a misspelling, so its value is not used."""


def choice(config, key, allowed):
    value = config[key]
    if value not in allowed:
        raise ConfigError(f"{key}: {value!r} is not allowed; use one of {list(allowed)}")
    return value


def integer(config, key, minimum):
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{key}: {value!r} is not allowed; use an integer >= {minimum}")
    return value


def number(config, key, minimum=None, maximum=None, max_inclusive=True, min_inclusive=True):
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ConfigError(f"{key}: {value!r} is not allowed; use a number")
    too_low = minimum is not None and (value < minimum if min_inclusive else value <= minimum)
    too_high = maximum is not None and (value > maximum if max_inclusive else value >= maximum)
    if too_low or too_high:
        if maximum is None:
            allowed = f"a number {'>=' if min_inclusive else '>'} {minimum}"
        else:
            lower = "[" if min_inclusive else "("
            upper = "]" if max_inclusive else ")"
            allowed = f"a number in {lower}{minimum}, {maximum}{upper}"
        raise ConfigError(f"{key}: {value!r} is not allowed; use {allowed}")
    return float(value)


def probability(config, key, allow_one=True):
    return number(config, key, 0.0, 1.0, max_inclusive=allow_one)


def boolean(config, key):
    value = config[key]
    if not isinstance(value, bool):
        raise ConfigError(f"{key}: {value!r} is not allowed; use true or false")
    return value


def require_raw_seconds(config, time_field, needed_by):
    """Raise :class:`ConfigError` when ``time_field`` is min-max normalized: ``needed_by`` (e.g.
    ``"dwell_mode: 'feature'"``) reads it as seconds."""
    normalized_fields = config["normalize_field"] or []
    if config["normalize_all"] or time_field in normalized_fields:
        raise ConfigError(
            f"{needed_by} needs raw seconds in {time_field!r}, but it is min-max normalized "
            f"(normalize_all: {config['normalize_all']}, normalize_field: {config['normalize_field']}); "
            f"set normalize_all: False (ml-100k's dataset YAML sets it True)"
            + (f" and leave {time_field!r} out of normalize_field" if time_field in normalized_fields else "")
        )


def literal_value(text):
    """A ``--key=value`` string as a value: a Python literal (number, boolean, None, string, list,
    tuple, dict), ``true``/``false`` in any case as booleans, and otherwise the string itself."""
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        lowered = text.strip().lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        return text


# RecBole's numeric keys with a meaningful range, checked for every model before data is loaded.
# (key, minimum, inclusive): integers where RecBole needs integers.
_INTEGER_KEYS = {
    "epochs": 1,
    "train_batch_size": 1,
    "eval_batch_size": 1,
    "MAX_ITEM_LIST_LENGTH": 1,
    "eval_step": 0,
    "stopping_step": 1,
    "nproc": 1,
    "worker": 0,
}
_NON_NEGATIVE_KEYS = ("weight_decay",)
_POSITIVE_KEYS = ("eval_memory_mb",)
# Keys RecBole's code reads without any YAML defining them (its run() and Config fill some in).
RECBOLE_CODE_KEYS = frozenset({
    "model", "dataset", "config_files", "nproc", "world_size", "ip", "port", "offset", "group_offset",
    "local_rank", "single_spec", "device", "eval_type", "MODEL_TYPE", "MODEL_INPUT_TYPE", "encoding",
    "token_num_threshold", "valid_neg_sample_args", "test_neg_sample_args", "save_step",
    "convert_token_to_onehot",
})


def check_ranges(config):
    """RecBole's numeric keys in their ranges (a bad one raises :class:`ConfigError`)."""
    final = config.final_config_dict
    for key, minimum in _INTEGER_KEYS.items():
        if final.get(key) is not None:
            integer(final, key, minimum)
    if final.get("learning_rate") is not None:
        number(final, "learning_rate", 0, min_inclusive=False)
    for key in _NON_NEGATIVE_KEYS:
        if final.get(key) is not None:
            number(final, key, 0)
    for key in _POSITIVE_KEYS:
        if final.get(key) is not None:
            number(final, key, 0, min_inclusive=False)
    topk = final.get("topk")
    if topk is not None:
        values = topk if isinstance(topk, list) else [topk]
        if not values or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in values):
            raise ConfigError(f"topk: {topk!r} is not allowed; use an integer >= 1 or a list of them")


def unknown_keys(config):
    """``{key: where it was given}`` for every user-given key that no config layer defines."""
    known = set(config.internal_config_dict) | RECBOLE_CODE_KEYS
    for category in config.parameters.values():
        known.update(category)
    sources = (
        ("a config file", config.file_config_dict),
        ("config_dict or a --key=value of a command", config.variable_config_dict),
        ("the command line", config.cmd_config_dict),
    )
    return {key: where for where, given in sources for key in given if key not in known}


def closest_key(key, config):
    known = sorted(set(config.final_config_dict) - unknown_keys(config).keys())
    matches = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return matches[0] if matches else None


def unknown_key_message(key, where, config):
    near = closest_key(key, config)
    hint = f"did you mean {near!r}?" if near else "no known key is close"
    return (
        f"{key}: not a config key of {config['model']} on {config['dataset']} (given in {where}); "
        f"no layer defines it (RecBole's overall.yaml, the model's or dataset's YAML, recbole-ext's "
        f"properties), so its value is not used; {hint}"
    )


def check_known_keys(config):
    """Keys that no config layer defines: a warning each, or an error with ``strict_keys: True``."""
    strict = config.final_config_dict.get("strict_keys")
    if strict is not None and not isinstance(strict, bool):
        raise ConfigError(f"strict_keys: {strict!r} is not allowed; use true or false")
    for key, where in unknown_keys(config).items():
        message = unknown_key_message(key, where, config)
        if strict:
            raise ConfigError(message + " (strict_keys: True)")
        warnings.warn(message + " (strict_keys: True makes this an error)", UnknownKeyWarning, stacklevel=2)


def no_sampler_for_ce(config):
    """A sequential model with ``loss_type: CE`` draws no negatives unless the user asks for them:
    RecBole's ``overall.yaml`` sets a uniform sampler, which its own check then refuses for CE."""
    from recbole.utils import ModelType

    final = config.final_config_dict
    if (
        final.get("MODEL_TYPE") == ModelType.SEQUENTIAL
        and final.get("loss_type") == "CE"
        and "train_neg_sample_args" not in config.external_config_dict
    ):
        final["train_neg_sample_args"] = None
