"""The evaluation-protocol keys: read, defaulted and checked once, before any data is split.

A key missing from the config (``Config`` answers None) takes the default of
``recbole_ext/properties/overall.yaml``; a bad value raises one :class:`ConfigError` naming the key.
"""

from dataclasses import dataclass

from recbole_ext.errors import ConfigError

LEAVE_ONE_OUT, USER_SPLIT, SESSION_SPLIT = "leave_one_out", "user_split", "session_split"
PROTOCOLS = (LEAVE_ONE_OUT, USER_SPLIT, SESSION_SPLIT)
SECONDS_PER_DAY = 86400

DEFAULTS = {
    "eval_protocol": LEAVE_ONE_OUT,
    "val_users": 0.1,
    "test_users": 0.1,
    "input_fraction": 0.5,
    "eval_all_prefixes": False,
    "extended_train": False,
    "exclude_seen": False,
    "test_days": 1,
    "valid_days": 1,
    "final_train_on_valid": False,
}


@dataclass(frozen=True)
class ProtocolSettings:
    protocol: str
    val_users: float
    test_users: float
    input_fraction: float
    eval_all_prefixes: bool
    extended_train: bool
    exclude_seen: bool
    test_days: float
    valid_days: float
    final_train_on_valid: bool = False

    @property
    def held_out(self):
        """True when this protocol replaces RecBole's own split."""
        return self.protocol != LEAVE_ONE_OUT


def _value(config, key):
    value = config[key]
    return DEFAULTS[key] if value is None else value


def protocol_name(config):
    value = _value(config, "eval_protocol")
    if value not in PROTOCOLS:
        raise ConfigError(f"eval_protocol: {value!r} is not allowed; use one of {list(PROTOCOLS)}")
    return value


def read_settings(config):
    """Every protocol key of ``config``, checked; raises :class:`ConfigError` on the first bad one."""
    values = {key: _value(config, key) for key in DEFAULTS}
    values["eval_protocol"] = protocol_name(config)
    for key in ("val_users", "test_users"):
        values[key] = _user_share(key, values[key])
    fraction = values["input_fraction"]
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise ConfigError(
            f"input_fraction: {fraction!r} is not allowed; use a number in (0, 1), the share of a "
            "held-out user's sequence read as input"
        )
    for key in ("eval_all_prefixes", "extended_train", "exclude_seen", "final_train_on_valid"):
        if not isinstance(values[key], bool):
            raise ConfigError(f"{key}: {values[key]!r} is not allowed; use true or false")
    if values["final_train_on_valid"] and values["eval_protocol"] != SESSION_SPLIT:
        raise ConfigError(
            f"final_train_on_valid: True retrains on the training and validation sessions for the test "
            f"(GRU4Rec's protocol) and needs eval_protocol: session_split, not {values['eval_protocol']}"
        )
    for key in ("test_days", "valid_days"):
        days = values[key]
        if isinstance(days, bool) or not isinstance(days, (int, float)) or not days > 0:
            raise ConfigError(f"{key}: {days!r} is not allowed; use a number of days > 0")
    return ProtocolSettings(
        protocol=values["eval_protocol"],
        val_users=values["val_users"],
        test_users=values["test_users"],
        input_fraction=float(fraction),
        eval_all_prefixes=values["eval_all_prefixes"],
        extended_train=values["extended_train"],
        exclude_seen=values["exclude_seen"],
        test_days=float(values["test_days"]),
        valid_days=float(values["valid_days"]),
        final_train_on_valid=values["final_train_on_valid"],
    )


def _user_share(key, value):
    is_number = not isinstance(value, bool) and isinstance(value, (int, float))
    if not is_number or value <= 0 or (value >= 1 and value != int(value)):
        raise ConfigError(
            f"{key}: {value!r} is not allowed; use a fraction in (0, 1) of the users or a whole "
            "number >= 1 of users"
        )
    return value


def held_out_count(key, value, n_users):
    """Users held out for ``key``: ⌊value·n_users⌋ for a fraction, else the count itself."""
    count = int(value * n_users) if value < 1 else int(value)
    if count < 1:
        raise ConfigError(
            f"{key}: {value!r} holds out no user of {n_users}; use a larger fraction or a count >= 1"
        )
    return count
