"""The image repo2docker would build, checked with repo2docker's own code and no docker engine.

The checks are functions of a repository folder, so the tests can also show that each one fails
on a copy of the repository broken on purpose.
"""

import ast
import importlib.metadata
import io
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
from contextlib import chdir
from pathlib import Path

import pytest
from repo2docker.app import Repo2Docker

from conftest import REPO

BUILD_ARGS = {"NB_USER": "crowdai", "NB_UID": "1001"}
SUPPORTED_PYTHON = "3.11"  # torch==2.13.0 and every pin are tested on it
MAX_CONTEXT_MB = (
    100  # catches a cache or dataset swept into the image; a trained 3 CNN + 2 head ensemble is ~24 MB
)
OVERRIDES = (
    "environment.yml",
    "Pipfile",
    "Pipfile.lock",
    "Dockerfile",
    "binder",
    ".binder",
    "setup.py",
    "start",
)
RUNTIME_FILES = (
    "predict.py",
    "train.py",
    "evaluate.py",
    "tests/selftest.py",
    *map(str, Path("model").glob("*.py")),
)


def pick_buildpack(repo: Path):
    """The buildpack repo2docker picks for `repo`, as its app does (first whose detect() is true)."""
    app = Repo2Docker()
    with chdir(repo):
        for buildpack_class in app.buildpacks:
            buildpack = buildpack_class(base_image=app.base_image)
            if buildpack.detect():
                buildpack.platform = "linux/amd64"
                return buildpack
    raise AssertionError("no buildpack detected")


class CapturingClient:
    """Stands in for the docker engine: keeps the build context repo2docker hands it."""

    def build(self, fileobj, **kwargs):
        self.context = fileobj.getvalue()
        yield from ()


def build_context(repo: Path) -> tarfile.TarFile:
    buildpack = pick_buildpack(repo)
    client = CapturingClient()
    with chdir(repo):
        list(buildpack.build(client, "emulated", 0, BUILD_ARGS, [], {}))
    return tarfile.open(fileobj=io.BytesIO(client.context))


def image_problems(repo: Path) -> list[str]:
    """Everything that would make the image differ from what the grader needs."""
    problems = []
    for name in OVERRIDES:
        if (repo / name).exists():
            problems.append(f"{name} exists: repo2docker would use it instead of requirements.txt")
    pyproject = repo / "pyproject.toml"
    if pyproject.exists() and re.search(r"^\[project\]", pyproject.read_text(), re.M):
        problems.append("pyproject.toml has [project]: repo2docker would pip install the repo")
    buildpack = pick_buildpack(repo)
    if type(buildpack).__name__ != "PythonBuildPack":
        problems.append(f"repo2docker picks {type(buildpack).__name__}, not PythonBuildPack")
        return problems
    try:
        with chdir(repo):  # repo2docker reads apt.txt, runtime.txt, ... relative to the cwd
            version = buildpack.python_version
            dockerfile = buildpack.render(BUILD_ARGS)
    except ValueError as error:  # e.g. runtime.txt "python-3.11.4": a build error in repo2docker
        return problems + [f"repo2docker refuses the repository: {error}"]
    wanted = (repo / "runtime.txt").read_text().strip().removeprefix("python-")
    if version != wanted:
        problems.append(f"image Python {version}, runtime.txt asks {wanted}")
    if version != SUPPORTED_PYTHON:
        problems.append(f"image Python {version}; the project needs {SUPPORTED_PYTHON}")
    if not re.search(r"pip install .*-r \"?requirements\.txt", dockerfile):
        problems.append("the Dockerfile does not install requirements.txt")
    if "postBuild" not in dockerfile:
        problems.append("the Dockerfile does not run postBuild")
    for package in apt_packages(repo):
        if not re.search(rf"apt-get .*install[^\n]*\b{re.escape(package)}\b", dockerfile, re.S):
            problems.append(f"the Dockerfile does not apt-get install {package}")

    context = build_context(repo)
    members = {m.name: m for m in context.getmembers()}
    for script in ("src/run.sh", "src/postBuild"):
        member = members.get(script)
        if member is None:
            problems.append(f"{script} is not in the build context")
            continue
        if member.mode & 0o777 != 0o755:
            problems.append(f"{script} has mode {oct(member.mode & 0o777)}, needs 0o755")
        raw = context.extractfile(member).read()
        if b"\r" in raw:
            problems.append(f"{script} has CRLF line ends")
        if not raw.startswith(b"#!"):
            problems.append(f"{script} does not start with a shebang on line 1")
    for name in members:
        parts = name.split("/")
        if parts[0] == "src" and any(
            p in {".git", ".venv", "venv", "cache", "data", "runs", "__pycache__"} for p in parts
        ):
            problems.append(f"{name} is in the build context")
            break
    for name, member in members.items():
        if name.startswith("src/weights/") and member.isfile():
            if context.extractfile(member).read(100).startswith(b"version https://git-lfs"):
                problems.append(f"{name} is a Git LFS pointer")
    size = sum(m.size for m in members.values()) / 2**20
    if size > MAX_CONTEXT_MB:
        problems.append(f"build context is {size:.0f} MB (limit {MAX_CONTEXT_MB} MB)")
    return problems


def apt_packages(repo: Path) -> list[str]:
    lines = (repo / "apt.txt").read_text().splitlines()
    return [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]


