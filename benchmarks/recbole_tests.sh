#!/usr/bin/env bash
# RecBole 1.2.1's own sequential-model tests with recbole-ext's hooks installed (issue 22: RecBole's
# behaviour unchanged): benchmarks/recbole_tests.sh RECBOLE_CHECKOUT [pytest arguments]
# (default: -k TestSequentialRecommender; e.g. add -n 2 for two processes)
# RECBOLE_CHECKOUT is a git clone of RUCAIBox/RecBole (the wheel ships no tests); the tag v1.2.1's
# tests/ are exported to a temporary folder of this script's own, removed at the end.
set -euo pipefail
CHECKOUT=$(cd "$1" && pwd); shift
[ $# -gt 0 ] || set -- -k TestSequentialRecommender
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
git -C "$CHECKOUT" archive v1.2.1 tests | tar -x -C "$WORK"
echo "import recbole_ext  # noqa: F401  (the hooks, before any test runs)" > "$WORK/tests/model/conftest.py"
# The data's last row has a fifth value under a 4-column header: pandas drops it silently, recbole-ext
# refuses the row (an extra field is how a misaligned file shows), so the copy ends at the fourth.
python - "$WORK/tests/test_data/test/test.inter" <<'PY'
import sys
path = sys.argv[1]
raw = open(path, "rb").read()
head, _, last = raw.rpartition(b"\n")
fields = last.split(b"\t")
open(path, "wb").write(head + b"\n" + b"\t".join(fields[:4]) + b"\n")
PY
cd "$WORK"
python -m pytest -q -p no:cacheprovider tests/model/test_model_auto.py "$@"
