"""A training run's record: what made it, how it went, and what each member predicted.

Besides its checkpoints and its ensemble, a run folder (train.py's `--run-dir`, by default
runs/<date>-<time>/) holds:
- `config.json`: every option, the command line, the git commit (and whether the tree had
  uncommitted changes), a SHA-256 of the training index (which clips, labels and splits), the
  members' full configurations and the library versions. Written when the run starts; a resumed
  run keeps it.
- TensorBoard event files: per optimizer step each member's training loss and learning rate; per
  epoch its validation log loss, accuracy and ECE and the epoch's time; at the end the ensemble's
  validation and test scores. `tensorboard --logdir runs` shows every run side by side.
- `predictions.npz`: every member's validation and test log-probabilities with the clips' keys
  and labels, written when the run ends, so that tools/runs.py can combine members of several
  runs without running a network again.
Only rank 0 writes them (under torchrun).
"""

from __future__ import annotations

import hashlib
import io
import json
import platform
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .atomic import write_atomic
from .stopping import out_of_space

CONFIG, PREDICTIONS, REPORT, MANIFEST = "config.json", "predictions.npz", "report.json", "manifest.json"
REPO = Path(__file__).resolve().parent.parent


def git_state(repo: Path = REPO) -> dict:
    """{"commit": ..., "dirty": bool}, or {"commit": None} outside a git checkout."""

    def git(*arguments: str) -> str | None:
        try:
            result = subprocess.run(["git", "-C", str(repo), *arguments], capture_output=True, text=True)
        except OSError:
            return None
        return result.stdout.strip() if result.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    return {"commit": commit, "dirty": bool(git("status", "--porcelain"))} if commit else {"commit": None}


def index_digest(tracks: pd.DataFrame) -> str:
    """SHA-256 of the training index (key, genre, split of every track, sorted by key): two runs
    trained on the same data have the same digest."""
    rows = tracks[["key", "genre", "split"]].astype(str).sort_values("key")
    return hashlib.sha256(rows.to_csv(index=False).encode()).hexdigest()


def write_config(run_dir: Path, options: dict, tracks: pd.DataFrame, plans: list) -> None:
    """`config.json` (see the module docstring), unless the run folder has one (a resumed run)."""
    path = Path(run_dir) / CONFIG
    if path.exists():
        return
    counts = tracks["split"].value_counts()
    config = {
        "command": sys.argv,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in options.items()},
        "git": git_state(),
        "data": {
            "training_index_sha256": index_digest(tracks),
            "tracks": {split: int(counts.get(split, 0)) for split in ("training", "validation", "test")},
        },
        "members": [
            {**asdict(member), "spectrogram": spectrogram.to_dict()} for member, spectrogram in plans
        ],
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": np.__version__,
            "host": platform.node(),
        },
    }
    write_atomic(path, (json.dumps(config, indent=1, default=str) + "\n").encode())


class RunLog:
    """TensorBoard event files in the run folder (a no-op where `enabled` is False: ranks > 0)."""

    def __init__(self, run_dir: Path, enabled: bool = True):
        self.writer = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(run_dir))

    def epoch(self, member: str, entry: dict, steps_per_epoch: int) -> None:
        """One epoch of `member` (a history entry with its per-step losses and learning rates)."""
        first = (entry["epoch"] - 1) * steps_per_epoch
        scalars = [(f"{member}/train_loss", loss, first + i) for i, loss in enumerate(entry["step_losses"])]
        scalars += [(f"{member}/lr", lr, first + i) for i, lr in enumerate(entry["step_lrs"])]
        tags = {"valid_log_loss": "valid_loss", "valid_accuracy": "valid_accuracy", "valid_ece": "valid_ece"}
        for tag, key in {**tags, "epoch_seconds": "seconds"}.items():
            scalars.append((f"{member}/{tag}", entry[key], entry["epoch"]))
        self._write(scalars)

    def ensemble(self, scores: dict[str, float]) -> None:
        self._write([(f"ensemble/{name}", value, 0) for name, value in scores.items()])

    def _write(self, scalars: list[tuple[str, float, int]]) -> None:
        if self.writer is None:
            return
        try:
            for tag, value, step in scalars:
                self.writer.add_scalar(tag, value, step)
            self.writer.flush()
        except OSError as error:  # the event writer's thread reports a full disk here
            raise out_of_space(error, self.writer.log_dir) from None

    def close(self) -> None:
        if self.writer is not None:
            try:
                self.writer.close()
            except OSError:  # reported by the write that failed; the curves so far stay readable
                pass


def save_predictions(run_dir: Path, splits: dict[str, tuple], member_log_probs: dict[str, list]) -> None:
    """`predictions.npz`: for each split name, (keys, labels) of its clips, and each member's
    (clips, classes) log-probabilities on it, in `member_log_probs[split]` (member order)."""
    arrays = {}
    for split, (keys, labels) in splits.items():
        arrays[f"{split}/keys"] = np.array(keys, dtype=str)
        arrays[f"{split}/labels"] = np.asarray(labels, dtype=np.int64)
        for name, log_probs in member_log_probs[split]:
            arrays[f"{split}/{name}"] = np.asarray(log_probs, dtype=np.float32)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    write_atomic(Path(run_dir) / PREDICTIONS, buffer.getvalue())


def load_predictions(run_dir: Path) -> dict[str, dict]:
    """{split: {"keys": array, "labels": array, "members": {name: (clips, classes) array}}}."""
    out: dict[str, dict] = {}
    with np.load(Path(run_dir) / PREDICTIONS) as data:
        for name in data.files:
            split, field = name.split("/", 1)
            entry = out.setdefault(split, {"members": {}})
            if field in ("keys", "labels"):
                entry[field] = data[name]
            else:
                entry["members"][field] = data[name]
    return out
