"""Ketamine treatment-response predictor (demonstration on synthetic data; not a clinical tool).

>>> from predictor import predict
>>> p = predict({"crp_mg_l": 0.9, "bdnf_ng_ml": 27.0, "route": "iv_ketamine"})
>>> p.label in ("likely responder", "unlikely responder")
True
"""

import os as _os
import signal as _signal
import sys as _sys
import threading as _threading


def _stop_while_starting(signum: int, frame: object) -> None:
    """Ctrl-C or SIGTERM while the command line imports its libraries (about a second): it has
    opened no file yet, so it ends at once, exit 130, rather than with a traceback of the
    import and death by the signal."""
    _os.write(2, b"interrupted while starting: no output file was written\n")
    _os._exit(130)


def _starting_the_command_line() -> bool:
    """Whether this import is the start of ``python -m predictor``, ``python train.py`` or
    the ``ketamine-predictor`` script (else a program that uses the package: its signals are
    its own)."""
    if _threading.current_thread() is not _threading.main_thread():
        return False
    argv = getattr(_sys, "orig_argv", [])
    if argv[1:3] == ["-m", "predictor"]:
        return True
    main_file = getattr(_sys.modules.get("__main__"), "__file__", None) or ""
    return _os.path.basename(main_file) in ("train.py", "ketamine-predictor")


_STARTING = {
    signum: _signal.signal(signum, _stop_while_starting)
    for signum in ((_signal.SIGINT, _signal.SIGTERM) if _starting_the_command_line() else ())
    # a background job's ignored signal stays ignored; one set from C is left alone
    if _signal.getsignal(signum) not in (_signal.SIG_IGN, None)
}
try:
    from data_schemas import PredictorError, SchemaError
    from predictor._params import InvalidParameterError
    from predictor._scoring import PredictedTable, Prediction, predict
    from predictor._training import TrainingDataError, train
    from predictor.io import BatchError, score_csv, validate_csv
    from predictor.model import AdditiveModel, Model, ModelFileError, load_model, read_manifest
    from predictor.simulation import simulate_cohort
finally:  # the command line sets its own from here on; a failed import leaves none of ours
    for _signum, _handler in _STARTING.items():
        _signal.signal(_signum, _handler)

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
