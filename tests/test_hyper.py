"""run_hyper.py: RecBole's hyper-file syntax, Ray Tune searches, failed trials, resume."""

import math
import os

import pytest

import recbole_ext
from recbole_ext import hyper
import run_hyper

HYPER_FILES = ["hyper/rnncce.hyper", "hyper/dwellgru4rec.hyper", "hyper/gru4rec.hyper", "hyper/gru4recf.hyper"]
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write(tmp_path, text, name="x.hyper"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_every_type_parses(tmp_path):
    path = write(tmp_path, (
        "# a comment line\n\n"
        "learning_rate loguniform -8,0   # log-space bounds\n"
        "dropout_prob choice [0.0,0.1, 0.2]\n"
        "kl_weight uniform 0,1\n"
        "embedding_size quniform 32,128,32\n"
        "rnn_type choice ['LSTM','GRU']\n"
    ))
    assert hyper.parse_hyper_file(path) == {
        "learning_rate": ("loguniform", (-8.0, 0.0)),
        "dropout_prob": ("choice", [0.0, 0.1, 0.2]),
        "kl_weight": ("uniform", (0.0, 1.0)),
        "embedding_size": ("quniform", (32.0, 128.0, 32.0)),
        "rnn_type": ("choice", ["LSTM", "GRU"]),
    }


def test_loguniform_bounds_are_exponents():
    space = hyper.to_tune_space({"learning_rate": ("loguniform", (-8.0, 0.0))}, grid=False)
    domain = space["learning_rate"]
    assert domain.lower == pytest.approx(math.exp(-8)) and domain.upper == pytest.approx(1.0)


def test_all_choice_lines_make_a_grid():
    space = {"a": ("choice", [1, 2, 3]), "b": ("choice", ["x", "y"])}
    assert hyper.is_grid(space) and hyper.grid_size(space) == 6
    assert hyper.to_tune_space(space, grid=True)["a"] == {"grid_search": [1, 2, 3]}


@pytest.mark.parametrize(
    "line, message",
    [
        ("learning_rate 0.01", r"x.hyper:2: 'learning_rate 0.01' is not a hyper line"),
        ("learning_rate normal 0,1", r"x.hyper:2: type 'normal' is not allowed"),
        ("dropout_prob choice 0.1", r"x.hyper:2: choice needs a non-empty Python list"),
        ("dropout_prob choice []", r"x.hyper:2: choice needs a non-empty Python list"),
        ("learning_rate uniform 1", r"x.hyper:2: uniform needs low,high"),
        ("learning_rate loguniform 0,-8", r"x.hyper:2: loguniform needs low,high with low <= high"),
        ("hidden_size quniform 8,64", r"x.hyper:2: quniform needs low,high,q"),
    ],
)
def test_malformed_lines_name_file_line_and_forms(tmp_path, line, message):
    path = write(tmp_path, f"# header\n{line}\n")
    with pytest.raises(hyper.HyperFileError, match=message) as error:
        hyper.parse_hyper_file(path)
    assert "name choice [v1,v2,...]" in str(error.value) or "needs" in str(error.value)


@pytest.mark.parametrize("path", HYPER_FILES)
def test_shipped_hyper_files_name_real_config_keys(path, tiny_config):
    model = {"rnncce": "RNNCCE", "dwellgru4rec": "DwellGRU4Rec", "gru4rec": "GRU4Rec", "gru4recf": "GRU4RecF"}[
        os.path.basename(path).split(".")[0]
    ]
    space = hyper.parse_hyper_file(os.path.join(REPO, path))
    hyper.check_parameter_names(space, model, "ml-tiny", None, tiny_config)


def test_unknown_parameter_is_refused_before_ray_starts(tmp_path, tiny_config):
    path = write(tmp_path, "learning_rate choice [0.01]\nlearnin_rate choice [0.1]\n")
    with pytest.raises(recbole_ext.ConfigError, match="'learnin_rate' is not a config key of RNNCCE"):
        hyper.check_parameter_names(hyper.parse_hyper_file(path), "RNNCCE", "ml-tiny", None, tiny_config)


def search_args(tmp_path, tiny_data_path, params_file, *extra):
    return [
        "--model=RNNCCE", "--dataset=ml-tiny", f"--params_file={params_file}", f"--data_path={tiny_data_path}",
        "--num_cpus=2", f"--storage_path={tmp_path / 'ray'}", "--name=search", "--epochs=1", "--state=ERROR",
        "--embedding_size=8", "--hidden_size=8", "--load_col={'inter':['user_id','item_id','timestamp']}", *extra,
    ]


def read_rows(tmp_path):
    import csv

    with open(tmp_path / "ray" / "search" / "results.csv") as f:
        return list(csv.DictReader(f))


def test_search_with_a_failing_trial_then_resume(tmp_path, tiny_data_path, capsys):
    params = write(tmp_path, "dropout_prob choice [0.1,1.5]\n")  # 1.5 fails inside its trial
    assert run_hyper.main(search_args(tmp_path, tiny_data_path, params)) == 0
    rows = sorted(read_rows(tmp_path), key=lambda row: row["dropout_prob"])
    assert [row["dropout_prob"] for row in rows] == ["0.1", "1.5"]
    assert rows[0]["status"] == "finished" and rows[0]["epochs"] == "1"
    assert 0.0 <= float(rows[0]["test/ndcg@10"]) <= 1.0
    assert rows[1]["status"] == "failed" and "dropout_prob: 1.5 is not allowed" in rows[1]["error"]
    out = capsys.readouterr().out
    assert "best params: {'dropout_prob': 0.1}" in out and "2 trials (1 failed)" in out

    assert run_hyper.main(search_args(tmp_path, tiny_data_path, params, "--resume")) == 0
    resumed = sorted(read_rows(tmp_path), key=lambda row: row["dropout_prob"])
    assert resumed == rows  # the finished trial was kept, not re-run (same numbers), the failed one too


def test_resume_without_an_experiment_is_a_clear_error(tmp_path, tiny_data_path, capsys):
    params = write(tmp_path, "dropout_prob choice [0.1]\n")
    assert run_hyper.main(search_args(tmp_path, tiny_data_path, params, "--resume")) == 2
    assert "--resume: no experiment to resume" in capsys.readouterr().err


def test_malformed_file_stops_before_ray(tmp_path, tiny_data_path, capsys):
    params = write(tmp_path, "dropout_prob choice 0.1\n")
    assert run_hyper.main(search_args(tmp_path, tiny_data_path, params)) == 2
    assert "x.hyper:1: choice needs a non-empty Python list" in capsys.readouterr().err
    assert not (tmp_path / "ray").exists()
