"""Reading and checking model config keys: a bad value raises one :class:`ConfigError` that names
the key, the value and what is allowed, before any training starts."""

from recbole_ext.errors import ConfigError


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


def number(config, key, minimum=None, maximum=None, max_inclusive=True):
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{key}: {value!r} is not allowed; use a number")
    too_low = minimum is not None and value < minimum
    too_high = maximum is not None and (value > maximum if max_inclusive else value >= maximum)
    if too_low or too_high:
        upper = "]" if max_inclusive else ")"
        raise ConfigError(
            f"{key}: {value!r} is not allowed; use a number in [{minimum}, {maximum}{upper}"
        )
    return float(value)


def probability(config, key, allow_one=True):
    return number(config, key, 0.0, 1.0, max_inclusive=allow_one)


def boolean(config, key):
    value = config[key]
    if not isinstance(value, bool):
        raise ConfigError(f"{key}: {value!r} is not allowed; use true or false")
    return value
