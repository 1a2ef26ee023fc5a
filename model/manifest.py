"""The ensemble on disk: a JSON manifest plus one state dict per network.

`weights/manifest.json` names every member: its architecture and hyper-parameters, its
state-dict file (with a SHA-256), the spectrogram config and chunk length it was trained with.
A member trained on frozen pretrained weights may name those as its `base_state_dict` (with
`base_sha256`): they are loaded first, and its own file holds only what it trained (a frozen
musicnn head: 0.4 MB instead of 6.8 MB with its own copy of the taggers).
It also holds the class list, the calibration temperature and the training class prior, so
prediction rebuilds exactly what training used, and nothing else needs shipping.

Member kinds, which follow from the architecture (its registration in model/networks/; the file
states the kind for a reader's sake and the parser checks it): `prior` (no architecture: the class
prior, no audio needed), `cnn` (a network trained here from scratch), `zero_shot` (the pretrained
musicnn taggers read through a documented tag -> genre rule, never fitted on FMA) and `transfer` (a
genre head trained here on the pretrained taggers' embedding). A member's `weight` (default 1) is
its share in the ensemble's weighted mean (tools/runs.py build picks members with replacement).

Everything is validated on load with a one-line `ManifestError` naming the file and the field.
Writing an ensemble folder is model/saving.py's.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from .genres import GENRES
from .networks import get_architecture
from .spectrogram import SpectrogramConfig

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
MEMBER_KINDS = ("prior", "cnn", "zero_shot", "transfer")
_LFS_POINTER = b"version https://git-lfs.github.com/spec/"


class ManifestError(Exception):
    """The weights folder is not a valid ensemble; the message says what is wrong and where."""


@dataclass(frozen=True)
class MemberSpec:
    name: str
    architecture: str | None = None  # None: the class-prior member
    hparams: dict = field(default_factory=dict)
    state_dict: str | None = None  # path relative to the weights folder
    sha256: str | None = None
    spectrogram: SpectrogramConfig | None = None
    chunk_seconds: float | None = None
    max_chunks: int | None = None  # chunks scored per clip, spread evenly; None: cover the clip
    base_state_dict: str | None = None  # frozen pretrained weights loaded before `state_dict`
    base_sha256: str | None = None
    weight: float = 1.0  # this member's share in the ensemble's weighted mean

    @property
    def kind(self) -> str:
        """One of MEMBER_KINDS, as the architecture implies (see the module docstring)."""
        return "prior" if self.architecture is None else get_architecture(self.architecture).kind

    def to_json(self) -> dict:
        weight = {} if self.weight == 1.0 else {"weight": self.weight}
        if self.kind == "prior":
            return {"name": self.name, "kind": self.kind, **weight}
        base = (
            {"base_state_dict": self.base_state_dict, "base_sha256": self.base_sha256}
            if self.base_state_dict
            else {}
        )
        return {
            "name": self.name,
            "kind": self.kind,
            "architecture": self.architecture,
            "hparams": self.hparams,
            "state_dict": self.state_dict,
            "sha256": self.sha256,
            "spectrogram": self.spectrogram.to_dict(),
            "chunk_seconds": self.chunk_seconds,
            "max_chunks": self.max_chunks,
            **base,
            **weight,
        }


@dataclass(frozen=True)
class Manifest:
    classes: tuple[str, ...]
    sample_rate: int
    temperature: float
    class_prior: tuple[float, ...]
    members: tuple[MemberSpec, ...]
    description: str = ""

    @property
    def prior_only(self) -> bool:
        """True when no member listens to the audio."""
        return all(m.kind == "prior" for m in self.members)

    @property
    def zero_shot_only(self) -> bool:
        """True when members listen to the audio but none was fitted on genre labels."""
        return not self.prior_only and all(m.kind in ("prior", "zero_shot") for m in self.members)

    def to_json(self) -> dict:
        return {
            "format_version": FORMAT_VERSION,
            "description": self.description,
            "classes": list(self.classes),
            "sample_rate": self.sample_rate,
            "temperature": self.temperature,
            "class_prior": list(self.class_prior),
            "members": [m.to_json() for m in self.members],
        }


def load_manifest(weights_dir: str | os.PathLike) -> Manifest:
    """Read and validate `weights_dir/manifest.json` and the files it names; raises ManifestError."""
    weights_dir = Path(weights_dir)
    path = weights_dir / MANIFEST
    if not weights_dir.is_dir():
        raise ManifestError(f"weights folder {weights_dir} does not exist")
    if not path.is_file():
        raise ManifestError(f"{path} is missing: a weights folder needs the manifest train.py writes")
    raw = path.read_bytes()
    _refuse_lfs_pointer(path, raw)
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ManifestError(f"{path} is not valid JSON: {error}") from None
    manifest = parse_manifest(data, path)
    for member in manifest.members:
        if member.kind != "prior":
            check_state_dict_file(weights_dir, member, path)
    return manifest


def parse_manifest(data: object, path: Path) -> Manifest:
    def fail(message: str) -> ManifestError:
        return ManifestError(f"{path}: {message}")

    if not isinstance(data, dict):
        raise fail("expected a JSON object at the top level")
    if data.get("format_version") != FORMAT_VERSION:
        raise fail(f"format_version is {data.get('format_version')!r}, this code reads {FORMAT_VERSION}")
    missing = [
        k for k in ("classes", "sample_rate", "temperature", "class_prior", "members") if k not in data
    ]
    if missing:
        raise fail(f"missing key(s): {', '.join(missing)}")

    classes = tuple(data["classes"]) if isinstance(data["classes"], list) else ()
    if classes != GENRES:
        unknown = [c for c in classes if c not in GENRES]
        absent = [g for g in GENRES if g not in classes]
        if unknown or absent:
            detail = f"unknown: {unknown}, absent: {absent}"
        else:
            detail = "the same names in another order"
        raise fail(f"class list differs from the grader's 16 genres ({detail}); expected {list(GENRES)}")

    sample_rate = data["sample_rate"]
    if not isinstance(sample_rate, int) or sample_rate <= 0:
        raise fail(f"sample_rate must be a positive integer, got {sample_rate!r}")
    temperature = data["temperature"]
    if not isinstance(temperature, (int, float)) or not math.isfinite(temperature) or temperature <= 0:
        raise fail(f"temperature must be a positive number, got {temperature!r}")
    prior = data["class_prior"]
    if (
        not isinstance(prior, list)
        or len(prior) != len(GENRES)
        or not all(isinstance(p, (int, float)) and p > 0 for p in prior)
        or abs(sum(prior) - 1) > 1e-6
    ):
        raise fail(f"class_prior must be {len(GENRES)} positive numbers summing to 1, got {prior!r}")

    members_json = data["members"]
    if not isinstance(members_json, list) or not members_json:
        raise fail("members must be a non-empty list")
    members = tuple(_parse_member(m, i, sample_rate, fail) for i, m in enumerate(members_json))
    names = [m.name for m in members]
    if len(set(names)) != len(names):
        raise fail(f"member names must be unique, got {names}")
    return Manifest(
        classes=classes,
        sample_rate=sample_rate,
        temperature=float(temperature),
        class_prior=tuple(float(p) for p in prior),
        members=members,
        description=str(data.get("description", "")),
    )


def _parse_member(data: object, index: int, sample_rate: int, fail) -> MemberSpec:
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        raise fail(f"member {index} must be an object with a string 'name'")
    name, kind = data["name"], data.get("kind")
    where = f"member {name!r}"
    if kind not in (*MEMBER_KINDS, None) or (kind is None and "architecture" not in data):
        raise fail(f"{where}: kind must be one of {MEMBER_KINDS}, got {kind!r}")
    weight = data.get("weight", 1.0)
    if not isinstance(weight, (int, float)) or isinstance(weight, bool) or not 0 < weight < math.inf:
        raise fail(f"{where}: weight must be a positive number, got {weight!r}")
    if kind == "prior":
        return MemberSpec(name=name, weight=float(weight))
    for key in ("architecture", "hparams", "state_dict", "sha256", "spectrogram", "chunk_seconds"):
        if key not in data:
            raise fail(f"{where}: missing key {key!r}")
    architecture = data["architecture"]
    try:
        registered = get_architecture(architecture)
    except ValueError as error:
        raise fail(f"{where}: {error}") from None
    if kind is not None and registered.kind != kind:
        raise fail(f"{where}: architecture {architecture} is of kind {registered.kind!r}, not {kind!r}")
    try:
        spectrogram = SpectrogramConfig(**data["spectrogram"])
    except (TypeError, ValueError) as error:
        raise fail(f"{where}: bad spectrogram config: {error}") from None
    required = registered.spectrogram
    if required is not None and spectrogram != required:
        raise fail(
            f"{where}: {architecture} was pretrained on the spectrogram {required.to_dict()}, "
            f"the manifest gives {spectrogram.to_dict()}"
        )
    state_path = _inside(data["state_dict"], f"{where}: state_dict", fail)
    base_path = data.get("base_state_dict")
    if base_path is not None:
        base_path = _inside(base_path, f"{where}: base_state_dict", fail).as_posix()
        if "base_sha256" not in data:
            raise fail(f"{where}: base_state_dict needs its base_sha256")
    max_chunks = data.get("max_chunks")
    if max_chunks is not None and (
        not isinstance(max_chunks, int) or isinstance(max_chunks, bool) or max_chunks < 1
    ):
        raise fail(f"{where}: max_chunks must be a positive integer or null, got {max_chunks!r}")
    if spectrogram.sample_rate != sample_rate:
        raise fail(
            f"{where}: spectrogram sample_rate {spectrogram.sample_rate} differs from the ensemble's {sample_rate}"
        )
    chunk = data["chunk_seconds"]
    if not isinstance(chunk, (int, float)) or chunk <= 0:
        raise fail(f"{where}: chunk_seconds must be positive, got {chunk!r}")
    if not isinstance(data["hparams"], dict):
        raise fail(f"{where}: hparams must be an object")
    return MemberSpec(
        name=name,
        architecture=architecture,
        hparams=data["hparams"],
        state_dict=state_path.as_posix(),
        sha256=str(data["sha256"]),
        spectrogram=spectrogram,
        chunk_seconds=float(chunk),
        max_chunks=max_chunks,
        base_state_dict=base_path,
        base_sha256=str(data["base_sha256"]) if base_path else None,
        weight=float(weight),
    )


def _inside(value: object, what: str, fail) -> Path:
    path = Path(str(value))
    if path.is_absolute() or ".." in path.parts:
        raise fail(f"{what} must be a path inside the weights folder, got {str(path)!r}")
    return path


def check_state_dict_file(weights_dir: Path, member: MemberSpec, manifest_path: Path) -> None:
    files = [(member.state_dict, member.sha256)]
    if member.base_state_dict:
        files.append((member.base_state_dict, member.base_sha256))
    for name, expected in files:
        path = weights_dir / name
        if not path.is_file():
            raise ManifestError(f"{manifest_path}: member {member.name!r}: state-dict file {path} is missing")
        raw = path.read_bytes()
        _refuse_lfs_pointer(path, raw)
        digest = hashlib.sha256(raw).hexdigest()
        if digest != expected:
            raise ManifestError(
                f"{path}: SHA-256 is {digest[:12]}..., the manifest expects {expected[:12]}...: "
                "the file is corrupt or belongs to another ensemble"
            )


def _refuse_lfs_pointer(path: Path, raw: bytes) -> None:
    if raw.startswith(_LFS_POINTER):
        raise ManifestError(
            f"{path} is a Git LFS pointer, not the file itself: run `git lfs pull`, "
            "or commit weights as plain files (repo2docker does not resolve LFS)"
        )
