"""Input and output of the user's files: the input stream (compression, encodings), the one CSV
reader, and batch scoring and validation of files into outputs and rejects.

Above the model and scoring layers; the command line and training use the names below.
"""

from predictor.io._batch import (
    DECIMALS,
    DEFAULT_CHUNK_ROWS,
    MAX_WORKERS,
    REJECT_COLUMNS,
    SEPARATORS,
    BatchError,
    check_writable,
    merged_rejects,
    problems_as_rejects,
    read_labelled_csv,
    rejects_csv,
    score_csv,
    usable_cores,
    validate_csv,
    write_rejects,
)
from predictor.io._input_stream import ENCODINGS

__all__ = [
    "DECIMALS",
    "DEFAULT_CHUNK_ROWS",
    "ENCODINGS",
    "MAX_WORKERS",
    "REJECT_COLUMNS",
    "SEPARATORS",
    "BatchError",
    "check_writable",
    "merged_rejects",
    "problems_as_rejects",
    "read_labelled_csv",
    "rejects_csv",
    "score_csv",
    "usable_cores",
    "validate_csv",
    "write_rejects",
]
