"""Bad input through recbole-ext's paths and RecBole's own: no value runs code, a misspelt key is
named, numbers out of range and broken checkpoints are one clear error, and a command ends with
that error as its last line on stderr and exit code 2."""

import subprocess
import sys
import warnings

import pytest
import torch
from recbole.config import Config
from recbole.quick_start import load_data_and_model

import recbole_ext
from recbole_ext import benchmark, hyper, keys
from recbole_ext.cli import EXIT_BAD_INPUT
from recbole_ext.run import main as run_main

CODE = "__import__('pathlib').Path('{marker}').touch()"


def _config(tiny_config, **given):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", keys.UnknownKeyWarning)
        return Config(model="RNNCCE", dataset="ml-tiny", config_dict={**tiny_config, **given})


# ---------------------------------------------------------------- no input runs code


@pytest.mark.parametrize(("text", "value"), [
    ("0.01", 0.01), ("64", 64), ("True", True), ("false", False), ("None", None), ("[1, 2]", [1, 2]),
    ("{'inter': ['user_id']}", {"inter": ["user_id"]}), ("LSTM", "LSTM"), ("1e-3", 1e-3),
    ("__import__('os').getcwd()", "__import__('os').getcwd()"), ("[x for x in ()]", "[x for x in ()]"),
])
def test_values_are_literals_or_kept_as_strings(text, value):
    assert keys.literal_value(text) == value


def test_recboles_own_config_reads_command_line_values_as_literals(tiny_config, tmp_path, monkeypatch):
    marker = tmp_path / "ran"
    monkeypatch.setattr("sys.argv", ["x.py", f"--foo={CODE.format(marker=marker)}", "--learning_rate=0.5"])
    config = _config(tiny_config)
    assert not marker.exists()
    assert config["foo"] == CODE.format(marker=marker) and config["learning_rate"] == 0.5


def test_config_dict_strings_are_not_run(tiny_config, tmp_path):
    marker = tmp_path / "ran"
    config = _config(tiny_config, foo=CODE.format(marker=marker), epochs="3")
    assert not marker.exists() and config["epochs"] == 3


def test_run_command_value_is_not_run(tiny_config, tmp_path, capsys):
    marker = tmp_path / "ran"
    code = run_main(["--model=RNNCCE", "--dataset=ml-tiny", f"--data_path={tiny_config['data_path']}",
                     f"--foo={CODE.format(marker=marker)}", "--epochs=0"])
    assert code == EXIT_BAD_INPUT and not marker.exists()


def test_run_hyper_json_overrides_are_read_as_literals(tmp_path):
    marker = tmp_path / "ran"
    settings = {"overrides": {"epochs": "2", "foo": CODE.format(marker=marker)}}
    assert hyper.config_dict(settings["overrides"]) == {"epochs": 2, "foo": CODE.format(marker=marker)}
    assert not marker.exists()


def test_benchmark_models_values_are_literals(tmp_path):
    marker = tmp_path / "ran"
    runs = benchmark.parse_runs(f"a=RNNCCE:hidden_size=8:foo={CODE.format(marker=marker)}")
    assert runs["a"][1] == {"hidden_size": 8, "foo": CODE.format(marker=marker)} and not marker.exists()


# ---------------------------------------------------------------- unknown keys


def test_a_misspelt_key_warns_with_the_closest_known_key(tiny_config):
    with pytest.warns(keys.UnknownKeyWarning, match=r"hiden_size: not a config key of RNNCCE on ml-tiny "
                      r"\(given in config_dict.*did you mean 'hidden_size'\?"):
        config = Config(model="RNNCCE", dataset="ml-tiny", config_dict={**tiny_config, "hiden_size": 8})
    assert config["hidden_size"] == 100


def test_keys_of_every_layer_are_known(tiny_config, tmp_path):
    user_file = tmp_path / "user.yaml"
    user_file.write_text("weight_tying: False\nMAX_ITEM_LIST_LENGTH: 20\nstrict_keys: True\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error", keys.UnknownKeyWarning)
        # RecBole's overall.yaml and dataset keys, the plugin's base and model YAMLs, recbole-ext's own
        Config(model="RNNCCE", dataset="ml-tiny", config_file_list=[str(user_file)],
               config_dict={**tiny_config, "learning_rate": 0.01, "n_sample": 16, "rnn_type": "GRU", "nproc": 1})


def test_strict_keys_makes_an_unknown_key_an_error(tiny_config):
    with pytest.raises(recbole_ext.ConfigError, match=r"hiden_size: not a config key .*did you mean 'hidden_size'\? "
                       r"\(strict_keys: True\)"):
        Config(model="RNNCCE", dataset="ml-tiny", config_dict={**tiny_config, "hiden_size": 8, "strict_keys": True})


def test_hyper_refuses_an_unknown_override_before_ray_starts(tmp_path, tiny_data_path, capsys):
    params = tmp_path / "x.hyper"
    params.write_text("dropout_prob choice [0.1]\n")
    code = hyper.main(["--model=RNNCCE", "--dataset=ml-tiny", f"--params_file={params}", f"--data_path={tiny_data_path}",
                       f"--storage_path={tmp_path / 'ray'}", "--hiden_size=8"])
    assert code == EXIT_BAD_INPUT
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(
        "hyper: error: hiden_size: not a config key of RNNCCE on ml-tiny")
    assert not (tmp_path / "ray").exists()


def test_loguniform_bounds_beyond_a_float_are_refused_before_ray(tmp_path):
    params = tmp_path / "x.hyper"
    params.write_text("learning_rate loguniform 800,900\n")
    with pytest.raises(hyper.HyperFileError, match=r"x.hyper:1: loguniform bounds are exponents .*e\^900 is out of "
                       r"range; use bounds within ±709"):
        hyper.parse_hyper_file(params)


# ---------------------------------------------------------------- numbers in range


@pytest.mark.parametrize(("key", "value", "message"), [
    ("MAX_ITEM_LIST_LENGTH", 0, "MAX_ITEM_LIST_LENGTH: 0 is not allowed; use an integer >= 1"),
    ("MAX_ITEM_LIST_LENGTH", -3, "MAX_ITEM_LIST_LENGTH: -3 is not allowed; use an integer >= 1"),
    ("epochs", 0, "epochs: 0 is not allowed; use an integer >= 1"),
    ("train_batch_size", 0, "train_batch_size: 0 is not allowed; use an integer >= 1"),
    ("eval_batch_size", 2.5, "eval_batch_size: 2.5 is not allowed; use an integer >= 1"),
    ("learning_rate", -0.1, r"learning_rate: -0.1 is not allowed; use a number > 0$"),
    ("learning_rate", 0, r"learning_rate: 0 is not allowed; use a number > 0$"),
    ("weight_decay", -1.0, r"weight_decay: -1.0 is not allowed; use a number >= 0$"),
    ("topk", [0], r"topk: \[0\] is not allowed; use an integer >= 1 or a list of them"),
    ("stopping_step", 0, "stopping_step: 0 is not allowed; use an integer >= 1"),
])
def test_numeric_keys_out_of_range_are_one_clear_error(tiny_config, key, value, message):
    with pytest.raises(recbole_ext.ConfigError, match=message):
        _config(tiny_config, **{key: value})


def test_nproc_below_one_is_refused(capsys):
    assert run_main(["--model=RNNCCE", "--nproc=0"]) == EXIT_BAD_INPUT
    assert capsys.readouterr().err.strip().splitlines() == [
        "run: error: --nproc: 0 is not allowed; use an integer >= 1"]


# ---------------------------------------------------------------- checkpoints


@pytest.mark.parametrize(("content", "message"), [
    (None, "no such checkpoint file"),
    (b"not a checkpoint", "is not a PyTorch checkpoint: it is truncated or was not written by torch.save"),
    ("truncated", "is not a PyTorch checkpoint: it is truncated or was not written by torch.save"),
    ("other", r"is not a RecBole checkpoint: it holds no 'config' or 'state_dict'"),
])
def test_a_broken_checkpoint_says_what_is_wrong(tmp_path, content, message):
    path = tmp_path / "model.pth"
    if content in ("truncated", "other"):
        torch.save({"weights": torch.zeros(100)}, path)
        if content == "truncated":
            path.write_bytes(path.read_bytes()[:200])
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(recbole_ext.CheckpointError, match=message):
        load_data_and_model(str(path))


# ---------------------------------------------------------------- the error is the last line


