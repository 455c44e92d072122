"""A real Hub API on loopback: `olah` in offline mode serving local git repos, for tests.

olah needs a newer fastapi than vLLM allows, so it lives in a virtual environment of its own; its `olah-cli` is
found through `LTR_OLAH_CLI` or PATH. Repos are plain git repos at `<root>/models/<org>/<name>` (weights as normal
blobs, no LFS); a new commit is served at once, without a restart. olah is read-only: uploads cannot be tested here.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

GIT_ENV = {
    "GIT_AUTHOR_NAME": "ltr-tests",
    "GIT_AUTHOR_EMAIL": "tests@localhost",
    "GIT_COMMITTER_NAME": "ltr-tests",
    "GIT_COMMITTER_EMAIL": "tests@localhost",
}


def olah_cli() -> str | None:
    """`LTR_OLAH_CLI`, else the one `.ci/setup.sh` installs in `.venv-olah`, else PATH."""
    beside = Path(__file__).resolve().parent.parent / ".venv-olah" / "bin" / "olah-cli"
    return os.environ.get("LTR_OLAH_CLI") or (str(beside) if beside.exists() else shutil.which("olah-cli"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalHub:
    """Local git repos served over the Hub API. `endpoint` is what `HF_ENDPOINT` should point at."""

    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.port = port
        self.endpoint = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None

    def repo_dir(self, repo_id: str) -> Path:
        return self.root / "models" / repo_id

    def _git(self, repo_id: str, *args: str) -> str:
        result = subprocess.run(
            ["git", *args],
            cwd=self.repo_dir(repo_id),
            env={**os.environ, **GIT_ENV},
            check=True,
            capture_output=True,
            text=True,
        )
        return result.stdout.strip()

    def commit(self, repo_id: str, files: Path | None = None, message: str = "update", tag: str | None = None) -> str:
        """Copy `files` (a folder) into the repo, commit everything, optionally tag; return the commit sha."""
        repo = self.repo_dir(repo_id)
        if not (repo / ".git").exists():
            repo.mkdir(parents=True, exist_ok=True)
            self._git(repo_id, "init", "-q", "-b", "main")
        if files is not None:
            shutil.copytree(files, repo, dirs_exist_ok=True)
        self._git(repo_id, "add", "-A")
        self._git(repo_id, "commit", "-q", "--allow-empty", "-m", message)
        if tag:
            self._git(repo_id, "tag", tag)
        return self._git(repo_id, "rev-parse", "HEAD")

    def start(self, log_dir: Path) -> None:
        cli = olah_cli()
        if cli is None:
            raise RuntimeError("olah-cli not found: set LTR_OLAH_CLI (bash .ci/setup.sh installs it in .venv-olah)")
        config = log_dir / "olah.toml"
        unused = f"127.0.0.1:{free_port()}"  # upstream deliberately unreachable
        config.write_text(
            "\n".join(
                [
                    "[basic]",
                    'host = "127.0.0.1"',
                    f"port = {self.port}",
                    f'repos-path = "{log_dir / "olah-cache"}"',
                    'hf-scheme = "http"',
                    f'hf-netloc = "{unused}"',
                    f'hf-lfs-netloc = "{unused}"',
                    'mirror-scheme = "http"',
                    f'mirror-netloc = "127.0.0.1:{self.port}"',
                    f'mirror-lfs-netloc = "127.0.0.1:{self.port}"',
                    f'mirrors-path = ["{self.root}"]',
                    "[accessibility]",
                    "offline = true",
                    "",
                ]
            )
        )
        log = open(log_dir / "olah.log", "wb")  # noqa: SIM115 - lives as long as the server
        self.process = subprocess.Popen([cli, "-c", str(config)], cwd=log_dir, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"olah exited early; see {log_dir / 'olah.log'}")
            try:
                urllib.request.urlopen(self.endpoint + "/api/models/none/none/revision/main", timeout=1)
            except urllib.error.HTTPError:
                return  # the server answers (401 for a missing repo): it is up
            except OSError:
                time.sleep(0.3)
                continue
            return
        raise RuntimeError("olah did not start within 60 s")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
