"""The model as a Python object: what predict.py runs, for notebooks and your own code.

    from model import GenreModel
    model = GenreModel.load()                         # weights/ of this repository; CUDA if usable
    model.predict("examples/beat.mp3")                # a pandas Series: 16 genres, sums to 1
    model.predict_many(paths)                         # a DataFrame indexed by file_id
    model.segments("song.mp3", hop_seconds=1.5)       # genres over time: start, end, 16 genres

Every input goes through the same decode path, batching, ensemble and fallbacks as predict.py:
a file without usable audio gets the training class prior with a warning (or an `UnusableAudio`
error with `strict=True`), never a made-up answer. A path that names no readable file is the
caller's mistake, not a recording: it raises (FileNotFoundError, IsADirectoryError,
PermissionError), as `open` and `soundfile.read` do; the prior never stands for a typo.
"""

from __future__ import annotations

import errno
import io
import multiprocessing
import os
import stat
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd
import torch

from .audio import Decoded, DecodeError, decode, resample
from .device import choose_device, usable_cores
from .ensemble import Ensemble, load_ensemble
from .exported import BACKENDS, onnxruntime_available
from .inference import Prediction, classify_decoded, classify_files
from .library import find_inputs
from .progress import progress_bar
from .submission import file_id

DEFAULT_WEIGHTS = Path(__file__).resolve().parent.parent / "weights"
DEFAULT_MAX_WORKERS = 5  # the grader machine has 5 cores: more decode workers only thrash there

Audio = str | os.PathLike | bytes | BinaryIO | np.ndarray


class UnusableAudio(ValueError):
    """The input holds no audio the model can judge (`strict=True`); `reason` says why."""

    def __init__(self, name: str, reason: str):
        super().__init__(f"{name}: {reason}")
        self.reason = reason


def default_workers() -> int:
    """Decode processes: the usable cores, at most `DEFAULT_MAX_WORKERS`."""
    return min(DEFAULT_MAX_WORKERS, usable_cores())


