"""Scoring with Dask on a local cluster of 2 worker processes (one cluster for the module):
``score_dask`` gives the rows of ``predict`` and the rejects of ``score``; ``score --engine
dask`` writes one part per input file, the bytes ``score`` writes for it; each worker loads the
model once."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from predictor import predict
from predictor._cli import main
from predictor.io import score_csv
from predictor.simulation._synthetic import simulate_cohort

dask = pytest.importorskip("dask")
dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

from predictor.distributed import score_dask  # noqa: E402  (after the skips)
from predictor.distributed._dask import _worker_model  # noqa: E402

NUMBERS = ("response_probability", "probability_low", "probability_high")

# Starting the cluster and importing the package in its workers takes most of 10-20 s on the
# project's shared 2-core machine: the module runs with the slow tests.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    with distributed.Client(cluster) as client:
        yield client
    cluster.close()


def _export(n: int, seed: int, *, bad_every: int = 37, ids: bool = True) -> str:
    """A clinic export as CSV text: bad cells every ``bad_every`` rows."""
    cohort = simulate_cohort(n, seed=seed).drop(columns=["true_probability"])
    if not ids:
        cohort = cohort.drop(columns=["patient_id"])
    cohort["Site"] = np.where(np.arange(n) % 2, "Leeds", "York")
    text = cohort.astype(object).where(cohort.notna(), "").astype(str)
    text.loc[text.index[::bad_every], "crp_mg_l"] = "high"
    text.loc[text.index[5::bad_every], "age_years"] = "12"
    out = io.StringIO()
    text.to_csv(out, index=False, lineterminator="\n")
    return out.getvalue()


def _cells(text: str) -> pd.DataFrame:
    """The text cells of a CSV export, indexed by file line (the header is line 1)."""
    frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    frame.index = pd.RangeIndex(2, len(frame) + 2, name="line")
    return frame


def _assert_same_scores(ours: pd.DataFrame, reference: pd.DataFrame) -> None:
    assert list(ours.columns) == list(reference.columns)
    assert ours.index.tolist() == reference.index.tolist()
    numbers = [c for c in reference.columns if c in NUMBERS or c.startswith("contribution_")]
    np.testing.assert_allclose(
        ours[numbers].to_numpy(float), reference[numbers].to_numpy(float), rtol=0, atol=1e-12
    )
    texts = [c for c in reference.columns if c not in numbers]
    assert ours[texts].astype(str).values.tolist() == reference[texts].astype(str).values.tolist()


@pytest.mark.parametrize("explain", [False, True], ids=["plain", "explain"])
def test_score_dask_rows_equal_predict_and_rejects_equal_score(
    client, tmp_path: Path, explain: bool
) -> None:
    text = _export(900, seed=31)
    cells = _cells(text)
    frame = dd.from_pandas(cells, npartitions=4)
    scored, rejects = dask.compute(*score_dask(frame, explain=explain))
    expected = predict(cells, explain=explain, invalid="collect")
    _assert_same_scores(scored, expected.scored)
    # the rejects file score writes for the same text, line for line
    source = tmp_path / "in.csv"
    source.write_text(text)
    score_csv(source, tmp_path / "out.csv", rejects=tmp_path / "rejects.csv", explain=explain)
    written = pd.read_csv(tmp_path / "rejects.csv", dtype=str, keep_default_na=False)
    assert len(rejects) == len(written) > 40
    got = rejects.astype(str).reset_index(drop=True)
    assert got.values.tolist() == written.values.tolist()


def test_score_dask_numbers_rows_across_partitions_without_patient_id(client) -> None:
    cells = _cells(_export(300, seed=32, ids=False))
    cells.index = pd.RangeIndex(len(cells))
    scored, _ = dask.compute(*score_dask(dd.from_pandas(cells, npartitions=3)))
    expected = predict(cells, invalid="collect").scored
    _assert_same_scores(scored, expected)
    assert scored["patient_id"].iloc[-1] == 300


def test_score_dask_loads_the_model_once_per_worker(client) -> None:
    client.run(_worker_model.cache_clear)
    cells = _cells(_export(400, seed=33))
    dask.compute(*score_dask(dd.from_pandas(cells, npartitions=8)))
    loads = client.run(lambda: _worker_model.cache_info().misses)
    assert sorted(loads.values()) in ([0, 1], [1, 1])


def test_score_dask_with_a_loaded_model_and_a_model_folder(client, tmp_path: Path) -> None:
    import shutil

    from predictor import load_model

    model = load_model()
    (tmp_path / "model").mkdir()
    for name in ("model.json", "manifest.json"):  # the shipped model, copied elsewhere
        shutil.copy(Path(__file__).parents[1] / "models" / name, tmp_path / "model" / name)
    cells = _cells(_export(300, seed=34))
    expected = predict(cells, invalid="collect").scored
    for given in (model, tmp_path / "model"):
        scored, _ = dask.compute(*score_dask(dd.from_pandas(cells, npartitions=3), model=given))
        _assert_same_scores(scored, expected)


def test_score_dask_refuses_a_pandas_frame() -> None:
    from predictor.io import BatchError

    with pytest.raises(BatchError, match="for a pandas DataFrame use predict"):
        score_dask(pd.DataFrame({"crp_mg_l": ["1"]}))


def test_engine_dask_writes_one_part_per_file_as_score_writes_it(client, tmp_path: Path) -> None:
    exports, out, rejects = tmp_path / "exports", tmp_path / "scored", tmp_path / "rejects"
    exports.mkdir()
    for k in range(3):
        (exports / f"site{k}.csv").write_text(_export(200 + 50 * k, seed=40 + k))
    address = client.scheduler.address
    args = ["score", str(exports / "*.csv"), "--out", str(out), "--rejects", str(rejects)]
    code = main([*args, "--engine", "dask", "--scheduler", address, "--quiet"])
    assert code == 1  # some rows rejected
    assert sorted(p.name for p in out.iterdir()) == ["site0.csv", "site1.csv", "site2.csv"]
    for k in range(3):
        source = exports / f"site{k}.csv"
        score_csv(source, tmp_path / "one.csv", rejects=tmp_path / "one-rejects.csv")
        # The same rows and texts; the numbers to 1e-12, not to the last bit: a Dask worker
        # starts with OPENBLAS_NUM_THREADS=1, which makes OpenBLAS round some products
        # differently from a process limited to one thread later (as score is).
        part, one = (
            pd.read_csv(path, dtype=str, keep_default_na=False)
            for path in (out / source.name, tmp_path / "one.csv")
        )
        _assert_same_scores(part, one)
        assert (rejects / source.name).read_bytes() == (tmp_path / "one-rejects.csv").read_bytes()


@pytest.mark.parametrize(
    ("pattern", "out", "message"),
    [
        ("exports/*.csv", "exports", "holds the input"),
        ("exports/*.csv", ".", "holds the input"),
        ("nothing/*.csv", "scored", "no file matches"),
    ],
    ids=["out-is-the-inputs-folder", "out-contains-the-inputs", "no-match"],
)
def test_engine_dask_refuses_an_output_folder_holding_inputs_and_no_match(
    client, tmp_path: Path, monkeypatch, capsys, pattern: str, out: str, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "exports").mkdir()
    (tmp_path / "exports" / "a.csv").write_text("patient_id,crp_mg_l\nA,1\n")
    before = (tmp_path / "exports" / "a.csv").read_bytes()
    args = ["score", pattern, "--out", out, "--engine", "dask"]
    assert main([*args, "--scheduler", client.scheduler.address]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert (tmp_path / "exports" / "a.csv").read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "exports").iterdir()) == ["a.csv"]


def test_scheduler_without_engine_dask_is_exit_2(tmp_path: Path, capsys) -> None:
    args = ["score", "in.csv", "--out", str(tmp_path / "o.csv"), "--scheduler", "tcp://x:1"]
    assert main(args) == 2
    assert "--scheduler goes with --engine dask" in capsys.readouterr().err
