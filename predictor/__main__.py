"""``python -m predictor``: the command line (see ``predictor._cli``)."""

from predictor._cli import main

raise SystemExit(main())
