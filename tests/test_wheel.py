"""A normal (not editable) install works: the wheel carries the shipped model.

The wheel is built as ``python -m build`` builds it -- an sdist first, then the wheel from the
unpacked sdist -- so the sdist is proved to carry ``models/`` too; it is installed into a fresh
virtual environment that sees this environment's dependencies but not its copy of the project,
and run from a folder that is not the source tree.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from predictor import predict
from predictor.model._artifact import (
    ARTIFACT_NAME,
    MANIFEST_NAME,
    PACKAGED_MODEL_DIR,
    SHIPPED_MODEL_DIR,
    _checkout_models_dir,
)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
PACKAGED = "predictor/model/shipped/"
SERVE_DATA = (
    "templates/base.html",
    "templates/page.html",
    "templates/docs.html",
    "static/page.css",
)
NOT_SOURCE = shutil.ignore_patterns(
    ".git", "__pycache__", "*.egg-info", "build", "dist", ".*_cache", ".hypothesis", ".venv"
)


def test_shipped_model_is_models_of_this_checkout() -> None:
    assert SHIPPED_MODEL_DIR == ROOT / "models"
    assert PACKAGED_MODEL_DIR == ROOT / "predictor" / "model" / "shipped"


@pytest.mark.parametrize(
    ("pyproject", "found"),
    [
        ('[project]\nname = "ketamine-predictor"\n', True),
        ('[project]\nname = "another-package"\n', False),
        ("not toml [", False),
        (None, False),
    ],
    ids=["this-project", "another-project", "broken-pyproject", "site-packages"],
)
def test_checkout_models_dir_is_only_this_projects(
    tmp_path: Path, pyproject: str | None, found: bool
) -> None:
    (tmp_path / "models").mkdir()  # e.g. site-packages/models of another package
    if pyproject is not None:
        (tmp_path / "pyproject.toml").write_text(pyproject)
    assert _checkout_models_dir(tmp_path) == (tmp_path / "models" if found else None)


def _run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [str(arg) for arg in args], cwd=cwd, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _build_wheel(out: Path) -> Path:
    """sdist from a copy of the source tree (the build leaves nothing in the checkout), then the
    wheel from the unpacked sdist; offline: no build isolation, the test extra's setuptools."""
    source = out / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE)
    build_sdist = "from setuptools import build_meta as b; print(b.build_sdist('dist'))"
    sdist = source / "dist" / _run(sys.executable, "-c", build_sdist, cwd=source).split()[-1]
    with tarfile.open(sdist) as archive:
        assert f"{sdist.name[: -len('.tar.gz')]}/models/{ARTIFACT_NAME}" in archive.getnames()
        archive.extractall(out / "unpacked", filter="data")
    (unpacked,) = (out / "unpacked").iterdir()
    _run(sys.executable, "-m", "pip", "wheel", unpacked, "--no-deps", "--no-build-isolation",
         "--no-index", "-w", out / "wheels", cwd=out)  # fmt: skip
    (wheel,) = (out / "wheels").glob("*.whl")
    return wheel


def _fresh_venv(where: Path) -> Path:
    """A virtual environment without pip whose only route to this environment's packages is a
    ``.pth`` file naming its site-packages (a ``.pth`` line adds a folder to ``sys.path``
    without running the ``.pth`` files in it, so an editable install of the project there
    does not come along)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", where], check=True)
    python = where / "bin" / "python"
    purelib = _run(
        python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=where
    )
    (Path(purelib.strip()) / "outer.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return python


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The python of a fresh virtual environment with the project's wheel installed."""
    out = tmp_path_factory.mktemp("wheel")
    wheel = _build_wheel(out)
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    for name in (ARTIFACT_NAME, MANIFEST_NAME, "MODEL_CARD.md", "report.md", "figures/roc.png"):
        assert PACKAGED + name in names
    assert not any(name.startswith("models/") for name in names)
    for name in SERVE_DATA:  # the page is served from the installed package
        assert f"predictor/serve/{name}" in names
    python = _fresh_venv(out / "venv")
    _run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
         "--quiet", wheel, cwd=out)  # fmt: skip
    return python


def _clean_env() -> dict[str, str]:
    """This environment's variables without those that would put the source tree on the path."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


@pytest.mark.slow
def test_wheel_predict_uses_the_packaged_model_and_agrees_with_the_source_tree(
    installed: Path, tmp_path: Path
) -> None:
    patient = json.loads((EXAMPLES / "patient.json").read_text())
    script = (
        "import json, sys, predictor\n"
        "from predictor.model._artifact import SHIPPED_MODEL_DIR\n"
        "p = predictor.predict(json.load(open(sys.argv[1])))\n"
        "print(json.dumps({'file': predictor.__file__, 'model': str(SHIPPED_MODEL_DIR),"
        " 'probability': p.probability, 'interval': p.interval}))\n"
    )
    out = json.loads(
        _run(installed, "-c", script, EXAMPLES / "patient.json", cwd=tmp_path, env=_clean_env())
    )
    venv = installed.parents[1]
    assert Path(out["file"]).is_relative_to(venv)
    assert Path(out["model"]).is_relative_to(venv)
    assert out["model"].endswith("predictor/model/shipped")
    expected = predict(patient)
    assert out["probability"] == expected.probability
    assert tuple(out["interval"]) == expected.interval


@pytest.mark.slow
def test_wheel_score_command_scores_the_example_file_as_the_source_tree(
    installed: Path, tmp_path: Path
) -> None:
    _run(installed, "-m", "predictor", "score", EXAMPLES / "patients.csv", "--out", "scored.csv",
         cwd=tmp_path, env=_clean_env())  # fmt: skip
    scored = pd.read_csv(tmp_path / "scored.csv")
    _run(sys.executable, "-m", "predictor", "score", EXAMPLES / "patients.csv",
         "--out", "expected.csv", cwd=tmp_path)  # fmt: skip
    expected = pd.read_csv(tmp_path / "expected.csv")
    assert len(scored) > 0
    pd.testing.assert_frame_equal(scored, expected)


@pytest.mark.slow
def test_wheel_serves_the_page_from_the_installed_package(installed: Path, tmp_path: Path) -> None:
    script = (
        "import json, warnings, predictor\n"
        "warnings.simplefilter('ignore')\n"
        "from fastapi.testclient import TestClient\n"
        "from predictor.serve import create_app\n"
        "client = TestClient(create_app())\n"
        "page, css = client.get('/'), client.get('/static/page.css')\n"
        "p = client.post('/predict', json={'crp_mg_l': 0.9})\n"
        "print(json.dumps({'file': predictor.__file__, 'page': page.status_code,"
        " 'form': 'name=\"crp_mg_l\"' in page.text, 'css': css.status_code,"
        " 'probability': p.json()['probability']}))\n"
    )
    out = json.loads(_run(installed, "-c", script, cwd=tmp_path, env=_clean_env()))
    assert Path(out["file"]).is_relative_to(installed.parents[1])
    assert (out["page"], out["form"], out["css"]) == (200, True, 200)
    assert out["probability"] == predict({"crp_mg_l": 0.9}).probability
