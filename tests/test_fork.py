"""Forking to compete: the README's "Add your network" file, dropped into a scratch copy of the
repository with no other edit, passes the architecture contract, trains with
`train.py --architecture`, exports to ONNX Runtime and predicts through run.sh; a broken network
file is reported by name while the others still load."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, make_fma_dataset


def scratch_copy(target: Path) -> Path:
    """The working tree as git sees it (tracked and new files, nothing ignored)."""
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-co", "--exclude-standard", "-z"],
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        if (REPO / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, target / name)
    return target


def readme_network() -> tuple[str, str]:
    """(relative path, source) of the example network in the README."""
    readme = (REPO / "README.md").read_text()
    source = re.search(r"```python\n(# (model/networks/\w+\.py)\n.*?)```", readme, re.S)
    return source.group(2), source.group(1)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_the_readme_network_trains_exports_and_predicts_through_run_sh_with_no_other_edit(tmp_path):
    repo = scratch_copy(tmp_path / "repo")
    relative, source = readme_network()
    name = Path(relative).stem
    (repo / relative).write_text(source)
    python = [sys.executable]

    def run(*arguments: str, env: dict | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([*python, *arguments], capture_output=True, text=True, cwd=repo, env=env)

    contract = run("-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_architectures.py", "-k", name)
    assert contract.returncode == 0, contract.stdout[-3000:]
    assert re.search(r"(\d+) passed", contract.stdout).group(1) == "4"  # every contract test ran on it

    (repo / "model" / "networks" / "broken.py").write_text("import no_such_module\n")
    helped = run("train.py", "--help")
    assert helped.returncode == 0 and name in " ".join(helped.stdout.split())
    assert "model/networks/broken.py failed to import" in helped.stderr
    assert "ModuleNotFoundError: No module named 'no_such_module'" in helped.stderr

    metadata, audio = make_fma_dataset(tmp_path / "fma", per_split=(10, 3, 3), seconds=2.5)
    trained = run(
        *("train.py", "--metadata", str(metadata), "--audio", str(audio), "--run-dir", str(tmp_path / "run")),
        *("--architecture", name, "--hparams", '{"width": 8}', "--members", "1", "--epochs", "2"),
        *(
            "--chunk-seconds",
            "1",
            "--batch-size",
            "8",
            "--min-epoch-steps",
            "4",
            "--device",
            "cpu",
            "--workers",
            "0",
        ),
        *("--cache", str(tmp_path / "cache")),
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    promoted = run("tools/promote_run.py", str(tmp_path / "run"))
    assert promoted.returncode == 0, promoted.stderr

    out = tmp_path / "out.csv"
    env = {**os.environ, "TEST_DIRECTORY": str(repo / "examples"), "OUTPUT_PATH": str(out)}
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"  # run.sh's python3: this venv's
    predicted = subprocess.run([str(repo / "run.sh")], capture_output=True, text=True, cwd="/", env=env)
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    assert "(onnxruntime)" in predicted.stderr and "stays on torch" not in predicted.stderr  # exported
    valid = run("evaluate.py", str(out), "--payload", str(repo / "examples"))
    assert valid.returncode == 0, valid.stderr
