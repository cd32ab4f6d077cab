"""The package's exceptions: one base, pickle-safe across process pools, and the parameters of
the public functions checked at the boundary in one message form."""

from __future__ import annotations

import concurrent.futures
import math
import pickle
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import predictor._cli  # noqa: F401 (defines UsageError: the walk below must see it)
from data_schemas import PredictorError, Problem, Reason, SchemaError, validate_record
from predictor import (
    BatchError,
    InvalidParameterError,
    ModelFileError,
    TrainingDataError,
    load_model,
    predict,
    read_manifest,
    score_csv,
    simulate_cohort,
    train,
)
from predictor._cli import UsageError, main
from predictor._params import BOOL, BadParameter, check
from predictor.distributed import DaskUnavailableError
from predictor.io import validate_csv
from predictor.io._input_stream import InputError, InputReason
from predictor.model import Model
from predictor.model._additive import fit_additive_model
from predictor.serve._json import ProblemOut, RequestProblem

BAD_RECORD = {"patient_id": "P-7", "crp_mg_l": "high", "age_years": 12, "route": "nasal"}


def _subclasses(cls: type) -> list[type]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return sorted(set(found), key=lambda c: c.__qualname__)


def _ours(cls: type) -> bool:
    return cls.__module__.split(".")[0] in ("predictor", "data_schemas")


EXAMPLES: dict[type, Callable[[], PredictorError]] = {
    SchemaError: lambda: SchemaError(
        [
            Problem(12, "CRP", "crp_mg_l", "high", Reason.NOT_A_NUMBER, "CRP = 'high' is ..."),
            Problem(None, "a", "bmi_kg_m2", "a, b", Reason.DUPLICATE_FIELD, "columns 'a' ..."),
        ]
    ),
    InvalidParameterError: lambda: InvalidParameterError(
        "score_csv", [BadParameter("chunk_rows", "0", "an int in [1, inf)")]
    ),
    InputError: lambda: InputError("x.csv: line 3 ...", reason=InputReason.NOT_DECODABLE, line=3),
    BatchError: lambda: BatchError("in.csv has no header line"),
    ModelFileError: lambda: ModelFileError("no model at m/"),
    TrainingDataError: lambda: TrainingDataError("no responded column"),
    UsageError: lambda: UsageError("--n cannot go with --data"),
    RequestProblem: lambda: RequestProblem(
        [ProblemOut(record=None, field="", column="", value="[", rule="json", message="...")]
    ),
    DaskUnavailableError: lambda: DaskUnavailableError("scoring with Dask needs Dask, ..."),
}
"""One instance of every exception class; a new class needs an example here (a test says so)."""

BUILT_INS: dict[type, tuple[type, ...]] = {
    SchemaError: (ValueError,),
    InvalidParameterError: (ValueError, TypeError),
    InputError: (ValueError,),
    BatchError: (ValueError,),
    ModelFileError: (ValueError,),
    TrainingDataError: (ValueError,),
    UsageError: (),
    RequestProblem: (ValueError,),
    DaskUnavailableError: (ImportError,),
}


# -- one base ---------------------------------------------------------------------------------


def test_errors_every_public_exception_class_subclasses_the_base() -> None:
    import importlib
    import pkgutil

    import predictor

    for module in pkgutil.walk_packages(predictor.__path__, "predictor."):
        if not module.name.endswith("__main__"):  # every module, not those imported so far
            importlib.import_module(module.name)
    ours = [c for c in _subclasses(Exception) if _ours(c) and not c.__name__.startswith("_")]
    assert ours, "no exception class found"
    assert [c for c in ours if not issubclass(c, PredictorError)] == []


@pytest.mark.parametrize("cls", list(BUILT_INS), ids=lambda c: c.__name__)
def test_errors_each_keeps_its_built_in_base(cls: type) -> None:
    for built_in in BUILT_INS[cls]:
        assert issubclass(cls, built_in)
    with pytest.raises(PredictorError):
        raise EXAMPLES[cls]()


