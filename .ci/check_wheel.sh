#!/usr/bin/env bash
# Wheel check: build a wheel from this checkout, install it into an empty virtual environment with
# the README's steps ("Install from a wheel"), and run the packaged commands from outside the
# checkout — one RNNCCE epoch on ml-100k and a one-trial hyper-parameter search.
#
#   .ci/check_wheel.sh              the pandas 2 lock's versions (PANDAS=3: the pandas 3 lock's)
#
# Needs `python -m recbole_ext run|hyper` (the commands inside the package). It builds and installs
# in a scratch folder it removes at the end; the checkout and its venvs are left as they are.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
PANDAS=${PANDAS:-2}
PYTHON=${PYTHON:-python3}
lock="$repo/requirements-lock-pandas$PANDAS.txt"
[ -f "$lock" ] || { echo "check_wheel.sh: no lock $lock; allowed PANDAS: 2 or 3" >&2; exit 2; }
scratch=$(mktemp -d "${TMPDIR:-/tmp}/recbole-ext-wheel.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
cd "$scratch"  # outside the checkout, so `import recbole_ext` can only find the installed wheel
unset PYTHONPATH

step() { echo "== $* ($(date -u +%H:%M:%S))"; }

step "build a wheel from $repo"
# From a copy of the working tree (tracked and untracked files, not what git ignores): pip builds in
# the source folder, and its build/ must not land in the checkout.
mkdir src
git -C "$repo" ls-files -z --cached --others --exclude-standard | (cd "$repo" && xargs -0 cp --parents -t "$scratch/src")
"$PYTHON" -m pip wheel --quiet --no-deps -w dist ./src
wheel=$(ls dist/recbole_ext-*.whl)

step "install $(basename "$wheel") into an empty venv"
"$PYTHON" -m venv env
env/bin/python -m pip install --quiet -c "$lock" "$wheel"
env/bin/python -m pip install --quiet --no-deps recbole==1.2.1
env/bin/python - "$repo" <<'PY'
import sys, recbole_ext
assert not recbole_ext.__file__.startswith(sys.argv[1]), f"imported the checkout: {recbole_ext.__file__}"
print("recbole_ext from", recbole_ext.__file__, "models:", recbole_ext.list_models())
PY

step "python -m recbole_ext run: RNNCCE, ml-100k, 1 epoch"
env/bin/python -m recbole_ext run --model=RNNCCE --dataset=ml-100k --epochs=1 --show_progress=False \
    --checkpoint_dir="$scratch/saved" | tee run.log
grep -q "^test result: .*ndcg@10" run.log
ls "$scratch"/saved/RNNCCE-*.pth >/dev/null

step "python -m recbole_ext hyper: one trial"
echo "learning_rate choice [0.001]" >one.hyper
env/bin/python -m recbole_ext hyper --model=RNNCCE --dataset=ml-100k --params_file=one.hyper --epochs=1 \
    --show_progress=False --num_cpus=2 --storage_path="$scratch/ray_results" --name=wheel-check
env/bin/python - "$scratch/ray_results/wheel-check/results.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1], encoding="utf-8")))
assert len(rows) == 1 and rows[0]["status"] in ("finished", "stopped early"), rows
print("one trial:", rows[0]["status"])
PY
step "wheel check passed"
