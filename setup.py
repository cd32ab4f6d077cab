"""Build step that pyproject.toml cannot declare: the wheel carries the shipped model.

``models/`` at the top of the repository is the model's one source (``python train.py`` writes
it); it is not inside a package, so a plain wheel would leave it out and ``predict()`` would find
no model after ``pip install .``. ``build_py`` copies it into the built package as
``predictor/model/shipped/``, where ``predictor.model._artifact`` looks when the package is not
running from a source checkout. The copy goes with the model's card and evaluation report, which
the card links to (``report.md``, ``metrics.json``, ``figures/``), so the card reads whole.
``MANIFEST.in`` puts ``models/`` in the sdist, so a wheel built from the sdist has it too. An
editable install reads ``models/`` in place, and gets no copy.

Everything else is configured in pyproject.toml.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

MODELS = Path(__file__).resolve().parent / "models"
PACKAGED_AT = ("predictor", "model", "shipped")
REQUIRED = ("model.json", "manifest.json", "MODEL_CARD.md")
REPORT = ("report.md", "metrics.json", "figures/*.png")


def shipped_files() -> list[Path]:
    """The files of ``models/`` that the wheel carries, relative to ``models/``."""
    missing = [name for name in REQUIRED if not (MODELS / name).is_file()]
    if missing:
        raise SystemExit(
            f"error: {', '.join(missing)} missing from {MODELS}: the wheel would have no "
            "shipped model; run `python train.py` first"
        )
    files = [Path(name) for name in REQUIRED]
    for pattern in REPORT:
        files += sorted(path.relative_to(MODELS) for path in MODELS.glob(pattern))
    return files


class BuildPyWithModel(build_py):
    """``build_py`` that also copies the shipped model into the built package."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:  # the package reads models/ of its checkout
            return
        target = Path(self.build_lib, *PACKAGED_AT)
        for name in shipped_files():
            self.mkpath(str((target / name).parent))
            self.copy_file(str(MODELS / name), str(target / name))

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs = super().get_outputs(include_bytecode)
        if self.editable_mode:
            return outputs
        target = Path(self.build_lib, *PACKAGED_AT)
        return [*outputs, *(str(target / name) for name in shipped_files())]


setup(cmdclass={"build_py": BuildPyWithModel})
