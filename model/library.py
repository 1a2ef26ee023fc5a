"""What a folder holds to predict: the grader's payload, or a music library at any depth.

The grader's rule (the default): the `*.mp3` directly in the folder, sorted by name, each
`file_id` the name without its extension. A library (`recursive=True`): every file with an audio
extension at any depth, sorted by relative path, each id that path without its extension
(`Artist/Album/01 Intro`), so two albums' "01 Intro" stay two rows. Symbolic links are followed,
a folder reached twice (a link loop, or two links to one folder) is read once, and nothing found
on the way is dropped silently: an entry that cannot be predicted (a FIFO, a dangling link, a
folder named `x.mp3`, an unreadable sub-folder) is listed with its reason in `skipped`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

AUDIO_EXTENSIONS = ("mp3", "flac", "ogg", "opus", "m4a", "wav")


@dataclass
class Inputs:
    """The files to predict, each with its id (same order), and what was passed over and why."""

    files: list[Path] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def take(self, keep: list[Path]) -> Inputs:
        """The same inputs restricted to `keep` (a shard of `files`), in their order."""
        wanted = set(keep)
        pairs = [(f, i) for f, i in zip(self.files, self.ids) if f in wanted]
        return Inputs([f for f, _ in pairs], [i for _, i in pairs], self.skipped)


def find_inputs(
    folder: str | os.PathLike, recursive: bool = False, extensions: tuple[str, ...] | None = None
) -> Inputs:
    """The payload's mp3s (grader rule), or with `recursive` every audio file under `folder`.
    `extensions`: without the dot, case-insensitive (default: mp3 alone, or AUDIO_EXTENSIONS
    with `recursive`). Raises OSError if `folder` itself cannot be listed."""
    folder = Path(folder)
    suffixes = {
        "." + e.lower().lstrip(".") for e in extensions or (AUDIO_EXTENSIONS if recursive else ("mp3",))
    }
    inputs = Inputs()
    found: list[tuple[str, Path]] = []  # (path relative to folder, path)
    if recursive:
        _walk(folder, "", suffixes, found, inputs.skipped, visited=set())
    else:
        _scan(folder, "", suffixes, found, inputs.skipped, folders=None)
    seen: dict[str, Path] = {}
    for relative, path in sorted(found, key=lambda pair: pair[0]):
        file_id = relative[: -len(Path(relative).suffix)]
        if file_id in seen:  # `a.mp3` beside `a.MP3` or `a.flac`: the CSV holds one row per id
            inputs.skipped.append((path, f"same file_id as {seen[file_id].name} (only that one gets a row)"))
            continue
        seen[file_id] = path
        inputs.files.append(path)
        inputs.ids.append(file_id)
    return inputs


def _scan(
    folder: Path, prefix: str, suffixes: set[str], found: list, skipped: list, folders: list | None
) -> None:
    """One folder's entries: audio files into `found`, sub-folders into `folders` (when walking)."""
    with os.scandir(folder) as entries:
        for entry in entries:
            wanted = os.path.splitext(entry.name)[1].lower() in suffixes
            if not wanted and folders is None:
                continue
            path, relative = folder / entry.name, prefix + entry.name
            try:  # through links; the folder listing's own type where there is no link: no stat
                is_folder = entry.is_dir()
                is_file = not is_folder and entry.is_file()
            except OSError as error:
                skipped.append((path, error.strerror or str(error)))
                continue
            if is_folder and folders is not None:
                folders.append((path, relative + "/"))
            elif is_folder and wanted:
                skipped.append((path, "a folder, not a file"))
            elif is_file and wanted:
                found.append((relative, path))
            elif entry.is_symlink() and not path.exists():
                skipped.append((path, "a dangling link"))
            elif wanted:
                skipped.append((path, "not a regular file (a FIFO, socket or device)"))


def _walk(folder: Path, prefix: str, suffixes: set[str], found: list, skipped: list, visited: set) -> None:
    """Depth first, without recursion (libraries nest deep), each real folder once."""
    pending = [(folder, prefix)]
    while pending:
        current, relative = pending.pop()
        try:
            identity = os.stat(current)
        except OSError as error:
            skipped.append((current, error.strerror or str(error)))
            continue
        key = (identity.st_dev, identity.st_ino)
        if key in visited:
            skipped.append((current, "a folder already read (a symbolic link loop, or a second link to it)"))
            continue
        visited.add(key)
        folders: list[tuple[Path, str]] = []
        try:
            _scan(current, relative, suffixes, found, skipped, folders)
        except OSError as error:  # an unreadable sub-folder costs its own files only
            skipped.append((current, f"cannot list this folder: {error.strerror or error}"))
            continue
        pending.extend(reversed(sorted(folders)))
