#!/usr/bin/env bash
# The seed's weight-tying experiment under its own protocol (issue 13 point 6), a few seeds per
# benchmark.py call so that each finished group is kept: benchmarks/user_split.sh OUT SEEDS [SEEDS ...]
# where SEEDS is benchmark.py's --seeds (a comma-separated list such as 2020,2021; a lone number is a count).
# Then: python benchmark.py --from_results=OUT (after merging, see docs/benchmarks/ml-100k-user-split.md).
set -euo pipefail
OUT=$1; shift
MODELS=tied50=RNNCCE:embedding_size=50:hidden_size=50,untied50=RNNCCE:embedding_size=50:hidden_size=50:weight_tying=False
MODELS=$MODELS,tied100=RNNCCE:embedding_size=100:hidden_size=100,untied100=RNNCCE:embedding_size=100:hidden_size=100:weight_tying=False
MODELS=$MODELS,tied200=RNNCCE:embedding_size=200:hidden_size=200,untied200=RNNCCE:embedding_size=200:hidden_size=200:weight_tying=False
MODELS=$MODELS,KL100=RNNCCE:embedding_size=100:hidden_size=100:loss_type=KL
for SEEDS in "$@"; do
  python benchmark.py --models="$MODELS" --dataset=ml-100k --seeds="$SEEDS" \
    --baseline=tied50:untied50,tied100:untied100,tied200:untied200,KL100:tied100 \
    --config_files=benchmarks/configs/ml-100k-user-split.yaml \
    --columns=sps@10,recall@10,usercoverage@10,correctitemcoverage@10,blockbustershare@10,ndcg@10 \
    --rnn_type=LSTM --loss_type=CE --out="$OUT/seeds_${SEEDS//,/_}"
done
