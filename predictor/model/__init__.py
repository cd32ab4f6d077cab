"""The model layer: clean records -> design matrix (features) -> fitted model -> scores; model
files.

Reads the schema (``data_schemas``) and nothing above it. Explanations, scoring, files and
reports use the names below and nothing else of this package, and use a fitted model through
the :class:`Model` protocol only (never an :class:`AdditiveModel`'s coefficients).
"""

from predictor.model._additive import (
    CV_FOLDS,
    INTERVAL_LEVEL,
    AdditiveModel,
    fit_additive_model,
    patient_groups,
    revise_additive_model,
    stratified_folds,
)
from predictor.model._artifact import (
    ARTIFACT_NAME,
    MANIFEST_NAME,
    MODEL_KINDS,
    ModelFiles,
    load_model,
    read_manifest,
    save_model,
)
from predictor.model._document import ModelFileError
from predictor.model._features import (
    MIN_MISSING_TO_LEARN,
    MODEL_FIELDS,
    NOT_IN_MODEL,
    Encoded,
    FeatureMap,
    SparseDesign,
    Term,
    from_model_scale,
    model_scale,
)
from predictor.model._fitter import log_likelihood
from predictor.model._protocol import Model, ModelSummary, Scores
from predictor.model._recalibrated import RecalibratedModel, recalibrate

__all__ = [
    "ARTIFACT_NAME",
    "CV_FOLDS",
    "INTERVAL_LEVEL",
    "MANIFEST_NAME",
    "MIN_MISSING_TO_LEARN",
    "MODEL_FIELDS",
    "MODEL_KINDS",
    "NOT_IN_MODEL",
    "AdditiveModel",
    "Encoded",
    "FeatureMap",
    "Model",
    "ModelFileError",
    "ModelFiles",
    "ModelSummary",
    "RecalibratedModel",
    "Scores",
    "SparseDesign",
    "Term",
    "fit_additive_model",
    "from_model_scale",
    "load_model",
    "log_likelihood",
    "model_scale",
    "patient_groups",
    "read_manifest",
    "recalibrate",
    "revise_additive_model",
    "save_model",
    "stratified_folds",
]
