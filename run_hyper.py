"""Search hyper-parameters of one model with Ray Tune, from a RecBole hyper file.

    python run_hyper.py --model=RNNCCE --dataset=ml-100k --params_file=hyper/rnncce.hyper --epochs=20

The same as ``python -m recbole_ext hyper``; ``--help`` lists the flags.
"""

import sys

from recbole_ext.hyper import main

if __name__ == "__main__":
    sys.exit(main(prog="run_hyper.py"))
