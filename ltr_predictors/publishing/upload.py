"""Send a checked `UploadPlan` to the Hub as one atomic commit, then read it back.

`upload` creates the repo (and branch) if needed and sends every file in one `create_commit`, after reading and
hashing each file, so that an unreadable one stops it before any Hub call. `verify_upload` downloads each predictor
at that commit and checks that it scores the probe prompts as the local copy did. `ltr-predictors upload`
(`cli/upload.py`) runs plan, upload and verification, with exit codes that say how far it got.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable

import numpy as np
from huggingface_hub import CommitInfo, HfApi
from huggingface_hub.errors import HfHubHTTPError

from ..errors import UploadFailedError, UploadVerificationError
from ..predictor import LengthPredictor
from .plan import PROBE_PROMPTS, UploadPlan


def upload(plan: UploadPlan, api: HfApi) -> CommitInfo:
    """Create the repo if needed and send the whole plan as one atomic commit.

    Every file is read and hashed before the first Hub call. Raises `UploadFailedError` when a Hub call fails:
    `create_commit` is atomic, so no commit was made (the repo may have been created, content may have been sent).
    """
    m = plan.manifest
    operations = plan.operations()
    step = "create_repo"
    try:
        api.create_repo(m.repo_id, private=m.private, exist_ok=True)
        if m.revision and m.revision != "main":
            step = "create_branch"
            api.create_branch(m.repo_id, branch=m.revision, exist_ok=True)
        step = "create_commit"
        return api.create_commit(m.repo_id, operations=operations, commit_message=m.commit_message, revision=m.revision)
    except HfHubHTTPError as exc:
        raise UploadFailedError(f"{m.repo_id}: {step} failed, the Hub answered: {exc}; nothing was committed") from exc
    except Exception as exc:  # a network failure or a missing token: whatever it is, no commit came back
        raise UploadFailedError(
            f"{m.repo_id}: {step} failed ({type(exc).__name__}: {exc}); the Hub reported no commit: look at the "
            "repo's history before retrying"
        ) from exc


def verify_upload(
    plan: UploadPlan,
    revision: str,
    *,
    endpoint: str | None = None,
    token: str | bool | None = None,
    accept_license: str | Iterable[str] | None = None,
) -> dict[str, float]:
    """Download each predictor at `revision`, load it, and compare its scores; return the largest difference."""
    differences: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="ltr-verify-") as cache:
        for checked in plan.predictors:
            loaded = LengthPredictor.from_pretrained(
                plan.manifest.repo_id,
                subfolder=None if checked.subfolder == "." else checked.subfolder,
                revision=revision,
                accept_license=accept_license,
                endpoint=endpoint,
                token=token,
                cache_dir=cache,
            )
            scores = loaded.score(PROBE_PROMPTS)
            differences[checked.subfolder] = float(np.max(np.abs(scores - checked.scores)))
            if not np.allclose(scores, checked.scores, rtol=1e-4, atol=1e-4):
                raise UploadVerificationError(
                    f"{plan.manifest.repo_id}:{checked.subfolder}@{revision}: downloaded copy scores differently "
                    f"from {checked.folder} (largest difference {differences[checked.subfolder]:.3g})"
                )
    return differences
