"""What an upload may send from a folder, and where in the repo it may put it: all checked before any Hub call.

- Repo paths (`repo_path`) are relative `/`-separated paths inside the repo: no empty, `.` or `..` part, no `.git`
  part in any case, no backslash or control character. Every file of a plan goes through it.
- A folder gives only its regular files (`scan_folder`). A symbolic link is refused, wherever it points: a link to
  a token file outside the folder would upload the token. The one exception is a Hub cache snapshot, whose files are
  links into the same repo's `blobs/`; those are followed only when they land there. Hidden entries (`.git`,
  `.cache`) are left out. FIFOs, sockets and devices are refused.
- Pickles are refused by name or by content (`pickles.pickle_reason`).
- Sizes: each file and the whole commit stay under `SizeLimits`, 2 GiB a file and 10 GiB in all by default (a
  predictor on a 1B-parameter backbone is 2 GiB in fp16); a limit is raised by the manifest keys `max_file_size` /
  `max_total_size` or the `--max-file-size` / `--max-total-size` flags.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import PickleCheckpointError, RepoPathError, SizeLimitError, UnsafeFileError
from ..loading.pickles import pickle_reason

DEFAULT_MAX_FILE_SIZE = 2 * 2**30
DEFAULT_MAX_TOTAL_SIZE = 10 * 2**30
# As transformers reads `max_shard_size`: "GB" is 10**9 bytes, "GiB" 2**30.
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_UNITS |= {"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([a-zA-Z]*)")


def parse_size(value: object, where: str) -> int:
    """Bytes from an int, `"1500000"`, `"500MB"` (10**6 bytes each) or `"2GiB"` (2**30); refuses anything else."""
    match = _SIZE.fullmatch(str(value).strip()) if isinstance(value, int | float | str) else None
    if not isinstance(value, bool) and match and match.group(2).lower() in _UNITS:
        size = int(float(match.group(1)) * _UNITS[match.group(2).lower()])
        if size > 0:
            return size
    raise SizeLimitError(f"{where}: {value!r} is not a size; write bytes, or a number with a unit (500MB, 2GiB)")


def format_size(count: int) -> str:
    """`count` bytes in binary units (`1.5 GiB`)."""
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{count} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


@dataclass(frozen=True)
class SizeLimits:
    """The largest file, and the largest commit, an upload sends (bytes)."""

    max_file: int = DEFAULT_MAX_FILE_SIZE
    max_total: int = DEFAULT_MAX_TOTAL_SIZE

    def check_file(self, name: str, size: int) -> None:
        if size > self.max_file:
            raise SizeLimitError(
                f"{name}: {format_size(size)} is over the per-file limit of {format_size(self.max_file)}; "
                "raise it with --max-file-size or the manifest key max_file_size if this file belongs in the upload"
            )

    def check_total(self, name: str, size: int) -> None:
        if size > self.max_total:
            raise SizeLimitError(
                f"{name}: the commit would hold {format_size(size)}, over the total limit of "
                f"{format_size(self.max_total)}; raise it with --max-total-size or the manifest key max_total_size"
            )


def repo_path(value: str, where: str) -> str:
    """`value` if it is a clean path inside the repo (see the module docstring); raises `RepoPathError` otherwise."""
    problem = None
    if not value:
        problem = "it is empty"
    elif value.startswith("/"):
        problem = "it is absolute"
    elif "\\" in value or any(ord(char) < 32 or ord(char) == 127 for char in value):
        problem = "it holds a backslash or a control character"
    elif any(part in ("", ".", "..") for part in value.split("/")):
        problem = "it has an empty, '.' or '..' part"
    elif any(part.lower() == ".git" for part in value.split("/")):
        problem = "it names a .git folder"
    if problem:
        raise RepoPathError(f"{where}: {value!r} is not a path inside the repo ({problem}); write e.g. 'my-predictor'")
    return value


@dataclass(frozen=True)
class FolderFile:
    """One file a folder contributes: its path inside the folder, the real file to read, and its size."""

    relative: str
    source: Path
    size: int


def scan_folder(folder: Path, limits: SizeLimits, *, blobs: Path | None = None) -> list[FolderFile]:
    """Every file an upload of `folder` sends, checked (no link, pickle, or file over the limit; paths clean).

    `blobs` is the `blobs/` folder of the Hub cache repo that `folder` is a snapshot of: links into it are followed.
    Raises on the first offence, naming the file.
    """
    files = []
    try:
        root = folder.resolve(strict=True)
        for path, real in _regular_files(root, root, blobs.resolve() if blobs else None):
            relative = repo_path(path.relative_to(root).as_posix(), str(path))
            size = real.stat().st_size
            limits.check_file(str(path), size)
            reason = pickle_reason(path)
            if reason:
                raise PickleCheckpointError(f"{path}: {reason}; pickle files are never uploaded, keep safetensors only")
            files.append(FolderFile(relative, real, size))
    except OSError as exc:
        raise UnsafeFileError(f"{exc.filename or folder}: cannot be read ({exc.strerror or exc})") from exc
    return files


def cache_blobs(snapshot: Path | None) -> Path | None:
    """The `blobs/` folder next to a Hub cache snapshot (`<repo>/snapshots/<commit>`), or None if it is not one."""
    if snapshot is None or snapshot.parent.name != "snapshots":
        return None
    return snapshot.parent.parent / "blobs"


def _regular_files(directory: Path, root: Path, blobs: Path | None) -> Iterator[tuple[Path, Path]]:
    """(path, real file) for each non-hidden file under `directory`, sorted; refuses links and special files."""
    with os.scandir(directory) as scan:
        entries = sorted(scan, key=lambda entry: entry.name)
    for entry in entries:
        path = Path(entry.path)
        if entry.name.startswith("."):
            continue
        if entry.is_symlink():
            real = path.resolve()
            if blobs is None or not real.is_relative_to(blobs) or not real.is_file():
                raise UnsafeFileError(
                    f"{path}: a symbolic link (to {os.readlink(path)}); an upload sends only the regular files "
                    "inside the folder: copy the file in if it belongs there"
                )
            yield path, real
        elif entry.is_dir(follow_symlinks=False):
            yield from _regular_files(path, root, blobs)
        elif entry.is_file(follow_symlinks=False):
            real = path.resolve()
            if not real.is_relative_to(root):
                raise UnsafeFileError(f"{path}: its real path {real} is outside the folder {root}")
            yield path, real
        else:
            raise UnsafeFileError(f"{path}: not a regular file (a FIFO, socket or device); it cannot be uploaded")
