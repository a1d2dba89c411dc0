#!/usr/bin/env bash
# Set up a virtual environment with the whole stack — torch 2.13.0 (CPU build), numpy 2, pandas,
# current Ray Tune, RecBole 1.2.1 without its dependency pins, recbole_ext (editable) — at the exact
# versions of a lock file, the ones CI tested.
#
#   ./install.sh                        .venv          pandas 2   requirements-lock-pandas2.txt
#   PANDAS=3 ./install.sh               .venv-pandas3  pandas 3   requirements-lock-pandas3.txt
#   ./install.sh --update-lock          resolve requirements.txt's open ranges afresh in a scratch
#                                       venv, write that venv's exact versions to the lock, then
#                                       install the lock (`make lock` does both pandas versions)
#
# VENV=DIR picks another directory, PYTHON=python3.x another interpreter.
set -euo pipefail
cd "$(dirname "$0")"

PANDAS=${PANDAS:-2}
case "$PANDAS" in
    2) PANDAS_RANGE="pandas>=2.2,<3"; DEFAULT_VENV=.venv ;;
    3) PANDAS_RANGE="pandas>=3"; DEFAULT_VENV=.venv-pandas3 ;;
    *) echo "install.sh: PANDAS=$PANDAS is not supported; allowed: 2 or 3" >&2; exit 2 ;;
esac
VENV=${VENV:-$DEFAULT_VENV}
PYTHON=${PYTHON:-python3}
LOCK=requirements-lock-pandas$PANDAS.txt

case "${1:-}" in
    "") UPDATE_LOCK=0 ;;
    --update-lock) UPDATE_LOCK=1 ;;
    *) echo "install.sh: unknown argument '$1'; allowed: --update-lock" >&2; exit 2 ;;
esac

pip_in() {  # pip_in VENV ARGS...: pip of that virtual environment, quietly
    local venv=$1
    shift
    "$venv/bin/python" -m pip install --quiet "$@"
}

# RecBole 1.2.1's metadata pins ray<=2.6.3, which does not import under numpy 2, so RecBole goes in
# with --no-deps; its real runtime needs are listed in requirements.txt.
install_stack() {  # install_stack VENV [-c LOCK]
    local venv=$1
    shift
    [ -x "$venv/bin/python" ] || "$PYTHON" -m venv "$venv"
    pip_in "$venv" --upgrade pip "$@"
    # torch is pinned exactly in requirements.txt: pip then takes the CPU wheel from this machine's
    # disk where there is one, instead of resolving a range to a multi-GB CUDA build.
    pip_in "$venv" -r requirements.txt "$PANDAS_RANGE" "$@"
    pip_in "$venv" --no-deps recbole==1.2.1
}

if [ "$UPDATE_LOCK" = 1 ]; then
    scratch="$VENV.lock-scratch"
    rm -rf "$scratch"  # only ever this script's own scratch venv
    install_stack "$scratch"
    {
        echo "# Exact versions for PANDAS=$PANDAS, the ones CI tests: used by ./install.sh as pip constraints."
        echo "# Written by \`PANDAS=$PANDAS ./install.sh --update-lock\` (or \`make lock\`) from requirements.txt's"
        echo "# open ranges plus \"$PANDAS_RANGE\"; edit requirements.txt or setup.cfg, not this file."
        "$scratch/bin/python" -c 'import platform; print("# Resolved for Python", platform.python_version(), "on", platform.machine())'
        "$scratch/bin/python" -m pip freeze --all --exclude-editable
    } >"$LOCK.tmp"
    mv "$LOCK.tmp" "$LOCK"
    rm -rf "$scratch"
    echo "wrote $LOCK"
fi

[ -f "$LOCK" ] || { echo "install.sh: $LOCK is missing; create it with: PANDAS=$PANDAS ./install.sh --update-lock" >&2; exit 2; }
install_stack "$VENV" -c "$LOCK"
"$VENV/bin/python" -m pip install --quiet --no-deps --no-build-isolation -e .
"$VENV/bin/python" -c "import pandas, recbole_ext; print('recbole-ext', recbole_ext.__version__, 'pandas', pandas.__version__, 'models:', recbole_ext.list_models())"
touch "$VENV/.installed"
