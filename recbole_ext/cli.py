"""What the commands (``run``, ``hyper``, ``benchmark``) share: ``--key=value`` config overrides read
as literals, RecBole's ``sys.argv`` reading kept out of the way, and bad input reported as one line
on stderr with exit code 2 — the last line, not under RecBole's INFO dump."""

import contextlib
import logging
import sys
import warnings

from recbole_ext.errors import ConfigError, OutputError, RecBoleExtWarning
from recbole_ext.keys import UnknownKeyWarning, literal_value

EXIT_BAD_INPUT = 2
EXIT_OUTPUT_FAILED = 1  # an output file could not be written (a full disk): not bad input


def config_overrides(args):
    """``{key: value}`` from ``--key=value`` arguments, each value a literal (:func:`literal_value`)."""
    overrides = {}
    for arg in args:
        key, sep, value = arg[2:].partition("=") if arg.startswith("--") else ("", "", "")
        if not sep or not key:
            raise ConfigError(f"unrecognized argument {arg!r}; config overrides are --key=value")
        if key in overrides and overrides[key] != literal_value(value):
            raise ConfigError(f"--{key} is given twice with different values")
        overrides[key] = literal_value(value)
    return overrides


def config_files(text, flag="--config_files"):
    """``--config_files`` (space-separated) as a list of existing files, or None; each must be UTF-8
    YAML holding a mapping of keys (:func:`check_config_file`)."""
    files = text.split() if text else []
    for path in files:
        check_config_file(path, flag)
    return files or None


def utf8_text(raw, refusal):
    """``raw`` decoded as UTF-8, or the error ``refusal(line, bad_bytes)`` makes for its first
    undecodable bytes (line counted from 1) raised."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise refusal(line, raw[error.start:error.end]) from None


def check_config_file(path, flag="--config_files"):
    """Raise :class:`ConfigError` naming ``path`` unless it is a file of UTF-8 YAML holding a mapping
    (what RecBole's ``Config`` reads it as; its own errors name no file)."""
    import os

    import yaml

    if not os.path.isfile(path):
        raise ConfigError(f"{flag}: {path!r} is not a file")
    with open(path, "rb") as f:
        raw = f.read()
    text = utf8_text(raw, lambda line, bad: ConfigError(
        f"{flag}: {path}, line {line}: bytes {bad!r} are not UTF-8; save the file as UTF-8"))
    try:
        loaded = yaml.load(text, Loader=yaml.FullLoader)  # RecBole's own loader reads it the same way
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"{flag}: {path}{where}: not YAML ({problem}); write one 'key: value' per line") from None
    if loaded is not None and not isinstance(loaded, dict):
        raise ConfigError(f"{flag}: {path} holds a YAML {type(loaded).__name__}, not keys; write one 'key: value' "
                          "per line")


def name(flag, value, default):
    """A ``--model`` or ``--dataset`` value: ``default`` when not given; an empty one is refused (RecBole
    would look for a dataset folder or model class named '')."""
    if value is None:
        return default
    if not value.strip():
        raise ConfigError(f"{flag}: {value!r} is empty; give a name (default: {default})")
    return value


def bad_input(prog, error):
    """Print ``error`` as the one last line on stderr; returns the exit code: 2 for bad input, 1 for
    an output file that could not be written (:class:`OutputError`)."""
    sys.stdout.flush()
    print(f"{prog}: error: {error}", file=sys.stderr, flush=True)
    return EXIT_OUTPUT_FAILED if isinstance(error, OutputError) else EXIT_BAD_INPUT


@contextlib.contextmanager
def without_command_line():
    """Hide ``sys.argv`` from RecBole's ``Config``, which reads every ``--key=value`` in it as a
    config key: the commands pass their overrides as ``config_dict`` instead (and a Ray worker's
    own flags, ``--node-ip-address=…``, must not reach it either)."""
    saved = sys.argv
    sys.argv = saved[:1]
    try:
        yield
    finally:
        sys.argv = saved


@contextlib.contextmanager
def one_line_warnings(prog):
    """Show recbole-ext's warnings (unknown keys, data dropped or used unusually) as
    ``PROG: warning: ...`` lines."""
    recbole_showwarning = warnings.showwarning

    def showwarning(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, (UnknownKeyWarning, RecBoleExtWarning)):
            print(f"{prog}: warning: {message}", file=sys.stderr, flush=True)
        else:
            recbole_showwarning(message, category, filename, lineno, file, line)

    warnings.showwarning = showwarning
    try:
        yield
    finally:
        warnings.showwarning = recbole_showwarning


@contextlib.contextmanager
def console_log_held_until_training():
    """Hold RecBole's log lines back from the console until training starts.

    RecBole logs the whole config and dataset (~120 lines) before the model checks its keys; a bad
    key would end the output under them. Held lines reach the console once a trainer is built
    (the model accepted its config: :func:`recbole_ext.hooks.trainer.on_trainer_built`) and are
    dropped from it if the run fails first; RecBole's log file gets every line either way.
    """
    from recbole_ext.hooks.trainer import on_trainer_built

    root = logging.getLogger()
    held = []
    state = {"holding": True}

    def is_console(handler):
        return isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)

    class Hold(logging.Filter):
        def filter(self, record):
            if not state["holding"]:
                return True
            held.append(record)
            for handler in root.handlers:
                if not is_console(handler) and record.levelno >= handler.level:
                    handler.handle(record)
            return False

    def release(trainer=None):
        if not state["holding"]:
            return
        state["holding"] = False
        for record in held:
            for handler in root.handlers:
                if is_console(handler) and record.levelno >= handler.level:
                    handler.handle(record)
        held.clear()

    hold = Hold()
    root.addFilter(hold)
    stop_listening = on_trainer_built(release)
    try:
        yield
    finally:
        stop_listening()
        root.removeFilter(hold)
        state["holding"] = False
