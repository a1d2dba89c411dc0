"""The hyper command: RecBole's hyper-file syntax, Ray Tune searches, failed trials, interrupt and resume."""

import csv
import math
import os
import signal
import sys
from pathlib import Path

import pytest

import recbole_ext
from recbole_ext import hyper
from recbole_ext.cli import EXIT_BAD_INPUT

REPO = Path(__file__).resolve().parent.parent


def shipped_hyper_files():
    """{model: hyper file stem} for every file in hyper/, each named after its model in lower case."""
    models = recbole_ext.list_models() + recbole_ext.registry.recbole_sequential_models()
    by_stem = {name.lower(): name for name in models}
    files = {path.stem: path for path in (REPO / "hyper").glob("*.hyper")}
    unnamed = sorted(set(files) - set(by_stem))
    assert not unnamed, f"hyper files not named after a model: {unnamed}"
    return {by_stem[stem]: stem for stem in files}


HYPER_FILES = shipped_hyper_files()
SMALL_MODEL = {"embedding_size": 8, "hidden_size": 8}


def write(tmp_path, text, name="x.hyper"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


# ---------------------------------------------------------------- parser


def test_every_type_parses_with_comments_and_blank_lines(tmp_path):
    path = write(tmp_path, (
        "# a comment line\n\n"
        "learning_rate loguniform -8,0   # log-space bounds\n"
        "dropout_prob choice [0.0,0.1, 0.2]\n"
        "   \n"
        "kl_weight uniform 0,1\n"
        "embedding_size quniform 32,128,32\n"
        "rnn_type choice ['LSTM','GRU']\n"
        "weight_tying choice [True,False]\n"
    ))
    assert hyper.parse_hyper_file(path) == {
        "learning_rate": ("loguniform", (-8.0, 0.0)),
        "dropout_prob": ("choice", [0.0, 0.1, 0.2]),
        "kl_weight": ("uniform", (0.0, 1.0)),
        "embedding_size": ("quniform", (32.0, 128.0, 32.0)),
        "rnn_type": ("choice", ["LSTM", "GRU"]),
        "weight_tying": ("choice", [True, False]),
    }


def test_loguniform_bounds_are_exponents():
    domain = hyper.to_tune_space({"learning_rate": ("loguniform", (-8.0, 0.0))}, grid=False)["learning_rate"]
    assert domain.lower == pytest.approx(math.exp(-8)) and domain.upper == pytest.approx(1.0)
    samples = [domain.sample() for _ in range(200)]
    assert all(math.exp(-8) <= s <= 1.0 for s in samples)
    assert min(samples) < math.exp(-4) < max(samples)  # log-uniform: half the mass below e^-4


def test_uniform_and_quniform_samples():
    space = hyper.to_tune_space({
        "embedding_size": ("quniform", (32.0, 128.0, 32.0)),
        "dwell_threshold": ("quniform", (0.5, 2.0, 0.5)),
        "kl_weight": ("uniform", (0.25, 0.5)),
    }, grid=False)
    sizes = {space["embedding_size"].sample() for _ in range(200)}
    assert sizes == {32, 64, 96, 128} and all(type(s) is int for s in sizes)  # nn.Embedding needs ints
    thresholds = {space["dwell_threshold"].sample() for _ in range(200)}
    assert thresholds <= {0.5, 1.0, 1.5, 2.0} and all(isinstance(t, float) for t in thresholds)
    assert all(0.25 <= space["kl_weight"].sample() <= 0.5 for _ in range(100))


def test_all_choice_lines_make_a_grid_otherwise_samples():
    space = {"a": ("choice", [1, 2, 3]), "b": ("choice", ["x", "y"])}
    assert hyper.is_grid(space) and hyper.grid_size(space) == 6
    assert hyper.to_tune_space(space, grid=True)["a"] == {"grid_search": [1, 2, 3]}
    assert hyper.to_tune_space(space, grid=False)["a"].categories == [1, 2, 3]
    assert not hyper.is_grid({**space, "c": ("uniform", (0.0, 1.0))})


@pytest.mark.parametrize(
    "line, message",
    [
        ("learning_rate 0.01", r"x.hyper:3: 'learning_rate 0.01' is not a hyper line"),
        ("learning_rate normal 0,1", r"x.hyper:3: type 'normal' is not allowed"),
        ("dropout_prob choice 0.1", r"x.hyper:3: choice needs a non-empty Python list"),
        ("dropout_prob choice []", r"x.hyper:3: choice needs a non-empty Python list"),
        ("dropout_prob choice [0.1,", r"x.hyper:3: choice needs a non-empty Python list"),
        ("learning_rate uniform 1", r"x.hyper:3: uniform needs low,high"),
        ("learning_rate uniform a,b", r"x.hyper:3: uniform needs low,high"),
        ("learning_rate loguniform 0,-8", r"x.hyper:3: loguniform needs low,high with low <= high"),
        ("learning_rate loguniform -8,nan", r"x.hyper:3: loguniform needs low,high"),
        ("hidden_size quniform 8,64", r"x.hyper:3: quniform needs low,high,q"),
        ("hidden_size quniform 8,64,0", r"x.hyper:3: quniform needs a step q > 0"),
        ("num_layers choice [2]  # twice", r"x.hyper:3: 'num_layers' is given twice"),
    ],
)
def test_malformed_lines_name_file_line_and_forms(tmp_path, line, message):
    path = write(tmp_path, f"# header\nnum_layers choice [1]\n{line}\n")
    with pytest.raises(hyper.HyperFileError, match=message) as error:
        hyper.parse_hyper_file(path)
    if "twice" not in line:
        assert hyper.FORMS in str(error.value)


def test_file_without_parameters_is_refused(tmp_path):
    with pytest.raises(hyper.HyperFileError, match="no parameters"):
        hyper.parse_hyper_file(write(tmp_path, "# only a comment\n\n"))


# ---------------------------------------------------------------- names and shipped files


@pytest.mark.parametrize("model", sorted(HYPER_FILES))
def test_shipped_hyper_files_parse_and_name_config_keys(model, tiny_config):
    space = hyper.parse_hyper_file(REPO / "hyper" / f"{HYPER_FILES[model]}.hyper")
    config = hyper.check_parameter_names(space, model, "ml-tiny", None, tiny_config)
    assert all(name in config.final_config_dict for name in space)


def test_unknown_parameter_is_refused(tmp_path, tiny_config):
    path = write(tmp_path, "learning_rate choice [0.01]\nlearnin_rate choice [0.1]\n")
    with pytest.raises(recbole_ext.ConfigError, match="'learnin_rate' is not a config key of RNNCCE"):
        hyper.check_parameter_names(hyper.parse_hyper_file(path), "RNNCCE", "ml-tiny", None, tiny_config)


def test_a_plugin_key_is_no_key_of_a_builtin_model(tiny_config):
    with pytest.raises(recbole_ext.ConfigError, match="'weight_tying' is not a config key of GRU4Rec"):
        hyper.check_parameter_names({"weight_tying": ("choice", [True])}, "GRU4Rec", "ml-tiny", None, tiny_config)


@pytest.mark.parametrize("model", sorted(HYPER_FILES))
def test_a_sample_of_each_shipped_file_trains(model, tiny_config):
    """One seeded draw from each shipped space trains and tests through the trial's own path."""
    space = hyper.to_tune_space(hyper.parse_hyper_file(REPO / "hyper" / f"{HYPER_FILES[model]}.hyper"), grid=False)
    seed = sorted(HYPER_FILES).index(model)
    params = {name: domain.sample(random_state=seed) for name, domain in space.items()}
    config = {**tiny_config, "MAX_ITEM_LIST_LENGTH": 10}  # RecBole's prefix samples: 5x less work than 50
    if model == "GRU4RecF":
        config["load_col"] = {**config["load_col"], "item": ["item_id", "class"]}
    reports = []
    result = hyper.run_trial(params, model, "ml-tiny", None, config, reports.append)
    assert [r["epoch"] for r in reports] == [1, 1], params
    metric = "ndcg@10" if "ndcg@10" in result["test_result"] else "rmse"  # ranking or rating models
    assert set(reports[-1]) >= {"valid_score", f"test/{metric}", f"best_valid/{metric}"}
    assert reports[-1][f"test/{metric}"] == pytest.approx(result["test_result"][metric])


def test_trial_gets_rays_gpus_and_no_command_line(monkeypatch):
    seen = []

    def fake_train_and_test(model, dataset, config_files, config, on_epoch):
        seen.append((config["gpu_id"], list(sys.argv)))
        on_epoch(1, 0.5, {"mrr@10": 0.5}, 1.0)
        return {"epochs": 1, "best_valid_score": 0.5, "best_valid_result": {"mrr@10": 0.5},
                "test_result": {"mrr@10": 0.25}}

    monkeypatch.setattr("recbole_ext.training.train_and_test", fake_train_and_test)
    monkeypatch.setattr("sys.argv", ["default_worker.py", "--node-ip-address=192.0.2.2"])
    reports = []
    hyper.run_trial({"dropout_prob": 0.1}, "RNNCCE", "ml-tiny", None, {}, reports.append, gpu_ids=[2, 3])
    hyper.run_trial({"dropout_prob": 0.1}, "RNNCCE", "ml-tiny", None, {}, reports.append)
    # RecBole sets CUDA_VISIBLE_DEVICES from gpu_id: Ray's GPUs, or none (the CPU) when Ray gave none
    assert seen == [("2,3", ["default_worker.py"]), ("", ["default_worker.py"])]
    assert sys.argv == ["default_worker.py", "--node-ip-address=192.0.2.2"]
    assert reports[:2] == [
        {"epoch": 1, "valid_score": 0.5, "valid/mrr@10": 0.5},
        {"epoch": 1, "valid_score": 0.5, "best_valid/mrr@10": 0.5, "test/mrr@10": 0.25},
    ]


# ---------------------------------------------------------------- searches on a local Ray of 2 CPUs


@pytest.fixture(scope="module")
def local_ray():
    import ray

    # "local": a Ray of its own; with no address Ray joins whatever cluster
    # /tmp/ray/ray_current_cluster names (another test's, or one a CI machine left behind)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def search_args(tmp_path, tiny_data_path, params_file, *extra):
    return [
        "--model=RNNCCE", "--dataset=ml-tiny", f"--params_file={params_file}", f"--data_path={tiny_data_path}",
        f"--storage_path={tmp_path / 'ray'}", "--name=search", "--epochs=1", "--state=ERROR",
        "--embedding_size=8", "--load_col={'inter':['user_id','item_id','timestamp']}", *extra,
    ]


def read_rows(tmp_path):
    with open(tmp_path / "ray" / "search" / "results.csv") as f:
        return sorted(csv.DictReader(f), key=lambda row: row["trial_id"])


def trial_results(tmp_path):
    """Each trial folder's result.json: the reports Ray logged, rewritten if a trial runs again."""
    return {p.parent.name: p.read_text() for p in (tmp_path / "ray" / "search").glob("*/result.json")}


def test_search_table_best_config_failed_trial_and_resume(local_ray, tmp_path, tiny_data_path, capsys):
    params = write(tmp_path, "hidden_size choice [4,32,0]\n")  # 0 makes RNNCCE raise inside its trial
    assert hyper.main(search_args(tmp_path, tiny_data_path, params, "--scheduler=fifo")) == 0
    rows = read_rows(tmp_path)
    assert [row["hidden_size"] for row in rows] == ["4", "32", "0"]
    assert [row["status"] for row in rows] == ["finished", "finished", "failed"]
    assert [row["epochs"] for row in rows] == ["1", "1", "0"]
    assert "hidden_size: 0 is not allowed; use an integer >= 1" in rows[2]["error"]
    assert rows[2]["best_valid_score"] == "" and rows[2]["test/ndcg@10"] == ""
    for row in rows[:2]:
        assert 0.0 <= float(row["test/ndcg@10"]) <= 1.0 and 0.0 <= float(row["best_valid_score"]) <= 1.0
    assert rows[0]["best_valid_score"] != rows[1]["best_valid_score"]

    best = max(rows[:2], key=lambda row: float(row["best_valid_score"]))
    out = capsys.readouterr().out
    assert "3 trials (2 finished, 1 failed)" in out
    assert f"best params: {{'hidden_size': {best['hidden_size']}}}" in out
    assert f"best valid MRR@10: {float(best['best_valid_score']):.4f}" in out
    assert f"'ndcg@10': {round(float(best['test/ndcg@10']), 4)}" in out
    markdown = (tmp_path / "ray" / "search" / "results.md").read_text().splitlines()
    assert markdown[0].startswith("| trial_id | hidden_size | best_valid_score | test/") and len(markdown) == 5

    # --resume of the ended search: nothing runs again, nothing is lost
    before = trial_results(tmp_path)
    assert len(before) == 3
    assert hyper.main(search_args(tmp_path, tiny_data_path, params, "--resume")) == 0
    assert read_rows(tmp_path) == rows and trial_results(tmp_path) == before

    # --retry_failed runs only the failed trial again: it fails again, the finished ones stay as they were
    assert hyper.main(["--storage_path", str(tmp_path / "ray"), "--name=search", "--resume", "--retry_failed"]) == 0
    after = trial_results(tmp_path)
    retried = [name for name in after if after[name] != before.get(name)]
    assert retried and all("hidden_size=0" in name for name in retried)
    assert all(after[name] == text for name, text in before.items() if "hidden_size=0" not in name)
    retried_rows = read_rows(tmp_path)
    assert [row for row in retried_rows if row["hidden_size"] != "0"] == rows[:2]
    (again,) = [row for row in retried_rows if row["hidden_size"] == "0"]
    assert again["trial_id"] != rows[2]["trial_id"]  # Ray restarts an errored trial as a new one
    assert {**again, "trial_id": ""} == {**rows[2], "trial_id": ""}

    # a damaged tuner.pkl (Ray's record of the search): one line naming it, the table kept
    tuner = tmp_path / "ray" / "search" / "tuner.pkl"
    tuner.write_bytes(tuner.read_bytes()[:40])
    capsys.readouterr()
    assert hyper.main(["--storage_path", str(tmp_path / "ray"), "--name=search", "--resume"]) == EXIT_BAD_INPUT
    line = capsys.readouterr().err.splitlines()[-1]
    assert line.startswith(f"hyper: error: --resume: {tuner} cannot be read (")
    assert line.endswith("): Ray's record of the search is damaged, so it cannot be resumed (start a new one with "
                         "another --name)")
    assert read_rows(tmp_path) == retried_rows


def interrupt_when_the_second_trial_starts(pressed):
    """A Ray Tune callback that presses Ctrl-C (SIGINT to this process) from inside the search as
    soon as a trial starts after another has ended: Ray Tune's handler saves the state and stops
    there, with one trial finished and one unfinished, however fast the trials run. Ray keeps the
    callback with the experiment, so the file ``pressed`` makes it press only once."""
    from ray import tune

    class Interrupt(tune.Callback):
        def on_trial_start(self, iteration, trials, trial, **info):
            if not pressed.exists() and any(other.status == "TERMINATED" for other in trials):
                pressed.touch()
                os.kill(os.getpid(), signal.SIGINT)

    return Interrupt()


def test_interrupted_search_resumes_without_rerunning_finished_trials(local_ray, tmp_path, tiny_data_path, capsys):
    params = write(tmp_path, "hidden_size choice [4,8]\n")
    args = search_args(tmp_path, tiny_data_path, params, "--max_concurrent=1")
    assert hyper.main(args, callbacks=[interrupt_when_the_second_trial_starts(tmp_path / "pressed")]) == hyper.EXIT_INTERRUPTED
    assert "interrupted: continue with" in capsys.readouterr().out
    rows = read_rows(tmp_path)
    assert [(row["hidden_size"], row["status"]) for row in rows] == [("4", "finished"), ("8", "unfinished")]
    finished_trial = {n: text for n, text in trial_results(tmp_path).items() if "hidden_size=4" in n}

    assert hyper.main(args + ["--resume"]) == 0
    resumed = read_rows(tmp_path)
    assert resumed[0] == rows[0]  # kept as it was, not run again
    assert resumed[1]["status"] == "finished" and resumed[1]["epochs"] == "1"
    assert {n: t for n, t in trial_results(tmp_path).items() if n in finished_trial} == finished_trial


# ---------------------------------------------------------------- errors before Ray starts


def test_malformed_file_stops_before_ray(tmp_path, tiny_data_path, capsys):
    params = write(tmp_path, "dropout_prob choice 0.1\n")
    assert hyper.main(search_args(tmp_path, tiny_data_path, params)) == EXIT_BAD_INPUT
    assert "x.hyper:1: choice needs a non-empty Python list" in capsys.readouterr().err
    assert not (tmp_path / "ray").exists()


def test_unknown_name_stops_before_ray(tmp_path, tiny_data_path, capsys):
    params = write(tmp_path, "weight_tyin choice [True]\n")
    assert hyper.main(search_args(tmp_path, tiny_data_path, params)) == EXIT_BAD_INPUT
    assert "'weight_tyin' is not a config key of RNNCCE on ml-tiny" in capsys.readouterr().err
    assert not (tmp_path / "ray").exists()


def test_resume_errors(tmp_path, tiny_data_path, capsys):
    params = write(tmp_path, "dropout_prob choice [0.1]\n")
    assert hyper.main(search_args(tmp_path, tiny_data_path, params, "--resume")) == EXIT_BAD_INPUT
    assert "--resume: no experiment to resume at" in capsys.readouterr().err

    experiment = tmp_path / "ray" / "search"
    settings = {"model": "RNNCCE", "dataset": "ml-tiny", "config_files": [], "params_file": params,
                "space": hyper.parse_hyper_file(params), "overrides": {"epochs": "1"}, "num_samples": None,
                "scheduler": "asha", "max_concurrent": None, "cpus_per_trial": 1, "gpus_per_trial": 0,
                "valid_metric": "MRR@10", "bigger": True, "epochs": 1}
    hyper.save_settings(experiment, settings)
    assert hyper.load_settings(experiment) == settings
    assert hyper.main(search_args(tmp_path, tiny_data_path, params)) == EXIT_BAD_INPUT
    assert "exists; add --resume to continue it" in capsys.readouterr().err
    storage = [f"--storage_path={tmp_path / 'ray'}", "--name=search", "--resume"]
    assert hyper.main(storage + ["--model=GRU4Rec"]) == EXIT_BAD_INPUT
    assert "--resume: --model='GRU4Rec' differs from the experiment's 'RNNCCE'" in capsys.readouterr().err
    assert hyper.main(storage + ["--gpus_per_trial=1"]) == EXIT_BAD_INPUT
    assert "--resume: --gpus_per_trial=1.0 differs from the experiment's 0" in capsys.readouterr().err
    assert hyper.main(storage + ["--epochs=5"]) == EXIT_BAD_INPUT
    assert "the overrides {'epochs': '5'} differ" in capsys.readouterr().err
    Path(params).write_text("dropout_prob choice [0.2]\n")
    assert hyper.main(storage + [f"--params_file={params}"]) == EXIT_BAD_INPUT
    assert "changed since the search started" in capsys.readouterr().err


def test_tables_are_written_whole(tmp_path):
    rows = [{"trial_id": "a", "learning_rate": 5e-05, "best_valid_score": 0.08231, "status": "finished", "error": ""},
            {"trial_id": "b", "learning_rate": 0.01, "best_valid_score": None, "status": "failed", "error": "x | y"}]
    csv_path, md_path = hyper.write_tables(rows, tmp_path / "out" / "table")
    assert list(csv.DictReader(open(csv_path)))[1] == {
        "trial_id": "b", "learning_rate": "0.01", "best_valid_score": "", "status": "failed", "error": "x | y"}
    assert md_path.read_text().splitlines()[2:] == [
        "| a | 5e-05 | 0.08231 | finished |  |", "| b | 0.01 |  | failed | x \\| y |"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["table.csv", "table.md"]
