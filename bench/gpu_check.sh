#!/usr/bin/env bash
# The CUDA path in one command: everything the README still marks "not yet run on a GPU", measured
# on whatever GPU runs this, in about 8 minutes on one H100/H200-class machine.
#
#   bash bench/gpu_check.sh --fetch-wheels      # on a machine with pip access: the cp312 wheels into .whl/
#   bash bench/gpu_check.sh [--out DIR]         # on the GPU machine (installs .whl/ if imports are missing)
#   bash bench/gpu_check.sh --tiny --out DIR    # every step at toy size on the CPU, ~2 min (tests/test_gpu_check.py)
#
# Steps, each under a timeout taken from one overall budget, each recorded even when it fails, so
# one failure still leaves the other figures:
#   wheels      install the carried wheels (soundfile, av, soxr, librosa, pebble, lameenc + deps)
#   machine     torch, CUDA, GPU name, nvidia-smi
#   generate    an FMA-shaped synthetic dataset (bench/fma_shaped.py) on every core
#   throughput  bench/train.py: decode-only vs feature-cache build; one default member's training
#               crops/s, GPU utilisation, peak GPU memory; projected wall time on FMA-medium
#   ensemble    train.py's default 3-member ensemble for a few epochs on the FMA-shaped dataset
#   crnn        the same with --architecture crnn (model/networks/crnn.py): one more row
#               (GPU-resident features, bf16): test log loss against the prior, temperature
#   predict     bench/predict.py with that ensemble and with the shipped zero-shot weights:
#               decode-only vs end to end
#   cuda_tests  the CUDA-only tests (CPU and CUDA agree: log-mel, ensemble)
#   suite       the test suite on the GPU machine with whatever budget is left (not with --tiny)
# Writes DIR/gpu_check.log (everything printed), DIR/gpu_check.json (every step's status, time and
# figures) and DIR/train.log (train.py's own log).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

usage() { echo "usage: bash bench/gpu_check.sh [--tiny] [--out DIR] [--work DIR] [--budget SECONDS] [--tracks N] | --fetch-wheels"; }
TINY=0 OUT=gpu-check-out WORK="" BUDGET=540 TRACKS="" FETCH=0
while (($#)); do
  case $1 in
    --tiny) TINY=1 ;;
    --out) OUT=${2:?--out needs a folder}; shift ;;
    --work) WORK=${2:?--work needs a folder}; shift ;;
    --budget) BUDGET=${2:?--budget needs seconds}; shift ;;
    --tracks) TRACKS=${2:?--tracks needs a number}; shift ;;
    --fetch-wheels) FETCH=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "gpu_check.sh: error: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
[[ $BUDGET =~ ^[0-9]+$ ]] || { echo "gpu_check.sh: error: --budget must be whole seconds, got '$BUDGET'" >&2; exit 2; }
[[ -z $TRACKS || $TRACKS =~ ^[0-9]+$ ]] || { echo "gpu_check.sh: error: --tracks must be a number, got '$TRACKS'" >&2; exit 2; }
PY=${PYTHON:-python3}

# The GPU machine has Python 3.12 with torch but none of the audio stack: these travel as wheels.
# Their versions are the ones constraints.txt pins (one pin per package in the repository).
WHEELS=()
for name in soundfile av soxr librosa pebble lameenc cffi pycparser audioread decorator pooch platformdirs; do
  pin=$(grep -m1 "^$name==" "$(dirname "${BASH_SOURCE[0]}")/../constraints.txt" | cut -d' ' -f1)
  [[ -n $pin ]] || { echo "gpu_check.sh: error: constraints.txt pins no $name" >&2; exit 2; }
  WHEELS+=("$pin")
done
if ((FETCH)); then
  exec "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl "${WHEELS[@]}"
fi

