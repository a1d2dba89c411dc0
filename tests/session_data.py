"""Generated session logs for the tests (seeded, small)."""

import yaml

from recbole_ext.data.atomic import write_sessions
from recbole_ext.data.synth import generate


def session_dataset(directory, n_sessions=300, name="sessions"):
    """Write a generated session log and return the RecBole settings that read it."""
    config_file = write_sessions(*generate(n_sessions, n_items=100, seed=0), directory, name)
    return {**yaml.safe_load(config_file.read_text()), "dataset": name}
