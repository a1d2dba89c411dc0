#!/usr/bin/env bash
# Session benchmark under session_split (issue 13 point 7): benchmarks/sessions.sh DATA OUT SEEDS
#   DATA: folder for the generated log (25,300 sessions, seed 0); SEEDS: benchmark.py's --seeds
#   (a count from 2020, or a comma-separated list)
set -euo pipefail
DATA=$1; OUT=$2; SEEDS=${3:-1}
[ -f "$DATA/synth-200k/synth-200k.inter" ] || python -m recbole_ext.data.synth --out "$DATA" --name synth-200k --sessions 25300 --seed 0
MODELS=none-CE=DwellGRU4Rec:dwell_mode=none,boost-CE=DwellGRU4Rec:dwell_mode=boost,feature-CE=DwellGRU4Rec:dwell_mode=feature,both-CE=DwellGRU4Rec:dwell_mode=both
MODELS=$MODELS,feature-XE=DwellGRU4Rec:dwell_mode=feature:loss_type=XE-sampled,feature-BPRmax=DwellGRU4Rec:dwell_mode=feature:loss_type=BPR-max,feature-TOP1max=DwellGRU4Rec:dwell_mode=feature:loss_type=TOP1-max
# two calls, so that the DwellGRU4Rec results are kept even if RecBole's models do not finish in time
python benchmark.py --models="$MODELS" --dataset=synth-200k --seeds="$SEEDS" --baseline=none-CE \
  --config_files="$DATA/synth-200k/synth-200k.yaml benchmarks/configs/sessions.yaml" \
  --columns=recall@20,mrr@20,recall@5,mrr@5 --out="$OUT/dwellgru4rec"
python benchmark.py --models=GRU4Rec,NARM --dataset=synth-200k --seeds="$SEEDS" --baseline=GRU4Rec \
  --config_files="$DATA/synth-200k/synth-200k.yaml benchmarks/configs/sessions.yaml" \
  --columns=recall@20,mrr@20,recall@5,mrr@5 --out="$OUT/recbole"
