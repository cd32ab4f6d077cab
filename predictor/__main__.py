"""``python -m predictor``: the command line (see ``predictor.cli``)."""

from predictor.cli import main

raise SystemExit(main())
