#!/usr/bin/env bash
# The measured runs behind docs/benchmarks/ml-100k-ratings.md (issue 14). Run from the repository root:
#   nice -n 10 benchmarks/ratings_all.sh PART > benchmarks/results/ratings/PART.log 2>&1 &
# PART: hyper (run_hyper.py searches + tuned configs) | recbole (5-fold CV of the three models, untuned
# and tuned) | surprise (Surprise's four algorithms on the same folds, in .venv-bench) | table
set -euo pipefail
OUT=benchmarks/results/ratings
PY=${PY:-python}
MODELS="RatingMF RatingNNMF RatingMLP"
echo "start $(date -u +%FT%TZ) load: $(cut -d' ' -f1-3 /proc/loadavg)"
case "${1:-}" in
  hyper)
    for m in $MODELS; do
      lower=$(echo "$m" | tr A-Z a-z)
      $PY run_hyper.py --model="$m" --dataset=ml-100k --params_file="hyper/$lower.hyper" --scheduler=fifo \
        --num_cpus=2 --storage_path=ray_results --name="$m" --state=ERROR --show_progress=False
      $PY benchmarks/ratings.py tuned --out=$OUT --model="$m" --experiment="ray_results/$m"
    done ;;
  recbole)
    [ -f $OUT/folds.tsv ] || $PY benchmarks/ratings.py folds --out=$OUT
    for m in $MODELS; do
      $PY benchmarks/ratings.py model --out=$OUT --name="$m" --model="$m"
      $PY benchmarks/ratings.py model --out=$OUT --name="$m-tuned" --model="$m" --config_files="$OUT/$m-tuned.yaml"
    done ;;
  surprise)
    .venv-bench/bin/python -m benchmarks.ratings_surprise --out=$OUT ;;
  table)
    $PY benchmarks/ratings.py table --out=$OUT ;;
  *) echo "usage: $0 hyper|recbole|surprise|table" >&2; exit 2 ;;
esac
echo "end $(date -u +%FT%TZ) load: $(cut -d' ' -f1-3 /proc/loadavg)"
