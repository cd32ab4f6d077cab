"""Input schema v1 for the ketamine treatment-response predictor.

One declarative table of fields (:data:`FIELDS`) drives validation, column-name matching,
aliases, unit conversion and the documentation of the input format.

>>> from data_schemas import validate
>>> clean, problems = validate({"Patient ID": "A1", "CRP (mg/L)": "0.9", "route": "iv"})
>>> clean.loc[0, "patient_id"], float(clean.loc[0, "crp_mg_l"]), clean.loc[0, "route"]
('A1', 0.9, 'iv_ketamine')
>>> len(problems)
0
"""

from data_schemas.errors import (
    PredictorError,
    Problem,
    Reason,
    SchemaError,
    summary_lines,
    without_value,
)
from data_schemas.fields import (
    FIELDS,
    FIELDS_BY_NAME,
    SCHEMA_VERSION,
    Alias,
    Field,
    Kind,
    Role,
    Subgroups,
    Wording,
    markdown_table,
)
from data_schemas.validate import (
    ColumnMatch,
    Resemblance,
    ValidationResult,
    match_columns,
    validate,
    validate_record,
)

__all__ = [
    "FIELDS",
    "FIELDS_BY_NAME",
    "SCHEMA_VERSION",
    "Alias",
    "ColumnMatch",
    "Field",
    "Kind",
    "PredictorError",
    "Problem",
    "Reason",
    "Resemblance",
    "Role",
    "SchemaError",
    "Subgroups",
    "ValidationResult",
    "Wording",
    "markdown_table",
    "match_columns",
    "summary_lines",
    "validate",
    "validate_record",
    "without_value",
]
