"""Shared fixtures: a tiny slice of RecBole's bundled ml-100k and a helper that trains one epoch.

Every test runs in its own temporary directory, so RecBole's ``log/``, ``log_tensorboard/`` and
checkpoints never land in the repository.
"""

import os
import types
from pathlib import Path

import pytest
import torch

import recbole.utils.url
import recbole_ext  # noqa: F401  (adapts RecBole and registers the plugin models)
from recbole.quick_start import run_recbole

ML_100K = Path(os.path.dirname(__import__("recbole").__file__)) / "dataset_example" / "ml-100k"
TINY_USERS = 60
# Tiny models: two threads on two cores only add contention (a tiny epoch ran ~10x slower).
torch.set_num_threads(1)


def write_ml_slice(directory, name="ml-tiny", n_users=TINY_USERS):
    """Write the interactions of ml-100k's first ``n_users`` user ids (and the item file) as
    ``directory/name/name.{inter,item}``; returns ``directory``."""
    target = Path(directory) / name
    target.mkdir(parents=True, exist_ok=True)
    with open(ML_100K / "ml-100k.inter", encoding="utf-8") as src, open(
        target / f"{name}.inter", "w", encoding="utf-8"
    ) as dst:
        dst.write(src.readline())
        for line in src:
            if int(line.split("\t", 1)[0]) <= n_users:
                dst.write(line)
    (target / f"{name}.item").write_text((ML_100K / "ml-100k.item").read_text(encoding="utf-8"))
    return Path(directory)


@pytest.fixture(scope="session")
def tiny_data_path(tmp_path_factory):
    return str(write_ml_slice(tmp_path_factory.mktemp("data")))


@pytest.fixture(autouse=True)
def _in_tmp_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # RecBole's Config reads --key=value from sys.argv: pytest's own flags must not reach it.
    monkeypatch.setattr("sys.argv", ["pytest"])
    # Tests never touch the network: RecBole's dataset download opens its URLs through this module.
    monkeypatch.setattr(recbole.utils.url, "ur", types.SimpleNamespace(urlopen=_refuse_network))


def _refuse_network(url, *args, **kwargs):
    raise AssertionError(f"a test tried to download {url}")


@pytest.fixture
def tiny_config(tiny_data_path, tmp_path):
    """RecBole settings for one quick epoch on the tiny slice."""
    return {
        "dataset": "ml-tiny",
        "data_path": tiny_data_path,
        "load_col": {"inter": ["user_id", "item_id", "rating", "timestamp"]},
        "epochs": 1,
        "train_batch_size": 256,
        "eval_batch_size": 256,
        "show_progress": False,
        "checkpoint_dir": str(tmp_path / "saved"),
        "seed": 2020,
        "state": "ERROR",
    }


def quick_test(config_dict, **overrides):
    """Train one epoch and test through RecBole's own ``run_recbole``; returns its result."""
    config = {**config_dict, **overrides}
    return run_recbole(model=config["model"], dataset=config["dataset"], config_dict=config)
