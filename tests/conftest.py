"""Test session set-up: nothing leaves the machine, every Hub call goes to an `olah` server on loopback.

The environment is fixed here, before any Hugging Face library is imported (they read it at import time): a
temporary `HF_HOME`, telemetry and analytics off, and `HF_ENDPOINT` pointing at the loopback port that the
`local_hub` fixture serves. A socket guard fails any test that tries to connect off the machine.
"""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="ltr-tests-"))
for _var in ("HF_ENDPOINT", "HF_HUB_OFFLINE", "HF_TOKEN"):
    os.environ.pop(_var, None)
os.environ["HF_HOME"] = str(_SESSION_DIR / "hf-home")
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_HUB_DISABLE_UPDATE_CHECK"] = "1"
os.environ["HF_EVALUATE_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["DO_NOT_TRACK"] = "1"
os.environ["NO_PROXY"] = "127.0.0.1,localhost"

from hub_mirror import LocalHub, free_port  # noqa: E402

_HUB_PORT = free_port()
os.environ["HF_ENDPOINT"] = f"http://127.0.0.1:{_HUB_PORT}"

import pytest  # noqa: E402
from tiny_models import SEED_ZOO, write_seed_predictor, write_seed_zoo, write_tokenizer_repo  # noqa: E402

pytest_plugins = ["license_marker", "hub_marker"]

SEED_REPO = "Luna2099/vllm-ltr-predictors"
AUTHORS_REPO = "LLM-ltr/OPT-Predictors"
AUTHORS_RUN = "opt-125m-llama3-8b-lmsys-score-trainbucket10-b32"

_real_connect = socket.socket.connect


def _loopback_only(self: socket.socket, address: object) -> None:
    host = address[0] if isinstance(address, tuple) else None
    if (
        host is not None
        and host not in ("127.0.0.1", "localhost", "::1", "0.0.0.0")
        and not str(host).startswith("127.")
    ):
        raise ConnectionRefusedError(f"test tried to reach {address}: tests must stay on loopback")
    _real_connect(self, address)  # type: ignore[arg-type]


socket.socket.connect = _loopback_only  # type: ignore[method-assign]
real_connect = _real_connect  # what `hub`-marked tests get back (tests/hub_marker.py)


@pytest.fixture(scope="session")
def session_dir() -> Path:
    return _SESSION_DIR


@pytest.fixture(scope="session")
def local_hub(session_dir: Path) -> Iterator[LocalHub]:
    """olah on loopback serving: the seed zoo (tagged v1.0, then a second commit), the authors' run layout, the
    backbone tokenizer repos (`facebook/opt-125m`, `google-bert/bert-base-uncased`) and a pickle-only repo."""
    hub = LocalHub(session_dir / "mirror", _HUB_PORT)
    build = session_dir / "build"
    write_tokenizer_repo(build / "opt-125m", "opt")
    hub.commit("facebook/opt-125m", build / "opt-125m", "tokenizer")
    write_tokenizer_repo(build / "bert-base-uncased", "bert")
    hub.commit("google-bert/bert-base-uncased", build / "bert-base-uncased", "tokenizer")

    write_seed_zoo(build / "zoo-v1")
    (build / "zoo-v1" / "README.md").write_text("---\ntags:\n- ltr\n---\n# vllm-ltr predictors (test replica)\n")
    hub.first_seed_commit = hub.commit(SEED_REPO, build / "zoo-v1", "seed zoo", tag="v1.0")  # type: ignore[attr-defined]
    kind, mtype, labels = SEED_ZOO["PARS-bert"]
    write_seed_predictor(build / "zoo-v2" / "PARS-bert", kind, mtype, labels, seed=99)
    hub.commit(SEED_REPO, build / "zoo-v2", "retrain PARS-bert")

    write_seed_predictor(build / "authors" / AUTHORS_RUN, "opt", "rank", 1, seed=7)
    hub.commit(AUTHORS_REPO, build / "authors", "authors' runs")

    pickled = build / "pickle-only" / "old"
    (pickled / "finetuned").mkdir(parents=True)
    (pickled / "usage_config.json").write_text(
        '{"model": {"pred_model": "bert-base-uncased", "num_labels": 1, "mtype": "rank", "activation": null,'
        ' "path": "x/finetuned", "max_length": 512, "max_batch_size": 8}}'
    )
    (pickled / "finetuned" / "config.json").write_text('{"model_type": "bert", "num_labels": 1}')
    (pickled / "finetuned" / "pytorch_model.bin").write_bytes(b"\x80\x04not-a-real-pickle" * 20)
    hub.commit("testorg/pickle-only", build / "pickle-only", "pickle")

    hub.start(session_dir)
    yield hub
    hub.stop()