def test_errors_the_base_is_public_in_both_packages() -> None:
    import data_schemas
    import predictor

    assert "PredictorError" in data_schemas.__all__ and "PredictorError" in predictor.__all__
    assert predictor.PredictorError is data_schemas.PredictorError
    assert "InvalidParameterError" in predictor.__all__


# -- pickling ---------------------------------------------------------------------------------


def test_errors_every_class_has_an_example() -> None:
    assert set(_subclasses(PredictorError)) == set(EXAMPLES)


@pytest.mark.parametrize("cls", _subclasses(PredictorError), ids=lambda c: c.__name__)
def test_errors_pickle_with_their_structured_data(cls: type) -> None:
    assert cls in EXAMPLES, f"add an example of {cls.__name__} to EXAMPLES"
    error = EXAMPLES[cls]()
    error.add_note("a note")
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is cls
    assert str(again) == str(error)
    assert again.args == error.args
    assert vars(again) == vars(error)  # problems, reason and line, function and parameters...
    assert again.__notes__ == ["a note"]


def test_errors_schema_error_from_a_worker_process_reaches_the_parent_intact() -> None:
    with pytest.raises(SchemaError) as expected:
        validate_record(BAD_RECORD)
    with concurrent.futures.ProcessPoolExecutor(2) as pool:
        good = pool.submit(validate_record, {"crp_mg_l": 0.9})
        bad = pool.submit(validate_record, BAD_RECORD)
        with pytest.raises(SchemaError) as got:
            bad.result()
        assert good.result()["crp_mg_l"] == 0.9  # the pool survived
        with pytest.raises(InvalidParameterError, match=r"simulate_cohort\(\): n = 0"):
            pool.submit(simulate_cohort, 0).result()
    problems = got.value.problems
    assert len(problems) == 3
    assert problems == expected.value.problems
    assert [(p.row, p.field, p.reason, p.message) for p in problems] == [
        (p.row, p.field, p.reason, p.message) for p in expected.value.problems
    ]
    assert str(got.value) == str(expected.value)


# -- parameters checked at the boundary -------------------------------------------------------


class _Unreadable:
    """A binary input that fails the test if anything reads it."""

    def read(self, *args: Any) -> bytes:
        raise AssertionError("the input was read before the parameters were checked")

    readinto = readline = read


EMPTY = pd.DataFrame()
NO_MODEL = "no/such/model"
"""A model path that does not exist: a check that runs first never gets to load it."""


def _call(name: str, **kwargs: Any) -> Callable[[Path], Any]:
    def call(tmp: Path) -> Any:
        if name == "score_csv":
            defaults = {"source": _Unreadable(), "out": tmp / "out.csv", "model": NO_MODEL}
            return score_csv(**{**defaults, **kwargs})
        if name == "validate_csv":
            return validate_csv(**{"source": _Unreadable(), **kwargs})
        if name == "predict":
            return predict(**{"patients": {"crp_mg_l": 0.9}, "model": NO_MODEL, **kwargs})
        if name == "simulate_cohort":
            return simulate_cohort(**{"n": 10, **kwargs})
        if name == "train":
            defaults = {"seed": 0, "out": tmp / "m", "source": "s", "simulated": True}
            return train(**{"clean": EMPTY, **defaults, **kwargs})
        if name == "fit_additive_model":
            return fit_additive_model(EMPTY, np.array([]), **kwargs)
        if name == "load_model":
            return load_model(**kwargs)
        if name == "read_manifest":
            return read_manifest(**kwargs)
        raise AssertionError(name)

    return call


