"""docs/adding_a_model.md, run as written: its files in an empty folder, then its command."""

import re
import subprocess
import sys
from pathlib import Path

PAGE = Path(__file__).resolve().parents[1] / "docs" / "adding_a_model.md"


def page_files_and_command():
    text = PAGE.read_text(encoding="utf-8")
    files = dict((name, body) for name, body in re.findall(r"```\w+ (\S+)\n(.*?)```", text, flags=re.S))
    (command,) = re.findall(r"```bash\n(.*?)\n```", text, flags=re.S)
    return files, command


def test_the_page_names_one_model_file_one_yaml_and_a_script():
    files, command = page_files_and_command()
    assert sorted(files) == ["TiedGRU.yaml", "tiedgru.py", "train_tiedgru.py"]
    assert command == "python train_tiedgru.py"


def test_the_worked_example_trains_and_tests_on_ml_100k(tmp_path):
    files, command = page_files_and_command()
    for name, body in files.items():
        (tmp_path / name).write_text(body, encoding="utf-8")
    program, script = command.split()
    done = subprocess.run([sys.executable, script], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("test result:")]
    assert "'ndcg@10': " in line
    ndcg = float(re.search(r"'ndcg@10': ([0-9.]+)", line).group(1))
    assert 0.0 < ndcg <= 1.0
