"""Faults that lose nothing, for ``hyper`` (killed before Ray starts, mid-search, part-way through its
table; its table on a full disk) and for writers at once: two ``run``s and a ``hyper`` search in one
folder, two writers of one file. Each command runs in a child process (tests/fault_child.py);
see tests/test_faults.py for the other commands."""

import os

import pytest
import torch

from recbole_ext import checkpoints, files
from recbole_ext.errors import OutputError
from tests.fault_checks import KILLED, check_csv, check_outputs, child, finish, last_line, leftovers, load_checkpoint, start
from tests.test_faults import run_args

OURS = ("results.csv", "results.md", "run_hyper.json")  # the experiment folder's other files are Ray's


def search_args(tmp_path, data_path, *extra):
    params = tmp_path / "space.hyper"
    params.write_text("hidden_size choice [4,8]\n")
    return ["--model=RNNCCE", "--dataset=ml-tiny", f"--params_file={params}", f"--data_path={data_path}",
            "--storage_path=ray", "--name=search", "--epochs=2", "--state=ERROR", "--embedding_size=8",
            "--load_col={'inter':['user_id','item_id','timestamp']}", "--num_cpus=1", "--max_concurrent=1",
            "--scheduler=fifo", *extra]


RESUME = ["--storage_path=ray", "--name=search", "--resume"]


def test_a_search_killed_at_every_stage_resumes_to_its_whole_table(tmp_path, tiny_data_path):
    args = search_args(tmp_path, tiny_data_path)
    experiment = tmp_path / "ray" / "search"

    # killed with run_hyper.json written but not yet renamed, before Ray starts: the folder holds
    # only that staging file, so the same command starts the search anew (and removes it)
    code, _, _ = child("hyper", *args, cwd=tmp_path, env={"FAULT_KILL": "rename:1:run_hyper.json"})
    assert code == KILLED
    assert check_outputs(experiment, OURS) == [] and len(leftovers(tmp_path)) == 1

    # killed by the search's second trial result
    code, _, _ = child("hyper", *args, cwd=tmp_path, env={"FAULT_KILL": "result:2"})
    assert code == KILLED
    assert check_outputs(experiment, OURS) == ["run_hyper.json"] and leftovers(tmp_path) == []

    # resumed to the end, then a full disk as the table is written: one error line, no table
    code, _, err = child("hyper", *RESUME, cwd=tmp_path, env={"FAULT_FSIZE": "64:1:results.csv"})
    assert code == 1
    assert last_line(err) == (f"python -m recbole_ext hyper: error: cannot write {experiment / 'results.csv'}: "
                              "File too large; nothing was written")
    assert check_outputs(experiment, OURS) == ["run_hyper.json"] and leftovers(tmp_path) == []

    # killed part-way through results.md: results.csv is whole, results.md absent
    code, _, _ = child("hyper", *RESUME, cwd=tmp_path, env={"FAULT_KILL": "write:1:results.md"})
    assert code == KILLED
    assert check_outputs(experiment, OURS) == ["results.csv", "run_hyper.json"] and len(leftovers(tmp_path)) == 1

    code, out, err = child("hyper", *RESUME, cwd=tmp_path)
    assert code == 0, err
    assert "2 trials (2 finished)" in out
    assert check_outputs(experiment, OURS) == ["results.csv", "results.md", "run_hyper.json"]
    rows = check_csv(experiment / "results.csv")
    assert sorted(row[1] for row in rows[1:]) == ["4", "8"] and leftovers(tmp_path) == []


def test_two_runs_and_a_search_at_once_keep_their_own_files(tmp_path, tiny_data_path):
    # one folder: saved/, log/ and ray/ shared; started together, the runs name their checkpoints in
    # the same second
    children = [start("run", *[arg.replace("--hidden_size=8", f"--hidden_size={size}")
                               for arg in run_args(tiny_data_path, "--epochs=2")], cwd=tmp_path)
                for size in (4, 8)]
    children.append(start("hyper", *search_args(tmp_path, tiny_data_path, "--epochs=1"), cwd=tmp_path))
    for process in children:
        code, _, err = finish(process)
        assert code == 0, err
    saved = sorted((tmp_path / "saved").iterdir())
    assert len(saved) == 2 and all(path.suffix == ".pth" for path in saved)
    assert sorted(load_checkpoint(path)["config"]["hidden_size"] for path in saved) == [4, 8]
    assert check_outputs(tmp_path / "ray" / "search", OURS) == ["results.csv", "results.md", "run_hyper.json"]
    assert leftovers(tmp_path) == []


# ---------------------------------------------------------------- names no other writer uses


def test_checkpoints_named_in_the_same_second_are_two_files(tmp_path, tiny_config, monkeypatch):
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer

    monkeypatch.setattr("recbole.trainer.trainer.get_local_time", lambda: "Jan-01-2025_00-00-00")
    config = Config(model="BPR", dataset="ml-tiny", config_dict=tiny_config)
    train_data, _, _ = data_preparation(config, create_dataset(config))
    trainer_class = get_trainer(config["MODEL_TYPE"], config["model"])
    name = f"{tiny_config['checkpoint_dir']}/BPR-Jan-01-2025_00-00-00-{os.getpid()}"
    os.makedirs(tiny_config["checkpoint_dir"])
    open(f"{name}-3.pth", "wb").close()  # a file from earlier keeps its name
    trainers = [trainer_class(config, get_model("BPR")(config, train_data._dataset)) for _ in range(3)]
    assert [t.saved_model_file for t in trainers] == [f"{name}.pth", f"{name}-2.pth", f"{name}-4.pth"]
    assert checkpoints.resume_file_of(f"{name}.pth") == f"{name}.resume.pth"


def test_writers_of_one_file_at_once_each_write_it_whole(tmp_path):
    target = tmp_path / "table.csv"
    with files.staged(target) as first, files.staged(target) as second:
        first.write("a\n1\n")
        second.write("a\n2\n")
        staging = sorted(os.listdir(tmp_path))
        assert len(staging) == 2 and all(files.writer_pid(name) == os.getpid() for name in staging)
    assert target.read_text() == "a\n1\n"  # each rename is whole: the last one wins
    assert os.listdir(tmp_path) == ["table.csv"]


def test_only_the_staging_files_of_ended_writers_are_removed(tmp_path):
    ended = _ended_pid()
    stale = tmp_path / f".table.csv.{ended}-0123abcd.partial"
    running = tmp_path / f".table.csv.{os.getpid()}-0123abcd.partial"
    look_alike = tmp_path / f".table.csv.{ended}-notours.partial"
    for path in (stale, running, look_alike, tmp_path / "table.csv"):
        path.write_text("x")
    assert files.remove_stale_staging(tmp_path) == [stale]
    assert sorted(os.listdir(tmp_path)) == sorted([running.name, look_alike.name, "table.csv"])


def test_a_write_that_fails_keeps_the_earlier_file(tmp_path):
    target = tmp_path / "model.pth"
    torch.save({"x": torch.ones(2)}, target)
    with pytest.raises(OutputError, match=f"^cannot write {target}: No space left on device; the earlier file is kept$"):
        with files.staged(target, "wb") as f:
            f.write(b"half")
            raise OSError(28, "No space left on device")
    assert torch.equal(torch.load(target, weights_only=True)["x"], torch.ones(2))
    assert os.listdir(tmp_path) == ["model.pth"]


def _ended_pid():
    """The id of a process that has ended (a child started and waited for)."""
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid
