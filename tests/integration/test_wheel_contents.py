"""The wheel and the sdist that ``make dist`` builds are complete: every file under src/shoal
(modules and the package data the code loads at run time: privacy, escalation, red-flag and reply
packs, lexicons, the guard model, py.typed) is in both, derived from the source tree, so a new
data file without a ``[tool.setuptools.package-data]`` entry fails here. Nothing else is in the
wheel but its metadata.

The sdist carries pyproject.toml, README.md, LICENSE and src/ (the wheel the LICENSE too); not
tests/: they need the checkout's examples, docs, benchmarks and the dev extra, so they are run
from the checkout.

The archives are the session's ``shoal_dist``, the build tests/integration/test_core_install.py
installs, so they are built once per session.
"""

from __future__ import annotations

import tarfile
import zipfile
from email.parser import Parser

import pytest

from tests.conftest import REPO
from tests.integration.test_core_install import ShoalDist, is_junk, source_files
from tests.integration.test_core_install import shoal_dist as shoal_dist  # the shared fixture

pytestmark = [pytest.mark.integration, pytest.mark.slow]

def _expected(dist: ShoalDist) -> set[str]:
    # The source tree as the build saw it: the copy of src/shoal, taken with the same filter.
    files = source_files(dist.package)
    # The run-time data must be there at all, or the check below proves little.
    assert {"py.typed", "policies/privacy/packs/hipaa_safe_harbor.yaml"} <= files
    return files


def _version() -> str:
    for line in (REPO / "pyproject.toml").read_text(encoding="utf-8").splitlines():
        if line.startswith("version = "):
            return line.split("=", 1)[1].strip().strip('"')
    raise AssertionError("pyproject.toml has no version")


def test_the_wheel_has_every_source_and_data_file(shoal_dist: ShoalDist) -> None:
    with zipfile.ZipFile(shoal_dist.wheel) as wheel:
        names = [n for n in wheel.namelist() if not n.endswith("/")]
        dist_info = f"shoal-{_version()}.dist-info/"
        shipped = {n.removeprefix("shoal/") for n in names if n.startswith("shoal/")}
        expected = _expected(shoal_dist)
        missing = sorted(expected - shipped)
        assert not missing, f"not in the wheel (add to [tool.setuptools.package-data]): {missing}"
        assert sorted(shipped - expected) == [], "the wheel has files src/shoal does not"
        assert not [n for n in names if any(is_junk(p) for p in n.split("/"))]
        others = sorted(n for n in names
                        if not n.startswith(("shoal/", dist_info)))
        assert others == [], "the wheel installs more than the shoal package"
        entry_points = wheel.read(dist_info + "entry_points.txt").decode()
        assert "shoal = shoal.cli:main" in entry_points
        metadata = Parser().parsestr(wheel.read(dist_info + "METADATA").decode())
    assert metadata["Name"] == "shoal" and metadata["Version"] == _version()
    assert metadata.get_payload().strip(), "the README is the wheel's long description"
    assert metadata["License-Expression"] == "Apache-2.0"
    assert metadata["License-File"] == "LICENSE"
    assert dist_info + "licenses/LICENSE" in names


def test_the_sdist_has_the_sources_and_no_tests(shoal_dist: ShoalDist) -> None:
    with tarfile.open(shoal_dist.sdist) as sdist:
        names = [m.name for m in sdist.getmembers() if m.isfile()]
    top = f"shoal-{_version()}/"
    assert all(n.startswith(top) for n in names), names[:5]
    inside = {n.removeprefix(top) for n in names}
    assert {"pyproject.toml", "README.md", "PKG-INFO"} <= inside
    assert "LICENSE" in inside
    shipped = {n.removeprefix("src/shoal/") for n in inside if n.startswith("src/shoal/")}
    missing = sorted(_expected(shoal_dist) - shipped)
    assert not missing, f"not in the sdist: {missing}"
    assert not [n for n in inside if n.startswith("tests/")]
    assert not [n for n in inside
                if any(is_junk(p) for p in n.split("/") if not p.endswith(".egg-info"))]
