"""Pickle detection by name and content (`ltr_predictors.pickles`): what uploads refuse, and what must pass.

Every pickle here is written by the real writers (`pickle`, `torch.save`, `numpy.save`, gzip/bz2/lzma/zlib as joblib
compresses) under a neutral name, so only the content can give it away. Nothing is ever unpickled: a pickle that
would create a file when loaded stays harmless.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import pickle
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from ltr_predictors.loading.pickles import SNIFF_BYTES, is_pickle_name, pickle_reason

PAYLOAD = {"weights": [0.5, 1.5], "name": "x" * 20}


def torch_bytes(legacy: bool = False) -> bytes:
    buffer = io.BytesIO()
    torch.save({"w": torch.zeros(3)}, buffer, _use_new_zipfile_serialization=not legacy)
    return buffer.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def npz_bytes(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def nested_zip(depth: int) -> bytes:
    data = b"plain text"
    for level in range(depth):
        data = zip_bytes({f"level{level}.zip": data})
    return data


# Pickles, and archives that could hide one but cannot be looked into: all refused.
PICKLES = {
    **{f"protocol-{p}": pickle.dumps(PAYLOAD, protocol=p) for p in range(6)},
    "protocol-0, longer than the sniffed window": pickle.dumps(list(range(SNIFF_BYTES)), protocol=0),
    "protocol-4 numpy, longer than the window": pickle.dumps(np.arange(SNIFF_BYTES, dtype=np.float64), protocol=4),
    "gzip": gzip.compress(pickle.dumps(PAYLOAD, protocol=4)),
    "gzip, longer than the window": gzip.compress(pickle.dumps(np.random.default_rng(0).random(20_000), protocol=5)),
    "bz2": bz2.compress(pickle.dumps(PAYLOAD, protocol=4)),
    "xz": lzma.compress(pickle.dumps(PAYLOAD, protocol=4)),
    "lzma (alone)": lzma.compress(pickle.dumps(PAYLOAD, protocol=4), format=lzma.FORMAT_ALONE),
    "zlib (joblib's default)": zlib.compress(pickle.dumps(PAYLOAD, protocol=4), 3),
    "torch.save (zip)": torch_bytes(),
    "torch.save (legacy)": torch_bytes(legacy=True),
    "object .npy": npy_bytes(np.array([{"a": 1}, None], dtype=object)),
    "structured .npy with an object field": npy_bytes(np.zeros(2, dtype=[("a", "f4"), ("b", "O")])),
    ".npz with an object member": npz_bytes(a=np.arange(3), b=np.array([None], dtype=object)),
    "damaged pickle (protocol marker)": b"\x80\x04\x95" + b"\xff" * 40,
    "malformed .npy header": b"\x93NUMPY\x01\x00\x10\x00{'descr': <<<}   \n",
    "zip holding a renamed pickle": zip_bytes({"notes.txt": b"hi", "blob": pickle.dumps(PAYLOAD, protocol=2)}),
    "unreadable zip": b"PK\x03\x04" + b"\x00" * 60,
    "zip nested too deep": nested_zip(4),
    "zip of too many members": zip_bytes({f"m{i}": b"" for i in range(10_001)}),
}


@pytest.mark.parametrize("name", sorted(PICKLES))
def test_pickles_are_found_by_content_under_any_name(tmp_path, name):
    path = tmp_path / "weights.dat"
    path.write_bytes(PICKLES[name])
    assert pickle_reason(path), f"{name} was not recognised as a pickle"


def safetensors_with_header_length(path: Path, length: int) -> Path:
    """A real safetensors file whose JSON header is exactly `length` bytes (its first 8 bytes spell `length`)."""
    save_file({"w": torch.ones(2)}, str(path), metadata={"pad": ""})
    header = json.loads(path.read_bytes()[8 : 8 + struct.unpack("<Q", path.read_bytes()[:8])[0]])
    header["__metadata__"]["pad"] = ""
    text = json.dumps(header, separators=(",", ":"))
    header["__metadata__"]["pad"] = "x" * (length - len(text))
    text = json.dumps(header, separators=(",", ":"))
    assert len(text) == length
    path.write_bytes(struct.pack("<Q", length) + text.encode() + torch.ones(2).numpy().tobytes())
    return path


# Header lengths whose bytes are pickle opcodes: 640 = b"\x80\x02" (protocol 2), 0x0480 (protocol 4), 0x2E4E = b"N."
@pytest.mark.parametrize("length", [0x0280, 0x0480, 0x2E4E, 200])
def test_safetensors_whose_length_spells_pickle_opcodes_is_not_a_pickle(tmp_path, length):
    path = safetensors_with_header_length(tmp_path / "model.safetensors", length)
    assert torch.equal(load_file(str(path))["w"], torch.ones(2))  # safetensors reads it
    assert pickle_reason(path) is None


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b'{"model": {"pred_model": "bert-base-uncased"}}',
        b"[PAD]\n[UNK]\n[CLS]\n",
        b"#version: 0.2\nh e\n",
        b"# A card\n\nSome text.\n",
        bytes(range(256)) * 1024,
        npy_bytes(np.arange(10, dtype=np.float32)),
        npz_bytes(a=np.arange(3), b=np.ones((2, 2))),
        gzip.compress(b'{"a": 1}\n' * 100),
        nested_zip(2),
    ],
    ids=["empty", "json", "vocab", "merges", "markdown", "binary", "npy", "npz", "gzip-json", "zip-in-zip"],
)
def test_ordinary_files_are_not_pickles(tmp_path, content):
    path = tmp_path / "file.dat"
    path.write_bytes(content)
    assert pickle_reason(path) is None


@pytest.mark.parametrize(
    ("name", "pickled"),
    [
        ("MODEL.BIN", True),
        ("pytorch_model.bin", True),
        ("model.Pt", True),
        ("weights.pkl.gz", True),
        ("estimator.joblib", True),
        ("est.JOBLIB.xz", True),
        ("old.ckpt", True),
        ("model.safetensors", False),
        ("pt.safetensors", False),
        ("vocab.txt", False),
        ("archive.gz", False),
    ],
)
def test_pickle_names_in_any_case(name, pickled):
    assert is_pickle_name(name) is pickled


class _Trap:
    """Unpickling this creates the file it names: proof that detection never unpickles."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def test_detection_never_unpickles(tmp_path):
    marker = tmp_path / "unpickled"
    for protocol in (0, 2, 5):
        path = tmp_path / f"trap-{protocol}.dat"
        path.write_bytes(pickle.dumps(_Trap(marker), protocol=protocol))
        assert pickle_reason(path)
    assert not marker.exists()
