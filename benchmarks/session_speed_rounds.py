"""Per-round medians of a session_speed.py run: events/s of each contender and its ratio to the
official GRU4Rec's in the same round (the machine's load can change between rounds).

    python benchmarks/session_speed_rounds.py benchmarks/results/speed/cpu benchmarks/results/speed/cpu-2
"""

import sys

import pandas as pd


def main(folders):
    for folder in folders:
        runs = pd.read_csv(f"{folder}/runs.csv")
        medians = runs.groupby(["round", "contender"])["events_per_s"].median().unstack(0)
        ratios = medians / medians.loc["official"]
        print(folder)
        print(pd.concat({"median events/s": medians.round(0), "vs official": ratios.round(2)}, axis=1).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