mkdir -p "$OUT" || exit 2
OUT=$(cd "$OUT" && pwd)
WORK=${WORK:-/tmp/gpu-check$( ((TINY)) && echo -tiny)}
mkdir -p "$WORK/steps" || exit 2
rm -f "$WORK"/steps/* "$WORK"/*.json "$WORK"/fma-shaped/bench-*.json "$OUT/gpu_check.json"  # no stale figures
exec > >(tee "$OUT/gpu_check.log") 2>&1
export PYTHONUNBUFFERED=1
DEADLINE=$((SECONDS + BUDGET))
CORES=$(nproc)

# step NAME LIMIT COMMAND...: runs COMMAND under min(LIMIT, time left) and records its outcome.
step() {
  local name=$1 limit=$2; shift 2
  local left=$((DEADLINE - SECONDS - 5)) start=$SECONDS rc
  ((limit > left)) && limit=$left
  if ((limit <= 0)); then
    echo "== $name: skipped, the budget is spent"
    echo "skipped 0" >"$WORK/steps/$name"
    return
  fi
  echo "== $name (up to ${limit} s): $*"
  timeout --kill-after=10 "$limit" bash -c '"$@"' "$name" "$@"  # bash -c: COMMAND may be a function below
  rc=$?
  local status=ok
  ((rc == 124 || rc == 137)) && status=timeout
  ((rc != 0 && rc != 124 && rc != 137)) && status="failed(rc=$rc)"
  echo "== $name: $status after $((SECONDS - start)) s"
  echo "$status $((SECONDS - start))" >"$WORK/steps/$name"
}

install_wheels() {
  if "$PY" -c "import soundfile, av, soxr, librosa, pebble, lameenc" 2>/dev/null; then
    echo "the audio stack imports already: nothing to install"
  elif [[ -d .whl ]]; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$WORK/site" .whl/*.whl \
      && PYTHONPATH="$WORK/site${PYTHONPATH:+:$PYTHONPATH}" "$PY" -c "import soundfile, av, soxr, librosa, pebble, lameenc"
  else
    echo "the audio stack is missing and there is no .whl/ folder: run 'bash bench/gpu_check.sh --fetch-wheels' where pip works, and carry .whl"
    return 1
  fi
}

machine() {
  nvidia-smi 2>/dev/null || echo "no nvidia-smi"
  "$PY" - "$WORK/machine.json" <<'EOF'
import json, os, platform, sys
import torch
cuda = torch.cuda.is_available()
facts = {"python": platform.python_version(), "torch": torch.__version__, "cores": os.cpu_count(),
         "cuda": cuda, "cuda_version": torch.version.cuda,
         "gpu": torch.cuda.get_device_name(0) if cuda else None,
         "gpu_memory_gib": torch.cuda.get_device_properties(0).total_memory / 2**30 if cuda else None,
         "bf16": bool(cuda and torch.cuda.is_bf16_supported())}
print(json.dumps(facts, indent=1))
open(sys.argv[1], "w").write(json.dumps(facts) + "\n")
EOF
}

export -f install_wheels machine
export PY WORK

if ((TINY)); then
  TRACKS=${TRACKS:-192} SECONDS_PER_TRACK=5 CLIPS=16 TRAIN_CLIPS=64
  ENSEMBLE=(--members 3 --epochs 2 --patience 2 --channels 8,16 --n-mels 32 --min-epoch-steps 2 --batch-size 16)
else
  TRACKS=${TRACKS:-2400} SECONDS_PER_TRACK=30 CLIPS=3000 TRAIN_CLIPS=20000
  # train.py's defaults (fma_shaped.py's CPU defaults overridden), a few epochs
  ENSEMBLE=(--members 3 --epochs 8 --patience 6 --channels 32,64,128,256 --n-mels 128)
fi
DATA="$WORK/fma-shaped"

step wheels 120 install_wheels
[[ -d $WORK/site ]] && export PYTHONPATH="$WORK/site${PYTHONPATH:+:$PYTHONPATH}"
step machine 60 machine
step generate 200 "$PY" bench/fma_shaped.py --tracks "$TRACKS" --seconds "$SECONDS_PER_TRACK" --jobs "$CORES" \
  --work "$DATA" --generate-only
step throughput 150 "$PY" bench/train.py --clips "$CLIPS" --train-clips "$TRAIN_CLIPS" --workers "$CORES" \
  --payload "$WORK/payload" --json "$WORK/throughput.json"
step ensemble 200 "$PY" bench/fma_shaped.py --tracks "$TRACKS" --seconds "$SECONDS_PER_TRACK" --jobs "$CORES" \
  --work "$DATA" --run ensemble -- "${ENSEMBLE[@]}"
cp "$DATA/runs/ensemble.log" "$OUT/train.log" 2>/dev/null
# the second architecture (model/networks/crnn.py), same settings otherwise: one more row
CRNN=("${ENSEMBLE[@]}" --architecture crnn)
((TINY)) && CRNN+=(--members 1)  # at toy size one member shows the step works
step crnn 120 "$PY" bench/fma_shaped.py --tracks "$TRACKS" --seconds "$SECONDS_PER_TRACK" --jobs "$CORES" \
  --work "$DATA" --run crnn -- "${CRNN[@]}"
predict_workers=$((CORES > 2 ? CORES - 1 : CORES))
step predict_ensemble 90 "$PY" bench/predict.py --clips "$CLIPS" --weights "$DATA/runs/ensemble" --workers "$predict_workers" \
  --payload "$WORK/payload" --rounds 1 --json "$WORK/predict_ensemble.json"
step predict_shipped 90 "$PY" bench/predict.py --clips "$CLIPS" --weights weights --workers "$predict_workers" \
  --payload "$WORK/payload" --rounds 1 --json "$WORK/predict_shipped.json"
step cuda_tests 90 "$PY" -m pytest -q -rs -p no:cacheprovider tests/test_spectrogram.py tests/test_ensemble.py -k cuda
if ((!TINY)); then
  step suite 600 "$PY" -m pytest -q -rs -x -p no:cacheprovider tests --ignore tests/test_container.py --ignore tests/test_gpu_check.py
fi

"$PY" - "$WORK" "$OUT/gpu_check.json" "$TINY" <<'EOF'
import json, sys
from pathlib import Path
work, out, tiny = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "1"
def read(path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
steps = {}
for path in sorted((work / "steps").iterdir(), key=lambda p: p.stat().st_mtime):
    status, seconds = path.read_text().split()
    steps[path.name] = {"status": status, "seconds": int(seconds)}
figures = {"machine": read(work / "machine.json"), "throughput": read(work / "throughput.json"),
           "predict_ensemble": read(work / "predict_ensemble.json"),
           "predict_shipped": read(work / "predict_shipped.json")}
for run in ("ensemble", "crnn"):
    bench = read(work / "fma-shaped" / f"bench-{run}.json") or {}
    figures[run] = {key: bench.get(key) for key in
                    ("shape", "train_args", "results", "temperature", "prior_log_loss", "train", "verdict")}
result = {"tiny": tiny, "steps": steps, "figures": figures}
out.write_text(json.dumps(result, indent=1) + "\n")
print("\n| step | status | seconds |\n|---|---|---|")
for name, s in steps.items():
    print(f"| {name} | {s['status']} | {s['seconds']} |")
t, pe, ps = figures["throughput"] or {}, figures["predict_ensemble"] or {}, figures["predict_shipped"] or {}
def fmt(value, spec=".2f"):
    return "-" if value is None else format(value, spec)
print(f"\nGPU {(figures['machine'] or {}).get('gpu')}; decode {fmt(t.get('decode_clips_per_s'), '.1f')} clips/s, "
      f"cache/decode {fmt(t.get('cache_over_decode'))}, training {fmt(t.get('training_crops_per_s'), '.0f')} crops/s, "
      f"GPU utilisation {fmt(t.get('gpu_utilisation_percent'), '.0f')} %, projected FMA-medium "
      f"{fmt(t.get('projected_fma_medium_min'), '.0f')} min; predict end-to-end/decode: trained ensemble "
      f"{fmt(pe.get('end_to_end_over_decode'))}, shipped {fmt(ps.get('end_to_end_over_decode'))}")
print(f"wrote {out}")
sys.exit(0 if all(s["status"] == "ok" for s in steps.values()) else 1)
EOF
