"""Train the model: ``python train.py [--data CSV] [--out DIR] [--seed N]``.

With no arguments it simulates the default training cohort, fits, evaluates on data the model
never saw and writes ``models/`` (model.json, manifest.json, MODEL_CARD.md). The same as
``python -m predictor train``; ``--help`` lists the options.
"""

import gc
import sys

from predictor._cli import main

if __name__ == "__main__":
    code = main(["train", *sys.argv[1:]])
    # Everything is written. The interpreter's garbage collections at exit would walk every
    # object training made (0.5 s of a 7-8 s run on 2 cores); frozen, they are left to the
    # process's end. atexit handlers still run.
    gc.freeze()
    sys.exit(code)