class GenreModel:
    """A loaded ensemble and the ways to ask it for genres (see the module docstring)."""

    def __init__(self, ensemble: Ensemble):
        self.ensemble = ensemble

    @classmethod
    def load(
        cls, weights_dir: str | os.PathLike = DEFAULT_WEIGHTS, device: str = "auto", backend: str = "auto"
    ) -> GenreModel:
        """Load the ensemble in `weights_dir` on `device` ("auto": CUDA if a kernel really runs
        there, else the CPU, with a warning when a GPU is visible but unusable; "cpu"; "cuda"),
        its networks run by `backend` ("auto": ONNX Runtime on the CPU when installed, else
        torch; "torch"; "onnxruntime", CPU only: model/exported.py). Raises
        `manifest.ManifestError`, `device.DeviceError` or ValueError with a one-line message.

        >>> model = GenreModel.load()
        >>> model.genres[:3]
        ['Blues', 'Classical', 'Country']
        """
        _refuse_while_a_worker_imports_the_script()
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        chosen, warning = choose_device(device)
        if warning:
            warnings.warn(warning, stacklevel=2)
        if backend == "onnxruntime" and chosen.type != "cpu":
            raise ValueError(
                f"the onnxruntime backend runs on the CPU (the device is {chosen}): use device='cpu'"
            )
        if backend == "onnxruntime" and not onnxruntime_available():
            raise ValueError(
                "the onnxruntime backend needs the onnx and onnxruntime packages (requirements.txt)"
            )
        ensemble = load_ensemble(weights_dir, chosen)
        if backend == "onnxruntime" or (
            backend == "auto" and chosen.type == "cpu" and onnxruntime_available()
        ):
            ensemble.use_onnxruntime(threads=torch.get_num_threads())
        return cls(ensemble)

    @property
    def genres(self) -> list[str]:
        return list(self.ensemble.manifest.classes)

    @property
    def sample_rate(self) -> int:
        """The rate every input is resampled to."""
        return self.ensemble.manifest.sample_rate

    @property
    def device(self):
        return self.ensemble.device

    def __repr__(self) -> str:
        members = ", ".join(m.name for m in self.ensemble.manifest.members)
        temperature = self.ensemble.manifest.temperature
        return (
            f"GenreModel(members=[{members}], temperature={temperature:.3g}, device={self.device}, "
            f"backend={self.ensemble.backend})"
        )

    def predict(self, x: Audio, sample_rate: int | None = None, strict: bool = False) -> pd.Series:
        """Genre probabilities for one input: a path, the bytes of an audio file, a binary file
        object, or a waveform (numpy, mono or channels-first/last) with its `sample_rate`.
        Returns a Series of the 16 genres in grader order, summing to 1, named by the file id.

        >>> row = model.predict("examples/beat.mp3")
        >>> row.name, len(row), float(round(row.sum(), 6))
        ('beat', 16, 1.0)
        >>> top = row.nlargest(3)          # the three most probable genres, highest first
        """
        prediction = self._one(x, sample_rate, strict, segments=False)
        return pd.Series(prediction.probabilities.astype(np.float64), index=self.genres, name=_name(x))

    def segments(
        self, x: Audio, sample_rate: int | None = None, hop_seconds: float | None = None, strict: bool = False
    ) -> pd.DataFrame:
        """Genres over time: one row per segment (columns start, end in seconds, then the 16
        genres), each member's chunk scores combined with the ensemble's rule and temperature
        (model/segments.py says how segment rows relate to the clip's row). A segment is as long
        as the longest member chunk; `hop_seconds` defaults to that length.

        >>> timeline = model.segments("examples/chords.mp3", hop_seconds=1.0)
        >>> list(timeline.columns[:3]), bool((timeline.iloc[:, 2:].sum(axis=1).round(6) == 1).all())
        (['start', 'end', 'Blues'], True)
        """
        prediction = self._one(x, sample_rate, strict, segments=True, hop_seconds=hop_seconds)
        return pd.DataFrame(prediction.segments.astype(np.float64), columns=["start", "end", *self.genres])

    def predict_many(
        self,
        paths: Sequence[str | os.PathLike] | str | os.PathLike,
        workers: int | None = None,
        progress: bool = True,
        batch_size: int = 16,
    ) -> pd.DataFrame:
        """Many files through the decode workers (default: usable cores, at most 5) and batches of
        `batch_size`, as predict.py runs them. A DataFrame indexed by file_id (input order), the 16
        genres as columns; files that got the class prior are listed in `.attrs["fallbacks"]`
        (file_id -> reason) and in one warning. `paths` may be a folder: every audio file under
        it, as `predict.py --recursive` takes them, each file_id its relative path without the
        extension; entries passed over are in `.attrs["skipped"]` (path -> reason).

        >>> import warnings
        >>> with warnings.catch_warnings(record=True):      # examples/silence.mp3 gets the prior
        ...     table = model.predict_many(sorted(Path("examples").glob("*.mp3")), progress=False)
        >>> list(table.index), table.attrs["fallbacks"]
        (['beat', 'chords', 'silence'], {'silence': 'silent (digital silence)'})
        """
        skipped: dict[str, str] = {}
        if isinstance(paths, (str, os.PathLike)):  # a folder: a library at any depth
            folder = Path(paths).expanduser()
            if not folder.is_dir():
                folder.stat()  # FileNotFoundError if it is not there at all
                why = "predict_many takes a folder or a list of files (one file: predict)"
                raise NotADirectoryError(errno.ENOTDIR, why, str(folder))
            inputs = find_inputs(folder, recursive=True)
            paths, ids = inputs.files, inputs.ids
            skipped = {str(path): why for path, why in inputs.skipped}
        else:
            paths = [Path(p) for p in paths]
            for path in paths:
                _check_readable(path)
            ids = [file_id(p) for p in paths]
        name = dict(zip(paths, ids))
        found: dict[Path, Prediction] = {}
        try:
            with progress_bar(len(paths), "clip", disable=not progress) as bar:
                for prediction in self.stream(paths, workers, batch_size):
                    found[prediction.path] = prediction
                    bar.update()
        except BrokenProcessPool as error:  # every worker died as it started
            raise RuntimeError(f"the decode workers could not start. {_GUARD_HINT}") from error
        ordered = [found[path] for path in paths]
        rows = np.stack([p.probabilities for p in ordered]) if ordered else np.zeros((0, len(self.genres)))
        table = pd.DataFrame(
            rows.astype(np.float64),
            index=pd.Index(ids, name="file_id"),
            columns=self.genres,
        )
        table.attrs["fallbacks"] = {name[p.path]: p.reason for p in ordered if p.status == "fallback"}
        table.attrs["skipped"] = skipped
        if table.attrs["fallbacks"]:
            shown = "; ".join(f"{k}: {v}" for k, v in list(table.attrs["fallbacks"].items())[:5])
            warnings.warn(
                f"{len(table.attrs['fallbacks'])} of {len(paths)} files got the class prior ({shown})",
                stacklevel=2,
            )
        return table

    def stream(
        self,
        paths: Sequence[str | os.PathLike],
        workers: int | None = None,
        batch_size: int = 16,
        segments: bool = False,
        hop_seconds: float | None = None,
    ) -> Iterator[Prediction]:
        """One `inference.Prediction` per path as soon as it is ready (fallbacks first): the loop
        predict.py runs, for callers that journal or report as they go."""
        workers = default_workers() if workers is None else workers
        return classify_files(self.ensemble, paths, workers, batch_size, segments, hop_seconds)

    # -- one input ---------------------------------------------------------------------------

    def _one(
        self,
        x: Audio,
        sample_rate: int | None,
        strict: bool,
        segments: bool,
        hop_seconds: float | None = None,
    ) -> Prediction:
        name = _name(x) or "the input"
        with self._as_file(x, sample_rate) as path:  # a long file's segments read it again
            if path is None:
                outcome = from_waveform(np.asarray(x), sample_rate, self.sample_rate)
            else:
                outcome = _decode_or_error(path, self.sample_rate)
            where = path or Path(name)
            prediction = next(classify_decoded(self.ensemble, [(where, outcome)], 1, segments, hop_seconds))
        if prediction.status == "fallback":
            if strict:
                raise UnusableAudio(name, prediction.reason)
            warnings.warn(f"{name}: {prediction.reason}; returning the class prior", stacklevel=3)
        return prediction

    @contextmanager
    def _as_file(self, x: Audio, sample_rate: int | None) -> Iterator[Path | None]:
        """The input as a file on disk (bytes and file objects in a temporary one: the one decode
        path), or None for a waveform."""
        if isinstance(x, (str, os.PathLike)):
            _no_rate(sample_rate, "a path")
            _check_readable(Path(x))
            yield Path(x)
            return
        if isinstance(x, (bytes, bytearray, memoryview)):
            _no_rate(sample_rate, "file bytes")
            data, suffix = bytes(x), ".mp3"
        elif hasattr(x, "read"):
            _no_rate(sample_rate, "a file object")
            data = x.read()
            if not isinstance(data, bytes):
                raise TypeError("the file object must be opened in binary mode ('rb')")
            suffix = Path(str(getattr(x, "name", "")) or "x.mp3").suffix or ".mp3"
        else:
            if sample_rate is None:
                raise ValueError(
                    "a waveform needs its sample_rate, e.g. model.predict(audio, sample_rate=44100)"
                )
            yield None
            return
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / f"input{suffix}"
            path.write_bytes(data)
            yield path


