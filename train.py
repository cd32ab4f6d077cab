"""Train the model: ``python train.py [--data CSV] [--out DIR] [--seed N]``.

With no arguments it simulates the default training cohort, fits, evaluates on data the model
never saw and writes ``models/`` (model.json, manifest.json, MODEL_CARD.md). The same as
``python -m predictor train``; ``--help`` lists the options.
"""

import sys

from predictor._cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
