"""``python -m predictor``: the command line (see ``predictor._cli``)."""

from predictor._cli import main

if __name__ == "__main__":  # not when a worker process imports the main module again
    raise SystemExit(main())