_GUARD_HINT = (
    "Each decode worker imports your script again as it starts (multiprocessing's spawn), so a script "
    'must call GenreModel under `if __name__ == "__main__":`; or pass workers=0 to decode in this process'
)


def _refuse_while_a_worker_imports_the_script() -> None:
    """Inside a decode worker that is importing an unguarded script, stop at once (instead of
    loading the model in every worker and failing later) and say why."""
    if getattr(multiprocessing.current_process(), "_inheriting", False):  # spawn's own test
        raise RuntimeError(f"GenreModel was used while a worker process imported the script. {_GUARD_HINT}")


def from_waveform(samples: np.ndarray, sample_rate: int, target_rate: int) -> Decoded:
    """A waveform (samples,), (channels, samples) or (samples, channels) -> mono float32 at
    `target_rate`, resampled as decoded files are. Integer samples are scaled to [-1, 1)."""
    if samples.ndim not in (1, 2) or samples.size == 0:
        raise ValueError(f"a waveform must be a non-empty 1-D or 2-D array, got shape {samples.shape}")
    if int(sample_rate) <= 0:
        raise ValueError(f"sample_rate must be a positive number of Hz, got {sample_rate}")
    if np.issubdtype(samples.dtype, np.integer):
        samples = samples / float(2 ** (8 * samples.dtype.itemsize - 1))
    audio = samples.astype(np.float32)
    if audio.ndim == 2:  # the channel axis is the short one
        audio = audio.mean(axis=0 if audio.shape[0] <= audio.shape[1] else 1)
    return Decoded(
        resample(np.ascontiguousarray(audio), int(sample_rate), target_rate), target_rate, "waveform"
    )


def _decode_or_error(path: Path, sample_rate: int) -> Decoded | DecodeError:
    try:
        return decode(path, sample_rate)
    except DecodeError as error:
        return error


def _check_readable(path: Path) -> None:
    """Raise what `open` raises for a path that is missing, a folder, or not readable (without
    opening it: a FIFO would block)."""
    mode = path.stat().st_mode  # FileNotFoundError
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    if not os.access(path, os.R_OK):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))


def _no_rate(sample_rate: int | None, what: str) -> None:
    if sample_rate is not None:
        raise ValueError(f"sample_rate is for waveforms; {what} carries its own")


def _name(x: Audio) -> str | None:
    if isinstance(x, (str, os.PathLike)):
        return file_id(x)
    name = getattr(x, "name", None)
    return file_id(name) if isinstance(name, str) and not isinstance(x, io.BytesIO) else None
