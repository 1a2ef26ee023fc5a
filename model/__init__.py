"""Musical genre recognition for the WWW2018 / FMA challenge.

One module per idea, shared by `predict.py` and `train.py`:

- `genres`       the 16 classes in the grader's column order and the FMA-medium prior
- `audio`        any mp3 -> mono float32 at the model rate (one decode path for everything)
- `spectrogram`  waveforms -> log-mel, as a torch module (same numbers on CPU and GPU)
- `chunking`     a clip's spectrogram -> fixed-length chunks, and chunk outputs -> clip outputs
- `networks`     the CNN architectures that score one chunk
- `ensemble`     the ensemble on disk (manifest + state dicts) and in memory
- `device`       picking a device that can actually run kernels
- `submission`   the grader's CSV, written atomically
- `cli`          small argparse helpers shared by the command-line scripts

Importing the package itself imports nothing heavy, so decode workers start fast.
"""
