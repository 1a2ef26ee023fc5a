#!/usr/bin/env python3
"""Convert musicnn's pretrained TensorFlow taggers into the PyTorch state dicts of model/musicnn.py.

Run once by a developer, never at build or run time (the results are committed in weights/musicnn/):

    pip download musicnn==0.1.0 --no-deps -d /tmp/musicnn          # the wheel holds the checkpoints
    python3 -m venv /tmp/tf && /tmp/tf/bin/pip install tensorflow-cpu==2.15.1 'numpy<2'
    .venv/bin/python tools/convert_musicnn.py --wheel /tmp/musicnn/musicnn-0.1.0-py3-none-any.whl \\
        --tf-python /tmp/tf/bin/python

Two stages. This script, under the project's Python, makes a few input patches (log-mel of
synthetic music through `model.spectrogram`) and calls itself under the TensorFlow venv's Python
(`--tf-stage`), which reads each checkpoint's variables and runs the patches through the original
graph built by musicnn's own `models.py` from the wheel. Back here, the variables become state
dicts, the port is checked against the graph's outputs, and these files are written:

    weights/musicnn/musicnn_pair.pt           MSD + MTT taggers (`model.musicnn.MusicnnPair`)
    weights/musicnn/provenance.json           wheel SHA-256, per-tagger port error, file SHA-256
    weights/musicnn/LICENSE-musicnn.txt       the ISC notice the licence asks to keep with the weights
    tests/fixtures/musicnn_reference.npz      the patches and the graph's outputs, for the port test
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TAGGERS = {"msd": "MSD_musicnn", "mtt": "MTT_musicnn"}
PATCHES = 4


# ---- stage 1: under TensorFlow -------------------------------------------------------------------


def tf_stage(package_dir: Path, patches_path: Path, out_path: Path) -> None:
    """Variables of each checkpoint and the original graph's outputs on the patches, into one npz."""
    import warnings

    import tensorflow as tf

    warnings.filterwarnings("ignore")  # TF-1 layer deprecation notices, one per layer
    tf.compat.v1.disable_eager_execution()
    sys.path.insert(0, str(package_dir.parent))
    from musicnn import models  # the original graph code, from the wheel

    patches = np.load(patches_path)["patches"].astype(np.float32)  # (n, frames, mels), musicnn's layout
    out = {}
    for short, folder in TAGGERS.items():
        tf.compat.v1.reset_default_graph()
        x = tf.compat.v1.placeholder(tf.float32, [None, patches.shape[1], patches.shape[2]])
        is_training = tf.compat.v1.placeholder(tf.bool)
        logits, *_, penultimate = models.define_model(x, is_training, folder, 50)
        with tf.compat.v1.Session() as session:
            tf.compat.v1.train.Saver().restore(session, str(package_dir / folder) + "/")
            tags, embedding = session.run(
                [tf.nn.sigmoid(logits), penultimate], feed_dict={x: patches, is_training: False}
            )
            for variable in tf.compat.v1.global_variables():
                out[f"{short}/var/{variable.name.removesuffix(':0')}"] = session.run(variable)
        out[f"{short}/tags"], out[f"{short}/embedding"] = tags, embedding
    np.savez(out_path, **out)


# ---- stage 2: under the project's Python -----------------------------------------------------------


def reference_patches() -> np.ndarray:
    """(PATCHES, 187, 96) float16-exact log-mel patches of synthetic music-like signals."""
    import torch

    from model.musicnn import MUSICNN_CHUNK_FRAMES, MUSICNN_SPECTROGRAM
    from model.spectrogram import LogMel

    rate = MUSICNN_SPECTROGRAM.sample_rate
    t = np.arange(3 * rate) / rate
    rng = np.random.default_rng(2019)
    beat = (np.sin(2 * np.pi * 2 * t) > 0.95) * rng.standard_normal(len(t))
    chord = sum(np.sin(2 * np.pi * f * t) for f in (261.6, 329.6, 392.0)) / 3
    sweep = np.sin(2 * np.pi * (200 + 800 * t) * t)
    noise = 0.3 * rng.standard_normal(len(t))
    audio = torch.tensor(np.stack([beat, chord, sweep + 0.1 * beat, noise]) * 0.5, dtype=torch.float32)
    spec = LogMel(MUSICNN_SPECTROGRAM)(audio)[:, :, :MUSICNN_CHUNK_FRAMES]
    return spec.transpose(1, 2).numpy().astype(np.float16)


