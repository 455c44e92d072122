"""Tell a pickle by its name or its content, never by unpickling it.

A pickle runs code when it is loaded, so neither the loader nor an upload may let one through. The name alone
is not enough: `MODEL.BIN`, `model.pkl.gz` or a pickle saved as `weights.dat` are pickles all the same. The
content is read with `pickletools` (a parser that only decodes opcodes) and looked into where a pickle hides:
bare pickle streams of any protocol, gzip / bz2 / xz / zlib-compressed ones (joblib), zip archives such as
`torch.save` files (`<name>/data.pkl`) or `.npz`, and numpy `.npy` arrays of an object dtype (they load only with
`allow_pickle`). Only the first `SNIFF_BYTES` of a file (or archive member) are read.
"""

from __future__ import annotations

import ast
import bz2
import io
import json
import lzma
import pickletools
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import IO, Any

import numpy as np

PICKLE_SUFFIXES = frozenset({".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".joblib", ".dill"})
COMPRESSION_SUFFIXES = frozenset({".gz", ".bz2", ".xz", ".lzma", ".z", ".zlib", ".lz4", ".zst"})
SNIFF_BYTES = 64 * 1024

_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
_MAX_SAFETENSORS_HEADER = 100_000_000  # the safetensors format's own limit
_MAX_DEPTH = 3  # an archive in a compressed file in an archive is as deep as we look; deeper is refused
_MAX_MEMBERS = 10_000  # each member costs a read of up to SNIFF_BYTES; more than this is refused, not inspected


def is_pickle_name(name: str) -> bool:
    """Whether a file name says pickle (`.bin`, `.pt`, `.pkl`, `.joblib`, ...), in any case, compressed or not."""
    suffixes = [s.lower() for s in PurePosixPath(name).suffixes]
    while suffixes and suffixes[-1] in COMPRESSION_SUFFIXES:
        suffixes.pop()
    return bool(suffixes) and suffixes[-1] in PICKLE_SUFFIXES


def pickle_reason(path: str | Path) -> str | None:
    """Why the regular file at `path` must be treated as a pickle (its name, or what its content is), or None."""
    path = Path(path)
    if is_pickle_name(path.name):
        return f"named like a pickle checkpoint ({''.join(path.suffixes)})"
    with path.open("rb") as stream:
        return _content_reason(stream, path.stat().st_size, depth=0)


def _content_reason(stream: IO[bytes], size: int, depth: int) -> str | None:
    head = stream.read(SNIFF_BYTES)
    if head.startswith(_ZIP_MAGICS):
        stream.seek(0)
        return _zip_reason(stream, depth)
    if _is_safetensors(stream, head, size):
        return None
    return _head_reason(head, size if len(head) >= size else None, depth)


def _is_safetensors(stream: IO[bytes], head: bytes, size: int) -> bool:
    """An 8-byte little-endian length, then that many bytes of a JSON object: a safetensors file, not a pickle.

    The length bytes may spell pickle opcodes by chance (a 640-byte header starts with `\\x80\\x02`), but JSON text
    cannot carry a pickle that calls anything: its strings hold no raw newlines or control bytes.
    """
    length = int.from_bytes(head[:8], "little")
    if len(head) < 9 or head[8:9] != b"{" or not 2 <= length <= _MAX_SAFETENSORS_HEADER or 8 + length > size:
        return False
    header = head[8 : 8 + length] + stream.read(max(0, 8 + length - len(head)))
    try:
        return isinstance(json.loads(header), dict)
    except (ValueError, RecursionError):
        return False


def _head_reason(head: bytes, size: int | None, depth: int) -> str | None:
    """What the first bytes of a (possibly decompressed) stream say; `size` is its full size when `head` is all."""
    if head.startswith(_NPY_MAGIC):
        return _npy_reason(head)
    if head.startswith(_ZIP_MAGICS):  # only decompressed data gets here: it cannot be opened as an archive
        return "a zip archive inside compressed data (not inspected)"
    decompressed = _decompress_head(head)
    if decompressed is None:
        return _pickle_stream_reason(head, size)
    kind, inner, complete = decompressed
    if depth >= _MAX_DEPTH:
        return f"{kind}-compressed data nested too deep to inspect"
    reason = _head_reason(inner, len(inner) if complete else None, depth + 1)
    return f"{kind}-compressed data holding {reason}" if reason else None


def _pickle_stream_reason(head: bytes, size: int | None) -> str | None:
    """A pickle of any protocol: its opcodes parse up to a STOP, or through the whole window of longer data.

    `size` is None when `head` is only the start of the data. A stream that starts with the protocol 2-5 marker
    counts even when it does not parse (a damaged pickle is still no upload).
    """
    stream = io.BytesIO(head)
    count = 0
    try:
        for opcode, _arg, _position in pickletools.genops(stream):
            count += 1
            if opcode.name == "STOP" and count >= 2:  # a lone STOP unpickles nothing
                return _protocol_marker(head) or "a pickle stream (protocol 0 or 1)"
    except ValueError:  # an unknown opcode, a malformed argument, or the end of the window
        if size is None and stream.tell() >= len(head) and count >= 2:
            return _protocol_marker(head) or "a pickle stream (its opcodes parse through the whole first window)"
    return _protocol_marker(head)


def _protocol_marker(head: bytes) -> str | None:
    """The PROTO opcode of protocols 2 to 5 (`\\x80\\x02` to `\\x80\\x05`) that starts every modern pickle."""
    return f"a pickle (protocol {head[1]})" if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5 else None


_DECOMPRESSORS: tuple[tuple[tuple[bytes, ...], str, Callable[[], Any]], ...] = (
    ((b"\x1f\x8b",), "gzip", lambda: zlib.decompressobj(16 + zlib.MAX_WBITS)),
    ((b"BZh",), "bz2", bz2.BZ2Decompressor),
    ((b"\xfd7zXZ", b"]\x00\x00"), "xz/lzma", lzma.LZMADecompressor),
    ((b"\x78\x01", b"\x78\x5e", b"\x78\x9c", b"\x78\xda"), "zlib", zlib.decompressobj),  # joblib's default
)


def _decompress_head(head: bytes) -> tuple[str, bytes, bool] | None:
    """(kind, the first decompressed bytes, whether that is all of it) for gzip, bz2, xz/lzma, zlib; else None."""
    for magics, kind, make in _DECOMPRESSORS:
        if head.startswith(magics):
            decompressor = make()
            try:
                data = decompressor.decompress(head, SNIFF_BYTES + 1)
            except (zlib.error, OSError, EOFError, lzma.LZMAError):
                return None  # not really compressed data (or corrupt): judged as it is
            return kind, data[:SNIFF_BYTES], bool(decompressor.eof) and len(data) <= SNIFF_BYTES
    return None


def _npy_reason(head: bytes) -> str | None:
    """`.npy` with an object dtype (or a header we cannot read, which numpy might only read with pickle)."""
    try:
        major = head[6]
        width, encoding = {1: (2, "latin1"), 2: (4, "latin1"), 3: (4, "utf8")}[major]
        length = int.from_bytes(head[8 : 8 + width], "little")
        header = ast.literal_eval(head[8 + width : 8 + width + length].decode(encoding))
        dtype = np.lib.format.descr_to_dtype(header["descr"])
    except (IndexError, KeyError, TypeError, ValueError, SyntaxError, RecursionError, MemoryError) as exc:
        return f"a numpy array file whose header cannot be read ({type(exc).__name__})"
    return "a numpy array of an object dtype (loads only with allow_pickle)" if dtype.hasobject else None


def _zip_reason(stream: IO[bytes], depth: int) -> str | None:
    """A zip archive holding a pickle: `data.pkl` (torch.save), a pickle-named member, or pickle content."""
    if depth >= _MAX_DEPTH:
        return "a zip archive nested too deep to inspect"
    try:
        with zipfile.ZipFile(stream) as archive:
            if len(archive.infolist()) > _MAX_MEMBERS:
                return f"a zip archive of more than {_MAX_MEMBERS} members (not inspected)"
            for info in archive.infolist():
                if info.is_dir():
                    continue
                if PurePosixPath(info.filename).name.lower() == "data.pkl":
                    return f"a zip archive holding {info.filename} (the torch.save format)"
                if is_pickle_name(info.filename):
                    return f"a zip archive holding {info.filename}"
                with archive.open(info) as member:
                    reason = _content_reason(member, info.file_size, depth + 1)
                if reason:
                    return f"a zip archive whose member {info.filename} is {reason}"
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError, OSError, EOFError) as exc:
        return f"a zip archive that cannot be inspected ({exc})"
    return None
