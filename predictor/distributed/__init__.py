"""Scoring beyond one machine, with Dask: :func:`score_dask` for a Dask DataFrame, and
:func:`score_files_dask` (``python -m predictor score 'exports/*.csv' --out DIR --engine
dask``) for many CSV files, one output part per input file.

Dask is an optional dependency (``pip install 'ketamine-predictor[dask]'``); it is imported
only when one of these functions runs, so plain scoring never imports it.
"""

from predictor.distributed._dask import (
    DaskUnavailableError,
    FilesSummary,
    score_dask,
    score_files_dask,
)

__all__ = ["DaskUnavailableError", "FilesSummary", "score_dask", "score_files_dask"]
