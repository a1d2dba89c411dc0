"""RecBole 1.2.1 on numpy 2 / torch >= 2.6 / Ray >= 2.7 through recbole_ext's compatibility layer."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from recbole.config import Config
from recbole.quick_start import load_data_and_model, objective_function, run_recbole
from recbole.utils import get_trainer

import recbole_ext
from recbole_ext import hooks
from tests.conftest import quick_test
from tests.toy_model import ToyGRU

REPO = Path(__file__).resolve().parents[1]


def test_stack_is_the_one_recbole_breaks_on():
    assert int(np.__version__.split(".")[0]) >= 2
    assert tuple(int(p) for p in torch.__version__.split("+")[0].split(".")[:2]) >= (2, 6)


def test_builtin_gru4rec_trains_and_tests_with_best_model_reloaded(tiny_config):
    result = quick_test(tiny_config, model="GRU4Rec")
    checkpoints = list(Path(tiny_config["checkpoint_dir"]).glob("GRU4Rec-*.pth"))
    assert len(checkpoints) == 1
    assert 0.0 <= result["test_result"]["ndcg@10"] <= 1.0
    assert set(result["test_result"]) == {"recall@10", "mrr@10", "ndcg@10", "hit@10", "precision@10"}


def test_builtin_gru4recf_with_item_features_and_its_checkpoint(tiny_config):
    config = {
        **tiny_config,
        "load_col": {"inter": ["user_id", "item_id", "rating", "timestamp"], "item": ["item_id", "class"]},
        "selected_features": ["class"],
    }
    result = quick_test(config, model="GRU4RecF")
    assert 0.0 <= result["best_valid_result"]["ndcg@10"] <= 1.0
    assert result["test_result"]["hit@10"] >= result["test_result"]["ndcg@10"]
    # its feature layer (a submodule, with the dataset inside) stays out of the pickle
    (checkpoint,) = Path(config["checkpoint_dir"]).glob("GRU4RecF-*.pth")
    state = torch.load(checkpoint, weights_only=True)
    assert state["other_parameter"] == {}
    assert any(key.startswith("feature_embed_layer.") for key in state["state_dict"])


def test_plugin_model_through_recboles_run_recbole_with_yaml_defaults(tiny_config):
    yaml_only = Config(model="ToyGRU", dataset="ml-tiny", config_dict=tiny_config)
    assert yaml_only["toy_marker"] == "from_yaml" and yaml_only["embedding_size"] == 8
    assert yaml_only["train_neg_sample_args"]["distribution"] == "none"
    overridden = Config(model="ToyGRU", dataset="ml-tiny", config_dict={**tiny_config, "embedding_size": 12})
    assert overridden["embedding_size"] == 12
    assert overridden["hidden_size"] is None  # RecBole's GRU4Rec.yaml is not a layer of ToyGRU

    result = run_recbole(model="ToyGRU", dataset="ml-tiny", config_dict={**tiny_config, "embedding_size": 12})
    assert 0.0 <= result["test_result"]["recall@10"] <= 1.0


def test_plugin_yaml_sits_between_overall_and_user_config(tiny_config, tmp_path):
    user_file = tmp_path / "user.yaml"
    user_file.write_text("toy_marker: from_user_file\n")
    config = Config(model="ToyGRU", dataset="ml-tiny", config_file_list=[str(user_file)], config_dict=tiny_config)
    assert config["toy_marker"] == "from_user_file"
    assert config["learning_rate"] == 0.001  # overall.yaml still applies below the plugin YAML


def test_command_line_overrides_plugin_yaml(tiny_config, monkeypatch):
    monkeypatch.setattr("sys.argv", ["run.py", "--toy_marker=from_cmd"])
    assert Config(model="ToyGRU", dataset="ml-tiny", config_dict=tiny_config)["toy_marker"] == "from_cmd"


def test_plugin_model_through_recboles_objective_function(tiny_config):
    result = objective_function(config_dict={**tiny_config, "model": "ToyGRU", "embedding_size": 4})
    assert result["model"] == "ToyGRU"
    assert 0.0 <= result["test_result"]["ndcg@10"] <= 1.0


def test_checkpoint_reloads_weights_only_with_the_same_test_metrics(tiny_config):
    result = quick_test(tiny_config, model="ToyGRU")
    (checkpoint,) = Path(tiny_config["checkpoint_dir"]).glob("ToyGRU-*.pth")
    torch.load(checkpoint, weights_only=True)  # the format itself is weights-only readable

    config, model, dataset, train_data, valid_data, test_data = load_data_and_model(str(checkpoint))
    assert isinstance(model, ToyGRU)
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    reloaded = trainer.evaluate(test_data, load_best_model=False)
    assert dict(reloaded) == pytest.approx(dict(result["test_result"]))


class _CreatesFile:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def test_checkpoint_whose_pickle_runs_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    torch.save({"config": None, "state_dict": {}, "payload": _CreatesFile(marker)}, evil, pickle_protocol=2)
    with pytest.raises(recbole_ext.CheckpointError, match=r"refusing to load .*evil\.pth.*system"):
        load_data_and_model(str(evil))
    assert not marker.exists()


def test_unknown_model_name_is_one_clear_error(tiny_config):
    with pytest.raises(recbole_ext.UnknownModelError) as error:
        Config(model="NoSuchModel", dataset="ml-tiny", config_dict=tiny_config)
    message = str(error.value)
    assert "'NoSuchModel'" in message and "GRU4Rec" in message and "SASRec" in message
    assert "ToyGRU" in message  # registered plugin models are listed
    with pytest.raises(recbole_ext.UnknownModelError):
        run_recbole(model="NoSuchModel", dataset="ml-tiny", config_dict=tiny_config)


def test_registering_over_a_recbole_model_is_refused():
    class GRU4Rec(ToyGRU):
        pass

    with pytest.raises(recbole_ext.ModelContractError, match="RecBole already has"):
        recbole_ext.register_model(GRU4Rec)


def test_ce_model_keeps_an_explicit_user_sampler_error(tiny_config):
    sampler = {"distribution": "uniform", "sample_num": 1}
    with pytest.raises(ValueError, match="should be None when the loss_type is CE"):
        Config(model="GRU4Rec", dataset="ml-tiny", config_dict={**tiny_config, "train_neg_sample_args": sampler})


def test_missing_dataset_recbole_cannot_download_is_a_clear_error(tiny_config, tmp_path):
    config = {**tiny_config, "data_path": str(tmp_path / "nothing")}
    with pytest.raises(recbole_ext.DatasetNotFoundError, match="'ml-missing' not found and RecBole has no download"):
        quick_test(config, model="GRU4Rec", dataset="ml-missing")


def test_ray_style_report_outside_a_trial_is_harmless():
    import recbole.quick_start.quick_start as quick_start

    quick_start.tune.report(ndcg=0.5)  # RecBole 1.2.1's call form; raised TypeError on Ray >= 2.7


def test_recbole_sine_import_leaves_anomaly_detection_off():
    import recbole.model.sequential_recommender  # noqa: F401  (imports sine.py)

    assert not torch.is_anomaly_enabled()


def test_installing_the_hooks_again_changes_nothing():
    before = Config.compatibility_settings
    hooks.install()
    assert Config.compatibility_settings is before


def _run_script(*args, cwd):
    return subprocess.run(
        [sys.executable, str(REPO / "run.py"), *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )


def test_run_py_trains_a_builtin_and_prints_results(tiny_data_path, tmp_path):
    (tmp_path / "tiny.yaml").write_text("load_col:\n  inter: [user_id, item_id, timestamp]\n")
    done = _run_script(
        "--model=GRU4Rec", "--dataset=ml-tiny", "--config_files=tiny.yaml", f"--data_path={tiny_data_path}", "--epochs=1",
        "--show_progress=False", f"--checkpoint_dir={tmp_path / 'saved'}", cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "best valid" in done.stdout and "test result" in done.stdout and "ndcg@10" in done.stdout


def test_run_py_unknown_model_exits_with_one_line(tmp_path):
    done = _run_script("--model=NoSuchModel", "--dataset=ml-100k", cwd=tmp_path)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "unknown model 'NoSuchModel'" in done.stderr


def test_another_recbole_version_is_one_clear_error_at_import():
    hooks.check_recbole_version("1.2.1")
    with pytest.raises(ImportError) as error:
        hooks.check_recbole_version("1.3.0")
    assert str(error.value).startswith("recbole-ext adapts RecBole 1.2.1 only, but RecBole 1.3.0 is installed")
    assert str(error.value).endswith("install 1.2.1 with `pip install --no-deps recbole==1.2.1`")


def test_packaged_run_command_is_the_scripts_command(tmp_path):
    done = subprocess.run([sys.executable, "-m", "recbole_ext", "run", "--model=NoSuchModel"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith(
        "python -m recbole_ext run: error: unknown model 'NoSuchModel'")
