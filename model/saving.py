"""Writing ensemble folders (weights/, a run folder, a built ensemble) so that a crash never
leaves a half-written one: state dicts under content-addressed names first, the manifest last
(an atomic rename), stale state dicts removed after. Also: copying an ensemble, assembling one
from the members of several folders, and placing the frozen pretrained weights members refer to.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import torch

from .atomic import write_atomic
from .manifest import (
    MANIFEST,
    Manifest,
    ManifestError,
    MemberSpec,
    check_state_dict_file,
    load_manifest,
    parse_manifest,
)


def save_ensemble(
    weights_dir: str | os.PathLike, manifest: Manifest, state_dicts: dict[str, dict[str, torch.Tensor]]
) -> Manifest:
    """Write an ensemble so that a crash never leaves a half-written one.

    Members named in `state_dicts` get their weights written (content-addressed) and their
    `state_dict`/`sha256` filled in; a member not named there keeps the file its spec refers to,
    which must already be in `weights_dir` (e.g. weights/musicnn/musicnn_pair.pt for the zero-shot
    member). Returns the manifest as written.
    """
    weights_dir = Path(weights_dir)
    weights_dir.mkdir(parents=True, exist_ok=True)
    members = []
    for member in manifest.members:
        if member.kind == "prior" or member.name not in state_dicts:
            members.append(member)
            continue
        raw = _serialise(state_dicts[member.name])
        digest = hashlib.sha256(raw).hexdigest()
        file_name = f"{member.name}-{digest[:12]}.pt"  # content-addressed: never overwrites a live file
        write_atomic(weights_dir / file_name, raw)
        members.append(MemberSpec(**{**member.__dict__, "state_dict": file_name, "sha256": digest}))
    written = Manifest(**{**manifest.__dict__, "members": tuple(members)})
    text = json.dumps(written.to_json(), indent=2) + "\n"
    parse_manifest(json.loads(text), weights_dir / MANIFEST)  # never write what load would refuse
    for member in members:
        if member.kind != "prior" and member.name not in state_dicts:  # a file referred to, not just written
            check_state_dict_file(weights_dir, member, weights_dir / MANIFEST)
    write_atomic(weights_dir / MANIFEST, text.encode())  # the commit point
    live = {m.state_dict for m in members if m.state_dict}
    for stale in weights_dir.glob("*.pt"):
        if stale.name not in live:
            stale.unlink()
    return written


def copy_ensemble(source: str | os.PathLike, target: str | os.PathLike) -> Manifest:
    """The ensemble in `source` written to `target` as `save_ensemble` writes (atomically, the
    manifest last), with the pretrained weights its members name; the same files either side."""
    manifest = load_manifest(source)
    return assemble_ensemble(target, manifest, {member.name: Path(source) for member in manifest.members})


def assemble_ensemble(target: str | os.PathLike, manifest: Manifest, sources: dict[str, Path]) -> Manifest:
    """`manifest` written to `target` with each member's files read from its folder in `sources`
    (the ensemble folder its spec came from): members of several runs in one ensemble."""
    target, states = Path(target), {}
    for member in manifest.members:
        source = sources[member.name]
        shared = [member.base_state_dict] + [member.state_dict] * ("/" in (member.state_dict or ""))
        for relative in filter(None, shared):  # pretrained weights in their own folder (musicnn/)
            place_base_weights(target, source / relative)
        if member.state_dict and "/" not in member.state_dict:
            states[member.name] = torch.load(
                source / member.state_dict, map_location="cpu", weights_only=True
            )
    return save_ensemble(target, manifest, states)


def describe_ensemble(weights_dir: str | os.PathLike) -> str | None:
    """What the ensemble in `weights_dir` is (its description), or None if there is none: what a
    command that writes there says it replaces."""
    if not (Path(weights_dir) / MANIFEST).exists():
        return None
    try:
        return load_manifest(weights_dir).description or "an ensemble without a description"
    except ManifestError as error:
        return f"an ensemble that does not load: {error}"


def place_base_weights(weights_dir: str | os.PathLike, source: str | os.PathLike) -> tuple[str, str]:
    """Make frozen pretrained weights available to a member as its `base_state_dict`: `source`,
    with the licence (`LICENSE*`) and `provenance.json` beside it, is copied to
    `weights_dir/<its folder name>/` unless already there. Returns (path relative to
    `weights_dir`, SHA-256)."""
    source = Path(source)
    relative = f"{source.parent.name}/{source.name}"
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    target = Path(weights_dir) / relative
    if target.is_file():
        if hashlib.sha256(target.read_bytes()).hexdigest() != digest:
            raise ValueError(
                f"{target} holds other weights than {source}: write the ensemble elsewhere (--out)"
            )
        return relative, digest
    companions = [
        p for p in source.parent.iterdir() if p.name.startswith("LICENSE") or p.name == "provenance.json"
    ]
    for item in [*companions, source]:
        write_atomic(target.parent / item.name, item.read_bytes())
    return relative, digest


def _serialise(state_dict: dict[str, torch.Tensor]) -> bytes:
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu().contiguous() for k, v in state_dict.items()}, buffer)
    return buffer.getvalue()