def pinned_distributions(repo: Path) -> set[str]:
    """The distribution names requirements.txt pins, normalised."""
    return {
        re.split(r"[=<>\[; ]", line)[0].lower().replace("_", "-")
        for line in (repo / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith(("#", "-"))  # "-c constraints.txt" names no package
    }


def third_party_imports(source: str, local: set[str]) -> set[str]:
    """Top-level modules `source` imports absolutely, less the standard library and `local`."""
    tops = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            tops |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            tops.add(node.module.split(".")[0])
    return {top for top in tops if top not in sys.stdlib_module_names and top not in local}


def missing_requirements(repo: Path) -> list[str]:
    """Third-party modules imported by the runtime code but provided by no package in requirements.txt."""
    pinned, providers = pinned_distributions(repo), importlib.metadata.packages_distributions()
    local = {p.stem for p in repo.glob("*.py")} | {"model"}
    missing = set()
    for relative in RUNTIME_FILES:
        for top in third_party_imports((repo / relative).read_text(), local):
            if not {d.lower().replace("_", "-") for d in providers.get(top, [])} & pinned:
                missing.add(f"{top} (imported in {relative})")
    return sorted(missing)


def notebook_imports_missing(repo: Path) -> list[str]:
    """Modules index.ipynb imports that neither requirements.txt nor repo2docker's base environment
    (its conda lock for Python 3.11: Jupyter, IPython, ipywidgets) provides."""
    import repo2docker

    lock = Path(repo2docker.__file__).parent / "buildpacks" / "conda" / "environment.py-3.11-linux-64.lock"
    base = {
        re.sub(r"-[^-]+-[^-]+$", "", line.rsplit("/", 1)[-1].split(".conda")[0].split(".tar.bz2")[0])
        for line in lock.read_text().splitlines()
        if line.startswith("http")
    }
    available, providers = pinned_distributions(repo) | base, importlib.metadata.packages_distributions()
    cells = json.loads((repo / "index.ipynb").read_text())["cells"]
    missing = set()
    for cell in (c for c in cells if c["cell_type"] == "code"):
        for top in third_party_imports("".join(cell["source"]), {"model"}):
            if not {d.lower().replace("_", "-") for d in providers.get(top, [top])} & available:
                missing.add(top)
    return sorted(missing)


def test_the_notebook_imports_only_what_the_image_has():
    assert notebook_imports_missing(REPO) == []


def test_repo2docker_builds_the_image_the_grader_needs():
    assert image_problems(REPO) == []


def test_every_runtime_import_is_pinned_in_requirements():
    assert missing_requirements(REPO) == []


@pytest.fixture
def broken_copy(tmp_path) -> Path:
    copy = tmp_path / "repo"
    shutil.copytree(
        REPO, copy, ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__", "cache", "runs")
    )
    return copy


def drop_dockerignore_with_a_cache(repo: Path) -> None:
    (repo / "cache").mkdir()
    (repo / "cache" / "features.f16").write_bytes(b"0" * 100)
    (repo / ".dockerignore").unlink()


@pytest.mark.parametrize(
    "breakage, expected",
    [
        (lambda r: os.chmod(r / "run.sh", 0o644), "src/run.sh has mode 0o644"),
        (lambda r: (r / "run.sh").write_bytes((r / "run.sh").read_bytes().replace(b"\n", b"\r\n")), "CRLF"),
        (lambda r: (r / "run.sh").write_text("\n" + (r / "run.sh").read_text()), "shebang"),
        (
            lambda r: (r / "environment.yml").write_text("dependencies: [python=3.11]\n"),
            "environment.yml exists",
        ),
        (lambda r: (r / "runtime.txt").write_text("python-3.10\n"), "the project needs 3.11"),
        (lambda r: (r / "runtime.txt").write_text("python-3.11.4\n"), "must always be specified as 'x.y'"),
        (lambda r: (r / "apt.txt").write_text("sox\n"), None),  # a real package: must appear, no problem
        (
            lambda r: (r / "weights" / "big.pt").write_text("version https://git-lfs.github.com/spec/v1\n"),
            "LFS pointer",
        ),
        (lambda r: drop_dockerignore_with_a_cache(r), "src/cache"),
    ],
)
def test_each_image_check_fails_when_broken(broken_copy, breakage, expected):
    breakage(broken_copy)
    problems = image_problems(broken_copy)
    if expected is None:
        assert problems == []
    else:
        assert any(expected in p for p in problems), problems


def test_a_package_missing_from_requirements_is_caught(broken_copy):
    requirements = broken_copy / "requirements.txt"
    requirements.write_text(requirements.read_text().replace("soxr==", "# soxr=="))
    assert missing_requirements(broken_copy) == ["soxr (imported in model/audio.py)"]


@pytest.mark.skipif(
    subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True).returncode,
    reason="needs a git checkout",
)
@pytest.mark.slow
def test_grader_run_emulation_of_the_committed_tree():
    """Full script, borrowing this venv's packages (.ci/run also runs it with a fresh venv)."""
    site = sysconfig.get_paths()["purelib"]
    result = subprocess.run(
        ["bash", str(REPO / "tests" / "container" / "emulate.sh"), "--reuse-site", site],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "emulation passed" in result.stdout
    assert "no network attempted" in result.stdout


def test_a_notebook_import_the_image_lacks_is_caught(tmp_path):
    (tmp_path / "requirements.txt").write_text((REPO / "requirements.txt").read_text())
    notebook = json.loads((REPO / "index.ipynb").read_text())
    notebook["cells"].append(
        {
            "cell_type": "code",
            "metadata": {},
            "outputs": [],
            "execution_count": None,
            "source": ["import seaborn\n", "from IPython.display import Audio"],
        }
    )
    (tmp_path / "index.ipynb").write_text(json.dumps(notebook))
    assert notebook_imports_missing(tmp_path) == ["seaborn"]
