#!/usr/bin/env bash
# Grader entry point: /home/crowdai/run.sh in the repo2docker image.
# Reads the mp3s in $TEST_DIRECTORY (default /crowdai-payload) and writes the genre CSV to
# $OUTPUT_PATH (default /tmp/output.csv). Works from any directory and any install location;
# extra arguments go to predict.py (e.g. --device cpu).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python=python3
if [[ -x "$here/.venv/bin/python" ]]; then python="$here/.venv/bin/python"; fi  # a local install
exec "$python" "$here/predict.py" \
  --payload "${TEST_DIRECTORY:-/crowdai-payload}" \
  --out "${OUTPUT_PATH:-/tmp/output.csv}" \
  "$@"
