"""Train and test one model (a recbole-ext plugin or a RecBole built-in) with RecBole.

    python run.py --model=RNNCCE --dataset=ml-100k [--config_files="a.yaml b.yaml"] [--key=value ...]

The same as ``python -m recbole_ext run``; ``--help`` lists the flags.
"""

import sys

from recbole_ext.run import main

if __name__ == "__main__":
    sys.exit(main(prog="run.py"))
