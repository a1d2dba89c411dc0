#!/usr/bin/env bash
# The measured runs behind docs/benchmarks/*.md. Usage: benchmarks/run_all.sh DEVICE OUT PART
#   DEVICE: cpu or cuda; PART: sequence | losses | dwell | compare | tying
set -euo pipefail
DEVICE=${1:-cpu}; OUT=${2:-benchmarks/results}; PART=${3:-sequence}
GPU="--device=$DEVICE --use_gpu=$([ "$DEVICE" = cpu ] && echo False || echo True)"
case "$PART" in
  sequence)  # issue 6: epoch time and time-to-quality, GRU4Rec vs RNNCCE prefix vs sequence
    python -m benchmarks.sequence_training --dataset=ml-100k --epochs=40 --stopping_step=5 \
      --device="$DEVICE" --out="$OUT/sequence_training" ;;
  losses)  # issue 4: CE vs KL vs BPR-max for RNNCCE, same seed and epochs
    python benchmark.py --models=CE=RNNCCE:loss_type=CE,KL=RNNCCE:loss_type=KL,BPR-max=RNNCCE:loss_type=BPR-max \
      --dataset=ml-100k --seeds=2 --baseline=CE --config_files=benchmarks/configs/ml-100k.yaml \
      --epochs=20 --stopping_step=100 $GPU --out="$OUT/losses" ;;
  dwell)  # issue 5: dwell modes on the generated sessions
    python -m benchmarks.dwell_modes --sessions=3000 --epochs=20 --seeds=2020,2021,2022 --device="$DEVICE" \
      --out="$OUT/dwell_modes" ;;
  compare)  # issue 8: the plugin models next to RecBole's built-ins
    python benchmark.py --models=RNNCCE,RNNCCE_untied=RNNCCE:weight_tying=False,DwellGRU4Rec,GRU4Rec,GRU4RecF,SASRec,NARM \
      --dataset=ml-100k --seeds=3 --baseline=GRU4Rec --config_files=benchmarks/configs/ml-100k.yaml $GPU \
      --jobs="${JOBS:-1}" --out="$OUT/ml-100k" ;;
  tying)  # issue 8 / seed: weight tying at embedding = hidden = 50, 100, 200
    python benchmark.py --models=tied50=RNNCCE:embedding_size=50:hidden_size=50,untied50=RNNCCE:embedding_size=50:hidden_size=50:weight_tying=False,tied100=RNNCCE:embedding_size=100:hidden_size=100,untied100=RNNCCE:embedding_size=100:hidden_size=100:weight_tying=False,tied200=RNNCCE:embedding_size=200:hidden_size=200,untied200=RNNCCE:embedding_size=200:hidden_size=200:weight_tying=False \
      --dataset=ml-100k --seeds=3 --baseline=tied50:untied50,tied100:untied100,tied200:untied200 \
      --config_files=benchmarks/configs/ml-100k.yaml --columns=ndcg@10,recall@10,mrr@10,ndcg@20,correctitemcoverage@10,blockbustershare@10 $GPU \
      --jobs="${JOBS:-1}" --out="$OUT/weight_tying" ;;
  *) echo "unknown part $PART" >&2; exit 2 ;;
esac
