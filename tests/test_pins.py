"""Every installed distribution pinned: constraints.txt covers what the requirements files pull in,
at one version each, and this venv holds nothing else (tools/pin_requirements.py writes the pins;
regenerating them needs PyPI, so it is not run here)."""

import shutil
from contextlib import chdir
from importlib.metadata import version

import pytest
from test_container import build_context, pick_buildpack

from conftest import REPO
from tools.pin_requirements import pin_problems, read_pins, unpinned_installed


def test_this_venv_holds_nothing_unpinned():
    constraints, problems = read_pins(REPO / "constraints.txt")
    assert problems == []
    assert unpinned_installed(constraints) == []


def test_the_direct_pins_agree_with_constraints_and_each_name_is_pinned_once():
    assert pin_problems(REPO) == []


@pytest.fixture
def pins_copy(tmp_path):
    for name in ("requirements.txt", "constraints.txt", "tests/requirements.txt"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        shutil.copy(REPO / name, tmp_path / name)
    return tmp_path


@pytest.mark.parametrize(
    "file, change, expected",
    [
        (
            "requirements.txt",
            lambda t: t + "seaborn==0.13.2\n",
            "requirements.txt: seaborn is not in constraints.txt",
        ),
        (
            "tests/requirements.txt",
            lambda t: t.replace("pytest==9.2.0", "pytest==9.1.0"),
            "constraints.txt pins 9.2.0",
        ),
        ("requirements.txt", lambda t: t.replace("tqdm==4.70.1", "tqdm>=4.70"), "'tqdm>=4.70' is not pinned"),
        ("constraints.txt", lambda t: t + "numpy==2.0.0\n", "numpy is pinned twice"),
    ],
)
def test_each_pin_check_names_the_package(pins_copy, file, change, expected):
    path = pins_copy / file
    path.write_text(change(path.read_text()))
    assert any(expected in problem for problem in pin_problems(pins_copy)), pin_problems(pins_copy)


def test_a_distribution_installed_but_not_pinned_is_named():
    constraints, _ = read_pins(REPO / "constraints.txt")
    del constraints["pebble"]
    assert unpinned_installed(constraints) == [f"pebble=={version('pebble')} (not pinned)"]


def test_constraints_txt_is_in_the_image_when_pip_reads_requirements_txt():
    """A `-c` line makes repo2docker install after copying the whole repository (its own rule for
    local references): the constraints are there, and the pip layer follows every change."""
    buildpack = pick_buildpack(REPO)
    with chdir(REPO):
        dockerfile = buildpack.render({"NB_USER": "crowdai", "NB_UID": "1001"})
    whole_repo = dockerfile.index("COPY --chown=1001:1001 src/ ${REPO_DIR}/")
    assert dockerfile.index('pip install --no-cache-dir -r "requirements.txt"') > whole_repo
    assert "src/constraints.txt" in build_context(REPO).getnames()
