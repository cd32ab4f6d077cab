"""Ketamine treatment-response predictor (demonstration on synthetic data; not a clinical tool).

>>> from predictor import predict
>>> p = predict({"crp_mg_l": 0.9, "bdnf_ng_ml": 27.0, "route": "iv_ketamine"})
>>> p.label in ("likely responder", "unlikely responder")
True
"""

from data_schemas import PredictorError, SchemaError
from predictor._params import InvalidParameterError
from predictor._scoring import PredictedTable, Prediction, predict
from predictor._training import TrainingDataError, train
from predictor.io import BatchError, score_csv, validate_csv
from predictor.model import AdditiveModel, Model, ModelFileError, load_model, read_manifest
from predictor.simulation import simulate_cohort

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """``PenalisedLogisticGAM`` on first use: it imports scikit-learn (about 1 s), which
    scoring does not need."""
    if name == "PenalisedLogisticGAM":
        from predictor.model._estimator import PenalisedLogisticGAM

        return PenalisedLogisticGAM
    raise AttributeError(f"module 'predictor' has no attribute {name!r}")


__all__ = [
    "AdditiveModel",
    "BatchError",
    "InvalidParameterError",
    "Model",
    "ModelFileError",
    "PenalisedLogisticGAM",
    "PredictedTable",
    "Prediction",
    "PredictorError",
    "SchemaError",
    "TrainingDataError",
    "__version__",
    "load_model",
    "predict",
    "read_manifest",
    "score_csv",
    "simulate_cohort",
    "train",
    "validate_csv",
]
