#!/usr/bin/env python3
"""Install self-test, run by postBuild: fail the image build unless run.sh really works.

Generates a payload (a 6-s stereo clip and an empty file), runs run.sh on it as the grader would
(environment variables only, another working directory, CPU) and checks the CSV and the report.
Needs only the runtime requirements.
"""

import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from model.submission import HEADER  # noqa: E402


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        payload = Path(tmp) / "payload"
        payload.mkdir()
        rate = 44100
        t = np.arange(6 * rate) / rate
        chord = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6)) / 4
        sf.write(payload / "selftest clip.mp3", np.stack([chord, chord], axis=1).astype(np.float32), rate)
        (payload / "broken.mp3").write_bytes(b"")
        out, report = Path(tmp) / "out" / "output.csv", Path(tmp) / "report.json"
        env = {
            "PATH": os.environ["PATH"],
            "HOME": os.environ.get("HOME", tmp),
            "TEST_DIRECTORY": str(payload),
            "OUTPUT_PATH": str(out),
        }
        subprocess.run(
            [str(REPO / "run.sh"), "--device", "cpu", "--report", str(report)], env=env, cwd=tmp, check=True
        )

        with open(out, newline="") as file:
            rows = list(csv.reader(file))
        assert tuple(rows[0]) == HEADER, f"bad header: {rows[0]}"
        assert sorted(r[0] for r in rows[1:]) == ["broken", "selftest clip"], rows
        for row in rows[1:]:
            probs = np.array(row[1:], dtype=float)
            assert abs(probs.sum() - 1) < 1e-5 and probs.min() >= 1e-4, row
        statuses = {e["file_id"]: e["status"] for e in json.loads(report.read_text())}
        assert statuses == {"selftest clip": "ok", "broken": "fallback"}, statuses
    print("self-test passed: weights load, run.sh wrote a valid CSV")


if __name__ == "__main__":
    main()
