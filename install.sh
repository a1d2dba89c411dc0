#!/usr/bin/env bash
# Set up .venv with the whole stack: torch (CPU build where one is on disk), numpy 2, pandas 2,
# current Ray Tune, RecBole 1.2.1 without its dependency pins, and recbole_ext (editable).
set -euo pipefail
cd "$(dirname "$0")"
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade "pip>=24"
"$VENV/bin/python" -m pip install --quiet -r requirements.txt
# RecBole 1.2.1's metadata pins ray<=2.6.3, which does not import under numpy 2; its real runtime
# needs are listed in requirements.txt instead.
"$VENV/bin/python" -m pip install --quiet --no-deps recbole==1.2.1
"$VENV/bin/python" -m pip install --quiet --no-deps --no-build-isolation -e .
"$VENV/bin/python" -c "import recbole_ext; print('recbole-ext', recbole_ext.__version__, 'models:', recbole_ext.list_models())"
touch "$VENV/.installed"
