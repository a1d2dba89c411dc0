"""``python -m recbole_ext COMMAND [--flag ...] [--key=value ...]``: the commands of recbole-ext.

    run        train and test one model (RecBole's run_recbole.py)     python -m recbole_ext run --model=RNNCCE
    hyper      search hyper-parameters with Ray Tune (run_hyper.py)     python -m recbole_ext hyper --params_file=F
    benchmark  compare models x seeds with tables and t-tests           python -m recbole_ext benchmark --models=A,B

``python -m recbole_ext COMMAND --help`` lists a command's flags.
"""

import sys

COMMANDS = ("run", "hyper", "benchmark")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"recbole_ext: error: unknown command {command!r}; use one of {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    import importlib

    import recbole_ext  # noqa: F401  (adapts RecBole and registers the plugin models first)

    return importlib.import_module(f"recbole_ext.{command}").main(rest, prog=f"python -m recbole_ext {command}")


if __name__ == "__main__":
    sys.exit(main())