BAD_PARAMETERS = [
    ("score_csv", {"chunk_rows": 0}, "score_csv(): chunk_rows = 0 must be an int in [1, inf)"),
    ("score_csv", {"chunk_rows": 2.5}, "chunk_rows = 2.5 must be an int in [1, inf)"),
    ("score_csv", {"chunk_rows": True}, "chunk_rows = True must be an int"),
    ("score_csv", {"explain": "yes"}, "score_csv(): explain = 'yes' must be a bool"),
    ("score_csv", {"separator": ":"}, "separator = ':' must be None or one of ',', ';', '\\t'"),
    ("score_csv", {"decimal": ";"}, "decimal = ';' must be None or one of '.', ','"),
    ("score_csv", {"out": None}, "out = None must be a path (str or os.PathLike)"),
    (
        "score_csv",
        {"model": 3},
        "model = 3 must be None or a path (str or os.PathLike) or a Model",
    ),
    ("score_csv", {"source": 7}, "source = 7 must be a path (str or os.PathLike) or a binary file"),
    ("validate_csv", {"chunk_rows": -1}, "validate_csv(): chunk_rows = -1 must be an int"),
    ("validate_csv", {"problems": 3}, "validate_csv(): problems = 3 must be None or a path"),
    ("predict", {"explain": "no"}, "predict(): explain = 'no' must be a bool"),
    ("predict", {"invalid": "skip"}, "invalid = 'skip' must be one of 'raise', 'collect'"),
    (
        "predict",
        {"patients": [1, 2]},
        "patients = [1, 2] must be a mapping (one patient) or a DataFrame",
    ),
    ("simulate_cohort", {"n": 0}, "simulate_cohort(): n = 0 must be an int in [1, inf)"),
    ("simulate_cohort", {"n": 2.5}, "n = 2.5 must be an int"),
    ("simulate_cohort", {"seed": -1}, "seed = -1 must be an int in [0, inf)"),
    ("simulate_cohort", {"seed": "7"}, "seed = '7' must be an int"),
    ("train", {"seed": -1}, "train(): seed = -1 must be an int in [0, 4294967295]"),
    ("train", {"seed": 2**32}, "seed = 4294967296 must be an int in [0, 4294967295]"),
    ("train", {"n_refused": -1}, "train(): n_refused = -1 must be an int in [0, inf)"),
    ("train", {"simulated": "yes"}, "train(): simulated = 'yes' must be a bool"),
    (
        "fit_additive_model",
        {"threshold": 1.7},
        "fit_additive_model(): threshold = 1.7 must be a float in (0, 1)",
    ),
    ("fit_additive_model", {"threshold": 0.0}, "threshold = 0.0 must be a float in (0, 1)"),
    ("fit_additive_model", {"threshold": math.nan}, "threshold = nan must be a float in"),
    (
        "fit_additive_model",
        {"smoothing": -3.0},
        "fit_additive_model(): smoothing = -3.0 must be None or a float in (0, inf) or a mapping",
    ),
    ("fit_additive_model", {"smoothing": math.inf}, "smoothing = inf must be None or a float"),
    (
        "fit_additive_model",
        {"structure": "tied"},
        "structure = 'tied' must be None or one of 'per term', 'pooled'",
    ),
    ("fit_additive_model", {"smoothing": (0.1,)}, "smoothing = (0.1,) must be None or a float"),
    ("load_model", {"path": 3}, "load_model(): path = 3 must be None or a path"),
    ("read_manifest", {"path": 3.5}, "read_manifest(): path = 3.5 must be None or a path"),
]


@pytest.mark.parametrize(
    ("function", "kwargs", "message"),
    BAD_PARAMETERS,
    ids=[f"{f}-{'-'.join(k)}-{i}" for i, (f, k, _) in enumerate(BAD_PARAMETERS)],
)
def test_errors_public_functions_refuse_bad_parameters_before_any_work(
    function: str, kwargs: dict[str, Any], message: str, tmp_path: Path
) -> None:
    with pytest.raises(InvalidParameterError, match=re.escape(message)) as info:
        _call(function, **kwargs)(tmp_path)
    error = info.value
    assert isinstance(error, ValueError) and isinstance(error, TypeError)
    assert error.function == function
    assert [p.name for p in error.parameters] == list(kwargs)
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_errors_every_bad_parameter_is_named_at_once(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameterError) as info:
        _call("score_csv", chunk_rows=0, explain="no", progress=None)(tmp_path)
    assert str(info.value) == (
        "score_csv(): explain = 'no' must be a bool; chunk_rows = 0 must be an int in [1, inf); "
        "progress = None must be a bool"
    )


