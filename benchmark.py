"""Compare models × seeds on one dataset and config: tables, paired t-tests and plots.

    python benchmark.py --models=RNNCCE,RNNCCE_untied=RNNCCE:weight_tying=False,GRU4Rec \
        --dataset=ml-100k --seeds=3 --baseline=GRU4Rec --out=results/ml-100k

The same as ``python -m recbole_ext benchmark``; ``--help`` lists the flags.
"""

import sys

from recbole_ext.benchmark import main

if __name__ == "__main__":
    sys.exit(main(prog="benchmark.py"))
