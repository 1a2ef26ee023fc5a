"""Musical genre recognition for the WWW2018 / FMA challenge.

One module per idea, shared by `predict.py` and `train.py`:

- `genres`       the 16 classes in the grader's column order and the FMA-medium prior
- `audio`        any mp3 -> mono float32 at the model rate (one decode path for everything)
- `spectrogram`  waveforms -> log-mel, as a torch module (same numbers on CPU and GPU)
- `chunking`     a clip's spectrogram -> fixed-length chunks, and chunk outputs -> clip outputs
- `networks`     the networks that score one chunk, one file each, found by name (a package)
- `musicnn`      the pretrained musicnn taggers in PyTorch (the genre networks on them: `networks`)
- `zero_shot`    their tags -> the 16 genres by a documented table (the default model)
- `speech`       the cues (pauses, syllables) that tell speech from music, which the taggers cannot
- `audio_kinds`  speech, orchestral or other music, from the taggers' embeddings (evidence for zero_shot)
- `manifest`     the ensemble on disk: the manifest's format and its validation
- `saving`       writing ensemble folders atomically; copying; assembling from several runs
- `ensemble`     the ensemble in memory: waveforms -> the rows predict.py writes
- `calibration`  member log-probabilities -> calibrated rows (the one rule); the temperature fit
- `inference`    files -> decode workers -> ensemble batches -> one prediction per file
- `exported`     the networks on ONNX Runtime: the same numbers, faster on a CPU
- `segments`     a clip's genres over time, segment by segment
- `genre_model`  `GenreModel`: the Python API predict.py itself runs on
- `plots`        the notebook's figures: log-mel, top genres, genres over time
- `journal`      finished predictions on disk, so an interrupted run resumes
- `library`      what a folder holds to predict: the grader's mp3s, or a library at any depth
- `submission`   the grader's contract: file ids, the CSV, its validator
- `device`       picking a device that can actually run kernels; usable cores
- `fma`          FMA / crowdAI / own labels -> one training table; labels for scoring
- `feature_cache`  every track decoded into log-mels once, resumable, in shards
- `features`     what training reads: the cached log-mels as one store, each split's clips
- `members`      the members a run trains: their configuration, the plan, the manifest entry
- `training`     the training loop of one member
- `runs`         a run's record: config.json, TensorBoard events, each member's predictions
- `selection`    which members of several runs make the ensemble (greedy forward selection)
- `distributed`, `sharding`  training under torchrun; `--shard I/N` over machines
- `metrics`      log loss, macro F1, ECE, confusion matrix, train.py's report
- `handcrafted`, `baseline`  the FMA paper's 518 features and the scikit-learn baseline
- `stopping`     SIGTERM handled like ^C; a full disk reported in one line
- `atomic`, `cli`, `progress`  atomic file writes; argparse helpers; progress bars for terminals and logs

Importing the package itself imports nothing heavy, so decode workers start fast:
`from model import GenreModel` loads torch only when asked for.
"""


def __getattr__(name: str):
    if name in ("GenreModel", "UnusableAudio"):
        from . import genre_model

        return getattr(genre_model, name)
    raise AttributeError(f"module 'model' has no attribute {name!r}")


__all__ = ["GenreModel", "UnusableAudio"]