def state_dict_from_tf(variables: dict[str, np.ndarray]) -> dict:
    """TensorFlow variable names (in graph order) -> `MusicnnTagger` state dict."""
    import torch

    def tensor(name: str):
        return torch.from_numpy(np.ascontiguousarray(variables[name]))

    def conv2d(name: str):  # [kh, kw, in, out] -> [out, in, kh, kw]
        return torch.from_numpy(np.ascontiguousarray(variables[f"{name}/kernel"].transpose(3, 2, 0, 1)))

    def conv1d(name: str):  # [7, width, 1, out]: a 1-D conv over time with `width` input channels
        return torch.from_numpy(
            np.ascontiguousarray(variables[f"{name}/kernel"][:, :, 0, :].transpose(2, 1, 0))
        )

    def norm(prefix: str, tf_index: int) -> dict:
        name = "batch_normalization" + (f"_{tf_index}" if tf_index else "")
        return {
            f"{prefix}.weight": tensor(f"{name}/gamma"),
            f"{prefix}.bias": tensor(f"{name}/beta"),
            f"{prefix}.running_mean": tensor(f"{name}/moving_mean"),
            f"{prefix}.running_var": tensor(f"{name}/moving_variance"),
            f"{prefix}.num_batches_tracked": torch.tensor(0),
        }

    state = norm("input_norm", 0)
    # tf layer order: conv2d, conv2d_1 timbral; conv2d_2..4 temporal; conv2d_5..7 mid end
    blocks = [
        ("timbral.0", 0, conv2d),
        ("timbral.1", 1, conv2d),
        ("temporal.0", 2, conv2d),
        ("temporal.1", 3, conv2d),
        ("temporal.2", 4, conv2d),
        ("midend.0", 5, conv1d),
        ("midend.1", 6, conv1d),
        ("midend.2", 7, conv1d),
    ]
    for prefix, i, convert in blocks:
        name = "conv2d" + (f"_{i}" if i else "")
        state[f"{prefix}.conv.weight"] = convert(name)
        state[f"{prefix}.conv.bias"] = tensor(f"{name}/bias")
        state.update(norm(f"{prefix}.norm", i + 1))
    state.update(norm("pool_norm", 9))
    state["dense.weight"], state["dense.bias"] = tensor("dense/kernel").T.contiguous(), tensor("dense/bias")
    state.update(norm("dense_norm", 10))
    state["output.weight"], state["output.bias"] = (
        tensor("dense_1/kernel").T.contiguous(),
        tensor("dense_1/bias"),
    )
    return state


def convert(wheel: Path, tf_python: str) -> None:
    import torch

    from model.musicnn import MusicnnPair

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(tmp / "wheel")
        patches = reference_patches()
        np.savez(tmp / "patches.npz", patches=patches)
        subprocess.run(
            [
                tf_python,
                __file__,
                "--tf-stage",
                str(tmp / "wheel" / "musicnn"),
                str(tmp / "patches.npz"),
                str(tmp / "tf.npz"),
            ],
            check=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        )
        reference = dict(np.load(tmp / "tf.npz"))
        licence = (tmp / "wheel" / "musicnn-0.1.0.dist-info" / "LICENSE.md").read_text()

    pair, fixture, errors = MusicnnPair().eval(), {"patches": patches}, {}
    for short in TAGGERS:
        variables = {k.split("/var/", 1)[1]: v for k, v in reference.items() if k.startswith(f"{short}/var/")}
        getattr(pair, short).load_state_dict(state_dict_from_tf(variables))
        with torch.no_grad():
            logits, embedding = getattr(pair, short).tags_and_embedding(
                torch.from_numpy(patches.astype(np.float32)).transpose(1, 2)
            )
        errors[short] = {
            "tags_max_abs_error": float(
                np.abs(torch.sigmoid(logits).numpy() - reference[f"{short}/tags"]).max()
            ),
            "embedding_max_abs_error": float(
                np.abs(embedding.numpy() - reference[f"{short}/embedding"]).max()
            ),
        }
        fixture[f"{short}_tags"] = reference[f"{short}/tags"]
        fixture[f"{short}_embedding"] = reference[f"{short}/embedding"]
        print(
            f"{TAGGERS[short]}: port vs TensorFlow graph, max abs error: tags "
            f"{errors[short]['tags_max_abs_error']:.2e}, embedding {errors[short]['embedding_max_abs_error']:.2e}"
        )
        if errors[short]["tags_max_abs_error"] > 1e-4:
            sys.exit(f"convert_musicnn.py: the port does not reproduce {TAGGERS[short]}; nothing written")

    out = REPO / "weights" / "musicnn"
    out.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.contiguous() for k, v in pair.state_dict().items()}, out / "musicnn_pair.pt")
    (out / "LICENSE-musicnn.txt").write_text(licence)
    (out / "provenance.json").write_text(
        json.dumps(
            {
                "source": "PyPI musicnn==0.1.0 (https://github.com/jordipons/musicnn), ISC licence",
                "wheel": wheel.name,
                "wheel_sha256": _sha256(wheel),
                "checkpoints": TAGGERS,
                "port_check": errors,
                "musicnn_pair.pt_sha256": _sha256(out / "musicnn_pair.pt"),
            },
            indent=2,
        )
        + "\n"
    )
    fixtures = REPO / "tests" / "fixtures"
    fixtures.mkdir(exist_ok=True)
    np.savez_compressed(fixtures / "musicnn_reference.npz", **fixture)
    print(
        f"wrote {out}/musicnn_pair.pt, provenance.json, LICENSE-musicnn.txt and {fixtures}/musicnn_reference.npz"
    )


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--tf-stage":
        tf_stage(Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheel", required=True, type=Path, help="musicnn-0.1.0-py3-none-any.whl")
    parser.add_argument(
        "--tf-python",
        default=shutil.which("python3"),
        help="a Python with tensorflow-cpu 2.15 (a throwaway venv)",
    )
    args = parser.parse_args()
    if not args.wheel.is_file():
        parser.error(f"{args.wheel} does not exist: pip download musicnn==0.1.0 --no-deps")
    sys.path.insert(0, str(REPO))
    convert(args.wheel, args.tf_python)


if __name__ == "__main__":
    main()
