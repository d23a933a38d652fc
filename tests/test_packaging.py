"""What `pip install .` ships: every data folder under instances/ must be listed as package data.

If this test failed: a new folder of data files was added under ``instances/`` but not to
``[tool.setuptools.package-data]`` (key ``"infecon.instances"``) in ``pyproject.toml``; an editable install
still finds it, a real install (CI, users) does not. Add ``"<folder>/*.<ext>"`` there.
"""

import tomllib
from importlib.metadata import distribution
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_instances_data_folder_is_package_data():
    """Each folder of instances/ that holds data files matches a package-data pattern."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = setuptools["package-data"]["infecon.instances"]
    shipped = {path for pattern in patterns for path in (ROOT / "instances").glob(pattern)}
    data = {path for path in (ROOT / "instances").rglob("*")
            if path.is_file() and path.suffix not in (".py", ".pyc", ".md") and "__pycache__" not in path.parts}
    assert data - shipped == set(), f"not shipped by pip install: {sorted(str(p) for p in data - shipped)}"


def test_the_only_top_level_package_is_infecon():
    """`pip install .` must not put generic names (solver, formulations, instances) into site-packages."""
    top_level = distribution("infecon").read_text("top_level.txt")
    assert top_level is not None, "infecon is not installed: run the README's install command first"
    assert top_level.split() == ["infecon"]


def test_every_subpackage_is_listed():
    """A folder with an ``__init__.py`` under solver/, formulations/ or instances/ is in pyproject's package list
    (else ``pip install .`` leaves it out and only an editable install works)."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {"infecon." + ".".join(init.parent.relative_to(ROOT).parts)
             for folder in ("solver", "formulations", "instances") for init in (ROOT / folder).rglob("__init__.py")}
    assert found - listed == set()
