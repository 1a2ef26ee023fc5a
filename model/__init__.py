"""Musical genre recognition for the WWW2018 / FMA challenge.

One module per idea, shared by `predict.py` and `train.py`:

- `genres`       the 16 classes in the grader's column order and the FMA-medium prior
- `audio`        any mp3 -> mono float32 at the model rate (one decode path for everything)
- `spectrogram`  waveforms -> log-mel, as a torch module (same numbers on CPU and GPU)
- `chunking`     a clip's spectrogram -> fixed-length chunks, and chunk outputs -> clip outputs
- `networks`     the architectures that score one chunk, by name
- `musicnn`      the pretrained musicnn taggers in PyTorch; the transfer-learning head
- `zero_shot`    their tags -> the 16 genres by a documented table (the default model)
- `speech`       the pause cue that tells speech from music, which the taggers cannot
- `ensemble`     the ensemble on disk (manifest + state dicts) and in memory
- `inference`    files -> decode workers -> ensemble batches -> one prediction per file
- `exported`     the networks on ONNX Runtime: the same numbers, faster on a CPU
- `segments`     a clip's genres over time, segment by segment
- `genre_model`  `GenreModel`: the Python API predict.py itself runs on
- `journal`      finished predictions on disk, so an interrupted run resumes
- `device`       picking a device that can actually run kernels
- `submission`   the grader's contract: which files get rows, the CSV, its validator
- `fma`          FMA / crowdAI / own labels -> one training table; labels for scoring
- `features`     the resumable log-mel cache for training
- `training`     the training loop of one ensemble member
- `calibration`  member log-probabilities -> the rows predict.py writes; the temperature fit
- `metrics`      log loss, macro F1, ECE, confusion matrix
- `handcrafted`, `baseline`  the FMA paper's 518 features and the scikit-learn baseline
- `atomic`, `cli`  atomic file writes; argparse helpers shared by the scripts

Importing the package itself imports nothing heavy, so decode workers start fast:
`from model import GenreModel` loads torch only when asked for.
"""


def __getattr__(name: str):
    if name in ("GenreModel", "UnusableAudio"):
        from . import genre_model

        return getattr(genre_model, name)
    raise AttributeError(f"module 'model' has no attribute {name!r}")


__all__ = ["GenreModel", "UnusableAudio"]