def test_errors_a_long_value_is_shortened_to_one_line() -> None:
    with pytest.raises(InvalidParameterError) as info:
        predict(pd.Series(range(1000)))
    message = str(info.value)
    assert "\n" not in message and len(message) < 200


def test_errors_numpy_numbers_are_accepted() -> None:
    cohort = simulate_cohort(np.int64(5), seed=np.int32(3))
    assert len(cohort) == 5
    assert predict(cohort.iloc[:2], explain=np.bool_(True)).shape[0] == 2


def test_errors_model_accepts_any_object_with_the_model_protocols_members() -> None:
    """``model=`` checks the package's own model classes by type first (the protocol check is
    slow); an object of another class with the protocol's members is still a model."""

    class Wrapped:
        def __init__(self, model: Model) -> None:
            self.model = model

        def __getattr__(self, name: str) -> Any:
            return getattr(self.model, name)

    shipped = load_model()
    wrapped = Wrapped(shipped)
    assert not isinstance(wrapped, type(shipped)) and isinstance(wrapped, Model)
    record = {"crp_mg_l": 0.9, "route": "iv_ketamine"}
    assert predict(record, model=wrapped) == predict(record, model=shipped)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match=r"model = <object .* or a Model$"):
        predict(record, model=object())  # type: ignore[arg-type]


def test_errors_cli_reports_a_refused_option_value_in_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["train", "--n", "200", "--seed", str(2**32), "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1] == "error: train(): seed = 4294967296 must be an int in [0, 4294967295]"
    assert not (tmp_path / "m").exists()


def test_errors_a_constraint_for_a_parameter_the_function_lacks_is_a_bug_not_a_pass() -> None:
    with pytest.raises(RuntimeError, match=r"f\(\) has no parameter chunk_row"):
        check("f", {"chunk_row": [BOOL]}, {"chunk_rows": 0})


def test_errors_parameters_accept_numpy_values_where_a_user_would_pass_them() -> None:
    """Numpy integers and floats pass the checks."""
    cohort = simulate_cohort(np.int64(400), seed=np.int64(2))
    model, report = fit_additive_model(
        cohort, cohort["responded"].to_numpy(), smoothing=np.float64(10.0)
    )
    assert report.smoothing == (10.0,) * len(report.blocks) and not report.selected
    assert set(model.smoothing.values()) == {10.0}


def test_errors_a_text_stream_or_a_repeated_index_is_a_parameter_error(tmp_path) -> None:
    """Two inputs that passed the checks and then failed with a plain TypeError / ValueError:
    a file opened in text mode, and invalid="collect" on a table with repeated index labels."""
    source = tmp_path / "in.csv"
    source.write_text("patient_id,crp_mg_l\nA,0.9\n")
    with open(source) as text, pytest.raises(InvalidParameterError, match=r"opened with 'rb'"):
        score_csv(text, tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()
    table = pd.DataFrame({"crp_mg_l": ["0.9", "high"]}, index=[1, 1])
    with pytest.raises(InvalidParameterError, match="unique index labels"):
        predict(table, invalid="collect")
    with pytest.raises(InvalidParameterError, match="unique index labels"):  # before any work,
        predict(table.assign(crp_mg_l=["0.9", "1"]), invalid="collect")  # valid rows or not


def test_errors_of_a_table_with_repeated_labels_name_the_right_patient() -> None:
    table = pd.DataFrame(
        {"patient_id": ["GOOD-1", "BAD-2", "C"], "crp_mg_l": ["oops", "1", "2"]}, index=[7, 7, 8]
    )
    with pytest.raises(SchemaError) as caught:
        predict(table)  # the bad cell is GOOD-1's, whose label 7 BAD-2 shares
    assert "row 7 (patient_id 'GOOD-1'): crp_mg_l" in str(caught.value)
    scored = predict(table.assign(crp_mg_l=["1", "2", "3"]))
    assert scored.index.tolist() == [7, 7, 8]
    assert scored["patient_id"].tolist() == ["GOOD-1", "BAD-2", "C"]
