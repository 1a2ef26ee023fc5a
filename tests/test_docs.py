"""The README and docs/ cannot drift from the code: every relative link and #anchor resolves, every
command in their bash blocks names a script that exists and only options its --help lists, and
the package index in model/__init__.py names every module of model/. Each check is a function of
the files, so the tests also show it failing on a copy broken on purpose."""

from __future__ import annotations

import ast
import functools
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

FENCE = re.compile(r"^(```|~~~)")


def documents(repo: Path = REPO) -> list[Path]:
    return [repo / "README.md", *sorted((repo / "docs").glob("*.md"))]


def prose_and_blocks(path: Path) -> tuple[list[tuple[int, str]], list[tuple[str, str]]]:
    """(numbered lines outside code fences, [(language, text) of each fenced block])."""
    prose, blocks, block, language = [], [], None, ""
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if FENCE.match(line):
            if block is None:
                block, language = [], line.strip("`~ ").lower()
            else:
                blocks.append((language, "\n".join(block)))
                block = None
        elif block is not None:
            block.append(line)
        else:
            prose.append((number, line))
    return prose, blocks


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of `path`'s headings; a repeated heading gets -1, -2, ... as on GitHub."""
    counts: dict[str, int] = {}
    found = set()
    for _, line in prose_and_blocks(path)[0]:
        if match := re.match(r"#{1,6} (.+)", line):
            base = slug(match.group(1))
            found.add(base if base not in counts else f"{base}-{counts[base]}")
            counts[base] = counts.get(base, 0) + 1
    return found


def broken_links(paths: list[Path]) -> list[str]:
    """Every relative link or #anchor in `paths` that leads nowhere, as 'file:line: target'."""
    problems = []
    for path in paths:
        for number, line in prose_and_blocks(path)[0]:
            for target in re.findall(r"\]\(([^)\s]+)\)", line):
                if re.match(r"[a-z]+:", target):  # https:, mailto:
                    continue
                file, _, anchor = target.partition("#")
                goal = (path.parent / file).resolve() if file else path
                if not goal.exists():
                    problems.append(f"{path.name}:{number}: {target} (no such file)")
                elif anchor and goal.suffix == ".md" and anchor not in anchors(goal):
                    problems.append(f"{path.name}:{number}: {target} (no such heading in {goal.name})")
    return problems


def commands(path: Path) -> list[tuple[int, list[str]]]:
    """The commands of the bash blocks of `path`, as (block number, tokens), one per pipeline part."""
    found = []
    for index, (language, text) in enumerate(prose_and_blocks(path)[1]):
        if language not in ("bash", "sh", "shell"):
            continue
        for line in text.replace("\\\n", " ").splitlines():
            line = re.split(r"\s#\s|^#", line)[0]  # comments
            for part in re.split(r"&&|\|\||\||;", line):
                try:
                    tokens = shlex.split(part)
                except ValueError:
                    continue
                if tokens:
                    found.append((index, tokens))
    return found


def command_problems(paths: list[Path], help_of, repo: Path = REPO) -> list[str]:
    """Scripts of this repository that a documented command runs but that do not exist, and
    options it passes that the script's --help does not list (`help_of(script, subcommand)`)."""
    problems = []
    for path in paths:
        for _, tokens in commands(path):
            if "pytest" in tokens:
                continue  # pytest's own options
            script = next((t for t in tokens if re.fullmatch(r"\.?[\w./-]+\.(py|sh)", t)), None)
            if script is None or script.startswith(("/", "-")):
                continue
            if not (repo / script).is_file():
                problems.append(f"{path.name}: {script} does not exist ({' '.join(tokens)})")
                continue
            if not script.endswith(".py"):
                continue
            after = tokens[tokens.index(script) + 1 :]
            after = after[: after.index("--")] if "--" in after else after  # what follows goes elsewhere
            subcommand = after[0] if after and re.fullmatch(r"[a-z]+", after[0]) else None
            text = help_of(script, subcommand) if subcommand else None
            text = text or help_of(script, None)
            for option in (t.split("=")[0] for t in after if t.startswith("--")):
                if not re.search(rf"{re.escape(option)}\b", text):
                    problems.append(f"{path.name}: {script} has no option {option} ({' '.join(tokens)})")
    return problems


@functools.cache
def script_help(script: str, subcommand: str | None) -> str | None:
    """`python script [subcommand] --help`, or None if that is not a subcommand."""
    result = subprocess.run(
        [sys.executable, script, *([subcommand] if subcommand else []), "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    return " ".join(result.stdout.split()) if result.returncode == 0 else None


def index_problems(repo: Path = REPO) -> list[str]:
    """Modules of model/ that its package docstring does not name, and names that are no module."""
    docstring = ast.get_docstring(ast.parse((repo / "model" / "__init__.py").read_text())) or ""
    entries = [line[2:].split("  ")[0] for line in docstring.splitlines() if line.startswith("- ")]
    named = {name for entry in entries for name in re.findall(r"`(\w+)`", entry)}  # before the description
    modules = {p.stem for p in (repo / "model").glob("*.py") if p.stem != "__init__"}
    modules |= {p.parent.name for p in (repo / "model").glob("*/__init__.py")}
    return [f"model/{m} is not in model/__init__.py's index" for m in sorted(modules - named)] + [
        f"model/__init__.py's index names {n}, which is no module" for n in sorted(named - modules)
    ]


def test_every_link_and_anchor_resolves():
    assert broken_links(documents()) == []


def test_the_package_index_names_every_module():
    assert index_problems() == []


@pytest.mark.slow
def test_every_documented_command_runs_a_script_with_options_it_has():
    assert command_problems(documents(), script_help) == []


@pytest.fixture
def docs_copy(tmp_path) -> Path:
    for name in ("README.md", "docs", "model", "examples", "index.ipynb"):
        source, target = REPO / name, tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if source.is_dir() else shutil.copy)(source, target)
    return tmp_path


def test_each_check_fails_when_broken(docs_copy):
    readme = docs_copy / "README.md"
    readme.write_text(
        readme.read_text()
        + "\nSee [nowhere](docs/nowhere.md) and [a heading](docs/training.md#no-such-heading).\n"
        + "```bash\n.venv/bin/python predict.py --payload x --frobnicate 3\npython tools/no_such_tool.py\n```\n"
    )
    assert [p.split(": ", 1)[1] for p in broken_links([readme])] == [
        "docs/nowhere.md (no such file)",
        "docs/training.md#no-such-heading (no such heading in training.md)",
    ]
    fake_help = lambda script, sub: "usage: predict.py --payload PAYLOAD --out OUT" if not sub else None  # noqa: E731
    problems = command_problems([readme], fake_help, repo=REPO)
    assert any("predict.py has no option --frobnicate" in p for p in problems)
    assert any("tools/no_such_tool.py does not exist" in p for p in problems)
    (docs_copy / "model" / "extra.py").write_text("")
    (docs_copy / "model" / "audio.py").unlink()
    assert index_problems(docs_copy) == [
        "model/extra is not in model/__init__.py's index",
        "model/__init__.py's index names audio, which is no module",
    ]