def _command(*args, cwd):
    return subprocess.run([sys.executable, "-m", "recbole_ext", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


def test_a_model_key_error_ends_stderr_alone_without_recboles_config_dump(tiny_data_path, tmp_path):
    done = _command("run", "--model=RNNCCE", "--dataset=ml-tiny", f"--data_path={tiny_data_path}",
                    "--load_col={'inter': ['user_id', 'item_id', 'timestamp']}", "--weight_tying=maybe",
                    "--hiden_size=8", cwd=tmp_path)
    assert done.returncode == EXIT_BAD_INPUT
    lines = done.stderr.strip().splitlines()
    assert lines[-1] == ("python -m recbole_ext run: error: weight_tying: 'maybe' is not allowed; "
                         "use true or false")
    assert any("warning: hiden_size: not a config key" in line and "'hidden_size'" in line for line in lines)
    assert "Traceback" not in done.stderr and "General Hyper Parameters" not in done.stderr
    # RecBole's log file still holds the whole dump
    (log,) = (tmp_path / "log" / "RNNCCE").glob("*.log")
    assert "General Hyper Parameters" in log.read_text()


def test_unknown_command_is_one_line(tmp_path):
    done = _command("train", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == "recbole_ext: error: unknown command 'train'; use one of run, hyper, benchmark"


def test_benchmark_refuses_to_overwrite_earlier_results(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.csv").write_text("label,model,seed,status,epochs,seconds,error\n")
    sibling = out / "notes.txt"
    sibling.write_text("mine")
    assert benchmark.main(["--models=RNNCCE", f"--out={out}"]) == EXIT_BAD_INPUT
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"benchmark: error: --out: {out / 'results.csv'} holds an earlier benchmark's results; "
        "add --overwrite to replace them or choose another --out")
    assert (out / "results.csv").read_text().startswith("label,") and sibling.read_text() == "mine"


# ---------------------------------------------------------------- round 3: names, files, resume


@pytest.mark.parametrize("flag", ["--dataset=", "--model=", "--dataset= "])
def test_an_empty_name_is_one_line(flag, capsys):
    name = flag[2:].split("=")[0]
    assert run_main([flag]) == EXIT_BAD_INPUT
    default = "ml-100k" if name == "dataset" else "RNNCCE"
    expected = f"--{name}: {flag.split('=', 1)[1]!r} is empty; give a name (default: {default})"
    assert capsys.readouterr().err.splitlines() == [f"run: error: {expected}"]
    if name == "dataset":
        assert benchmark.main(["--models=RNNCCE", flag]) == EXIT_BAD_INPUT
        assert capsys.readouterr().err.splitlines() == [f"benchmark: error: {expected}"]
    with pytest.raises(SystemExit) as exited:
        hyper.parse_args([flag, "--params_file=x.hyper"])
    assert exited.value.code == EXIT_BAD_INPUT
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"hyper: error: --{name}: {flag.split('=', 1)[1]!r} is empty; give a name")


@pytest.mark.parametrize(("content", "message"), [
    (b"epochs: 2\nname: caf\xe9\n", "{path}, line 2: bytes b'\\xe9' are not UTF-8; save the file as UTF-8"),
    (b"epochs: [1, 2\n", "{path}, line 2: not YAML (expected ',' or ']', but got '<stream end>'); write one "
                         "'key: value' per line"),
    (b"- epochs\n- 2\n", "{path} holds a YAML list, not keys; write one 'key: value' per line"),
])
def test_a_config_file_that_is_not_utf8_yaml_keys_is_named(tmp_path, capsys, content, message):
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    assert run_main([f"--config_files={path}"]) == EXIT_BAD_INPUT
    assert capsys.readouterr().err.splitlines() == [f"run: error: --config_files: {message.format(path=path)}"]
    params = tmp_path / "x.hyper"
    params.write_text("dropout_prob choice [0.1]\n")
    assert hyper.main([f"--params_file={params}", f"--config_files={path}", f"--storage_path={tmp_path / 'ray'}"]) \
        == EXIT_BAD_INPUT
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"hyper: error: --config_files: {message.format(path=path)}")


def test_a_hyper_file_that_is_not_utf8_is_named(tmp_path):
    params = tmp_path / "x.hyper"
    params.write_bytes(b"dropout_prob choice [0.1]\n# caf\xe9\n")
    with pytest.raises(hyper.HyperFileError) as error:
        hyper.parse_hyper_file(params)
    assert str(error.value) == f"{params}:2: bytes b'\\xe9' are not UTF-8; save the hyper file as UTF-8"


@pytest.mark.parametrize(("damage", "message"), [
    (lambda text: text[: len(text) // 2], "not JSON (Unterminated string starting at"),
    (lambda text: "[]\n", "it holds no 'model', 'dataset', "),
    (lambda text: text.replace('"choice"', '"grid"'), "its 'space' is not a search space"),
])
def test_a_damaged_run_hyper_json_is_named_on_resume(tmp_path, capsys, damage, message):
    experiment = tmp_path / "ray" / "search"
    hyper.save_settings(experiment, {
        "model": "RNNCCE", "dataset": "ml-tiny", "config_files": [], "params_file": "x.hyper",
        "space": {"dropout_prob": ("choice", [0.1])}, "overrides": {}, "num_samples": None, "scheduler": "asha",
        "max_concurrent": None, "cpus_per_trial": 1, "gpus_per_trial": 0, "valid_metric": "MRR@10", "bigger": True,
        "epochs": 1})
    settings = experiment / "run_hyper.json"
    settings.write_text(damage(settings.read_text()))
    assert hyper.main([f"--storage_path={tmp_path / 'ray'}", "--name=search", "--resume"]) == EXIT_BAD_INPUT
    line = capsys.readouterr().err.splitlines()[-1]
    assert line.startswith(f"hyper: error: --resume: {settings} is damaged: {message}")
    assert line.endswith("; it is not what `hyper` wrote, so the search cannot be resumed (start a new one with "
                         "another --name)")


@pytest.mark.parametrize(("results", "message"), [
    ("a,b\n1,2\n", "{path} has no column 'label', 'model', 'seed', 'status', 'epochs', 'seconds' (its columns: "
                   "['a', 'b']); give the results.csv (or its folder) that benchmark.py wrote"),
    ("label,model,seed,status,epochs,seconds,test/ndcg@10,error\nx,RNNCCE,1,ok,two,1.0,0.5,\n",
     "{path}, line 2: invalid literal for int() with base 10: 'two'; not a value benchmark.py writes"),
    ("label,model,seed,status,epochs,seconds,error\nx,RNNCCE,1,ok,2\n",
     "{path}, line 2: the row does not hold one value for each of the header's 7 columns"),
    ("label,model,seed,status,epochs,seconds,error\n", "{path} holds no runs (a header only)"),
    (b"label,model\n\xff\n", "{path} is not UTF-8, so not a file benchmark.py wrote"),
])
def test_from_results_names_the_file_and_what_is_wrong(tmp_path, capsys, results, message):
    path = tmp_path / "earlier" / "results.csv"
    path.parent.mkdir()
    path.write_bytes(results if isinstance(results, bytes) else results.encode())
    assert benchmark.main([f"--from_results={path.parent}", f"--out={tmp_path / 'out'}"]) == EXIT_BAD_INPUT
    assert capsys.readouterr().err.splitlines() == [f"benchmark: error: --from_results: {message.format(path=path)}"]
    assert not (tmp_path / "out").exists()


def test_resume_refuses_a_best_checkpoint_and_flags_that_would_change_the_run(tiny_config, tmp_path, capsys):
    from tests.conftest import quick_test

    quick_test(tiny_config, model="RNNCCE", embedding_size=8, hidden_size=8,
               load_col={"inter": ["user_id", "item_id", "timestamp"]})
    (best,) = (tmp_path / "saved").glob("RNNCCE-*.pth")
    assert run_main([f"--resume={best}"]) == EXIT_BAD_INPUT
    resume_file = str(best).replace(".pth", ".resume.pth")
    assert capsys.readouterr().err.splitlines() == [
        f"run: error: --resume: {best} is a RecBole checkpoint without the state to continue training (RecBole saves "
        "the best epoch's weights only, not its random states and early-stopping state); a run saves that state "
        f"before every epoch after the first, as {resume_file.rsplit('/', 1)[1]}"]
    assert run_main([f"--resume={best}", "--model=RNNCCE", "--epochs=3", "--nproc=2"]) == EXIT_BAD_INPUT
    assert capsys.readouterr().err.splitlines() == [
        f"run: error: --resume continues the run saved in {best} with that run's config, in one process; drop "
        "--epochs, --model, --nproc"]
    assert run_main([f"--resume={tmp_path / 'nothing.pth'}"]) == EXIT_BAD_INPUT
    assert capsys.readouterr().err.splitlines() == [f"run: error: {tmp_path / 'nothing.pth'}: no such checkpoint file"]
