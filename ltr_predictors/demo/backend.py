"""The logic behind the demo app (`ltr-predictors demo`, the Space): no Gradio in here, so it is testable alone.

It loads predictors (with their license badges and the acceptance step for non-commercial weights), reads a
trace (the embedded demo pack, an uploaded JSONL/CSV, or a Hub dataset), scores it, and reports Kendall tau per
predictor, a ranked table, a scatter plot of score against real length, and what the ranking buys on a batched
server (`queueing`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..benchmarks.queueing import ServerModel, latency_summary
from ..data.traces import TraceRecord, read_trace
from ..errors import PlaygroundError
from ..evaluation.metrics import rank_correlation
from ..licensing.terms import KNOWN_LICENSES, LicenseInfo, check_license_accepted
from ..loading.hub import HubOptions, PredictorSpec, download_predictor
from ..loading.usage_config import USAGE_CONFIG_NAME, UsageConfig
from ..predictor import DEFAULT_PREDICTOR_DIR, LengthPredictor

DEMO_PACK = Path(__file__).parent / "data" / "demo_pack.jsonl"
TRACE_SUFFIXES = (".jsonl", ".jsonl.gz", ".csv", ".csv.gz")
NONCOMMERCIAL_LICENSES = sorted(lic.id for lic in KNOWN_LICENSES.values() if not lic.commercial_use)

Progress = Callable[[float, str], None]


def _no_progress(fraction: float, message: str) -> None:
    """Progress sink when the caller shows none."""


def license_badge(name: str, info: LicenseInfo) -> str:
    """One Markdown line: the predictor, its license, and whether commercial use is allowed."""
    link = f"[{info.license or 'unknown'}]({info.license_link})" if info.license_link else f"`{info.license}`"
    if info.commercial_use is True:
        use = "commercial use allowed"
    elif info.commercial_use is False:
        use = f"**non-commercial only** ({info.terms})"
    else:
        use = "license unknown: check its terms before use"
    return f"- **{name}**: {link} · {use}"


class PredictorPool:
    """Predictors loaded so far, by spec, so that a page does not reload them on every click."""

    def __init__(self, load: Callable[..., LengthPredictor] = LengthPredictor.from_spec) -> None:
        self._load = load
        self._loaded: dict[str, LengthPredictor] = {}

    def get(self, specs: Sequence[str], accept_noncommercial: bool) -> dict[str, LengthPredictor]:
        """Load each spec (`default`, a folder, or `REPO[:SUBFOLDER][@REVISION]`), keyed by `display_name`."""
        specs = [s.strip() for s in specs if s and s.strip()]
        if not specs:
            raise PlaygroundError("choose at least one predictor (e.g. `default`)")
        accept = NONCOMMERCIAL_LICENSES if accept_noncommercial else []
        for spec in specs:
            if spec not in self._loaded:
                self._loaded[spec] = self._load(spec, accept_license=accept)
            elif self._loaded[spec].info.license.commercial_use is False:  # loaded before: accepted again now?
                check_license_accepted(self._loaded[spec].info.license, accept, what=f"predictor {spec}")
        names = [display_name(spec) for spec in specs]
        if len(set(names)) < len(names):  # two folders with the same name: show the full specs
            names = specs
        return {name: self._loaded[spec] for name, spec in zip(names, specs, strict=True)}


def check_launch(predictors: Sequence[str], calibration: str | Path | None, data: str | Path | None) -> None:
    """Refuse, before a page is served, what the page could only report after a click: a predictor spec that names
    no predictor (no folder or repo with a usage config), a trace or a calibration file that cannot be read.

    Only metadata is fetched: weights load (and non-commercial terms are accepted) in the page.
    """
    for spec in predictors:
        parsed = PredictorSpec(local_path=DEFAULT_PREDICTOR_DIR) if spec == "default" else PredictorSpec.parse(spec)
        folder = download_predictor(parsed, HubOptions(), metadata_only=True).folder
        UsageConfig.from_file(folder / USAGE_CONFIG_NAME)
    if data is not None:
        read_trace(data)
    if calibration is not None:
        ServerModel.from_file(calibration)


def display_name(spec: str) -> str:
    """A short name for tables and plots: a local folder's own name, a Hub spec as typed."""
    path = Path(spec).expanduser()
    return path.name if path.is_dir() else spec


def badges(predictors: dict[str, LengthPredictor]) -> str:
    return "\n".join(license_badge(name, p.info.license) for name, p in predictors.items())


def load_trace(source: str, upload: str | None = None, dataset_id: str | None = None) -> list[TraceRecord]:
    """Records of the trace the user picked: `demo`, `upload` (a JSONL/CSV path) or `hub` (a dataset id)."""
    if source == "demo":
        return read_trace(DEMO_PACK)
    if source == "upload":
        if not upload:
            raise PlaygroundError("upload a trace file (.jsonl or .csv with `prompt` and `output_tokens`)")
        return read_trace(upload)
    if source == "hub":
        return _hub_dataset_records((dataset_id or "").strip())
    raise PlaygroundError(f"unknown trace source {source!r}: expected demo, upload or hub")


def _hub_dataset_records(dataset_id: str) -> list[TraceRecord]:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    if not dataset_id:
        raise PlaygroundError("type a Hub dataset id, e.g. `user/my-trace`")
    patterns = [f"*{suffix}" for suffix in TRACE_SUFFIXES]
    try:
        folder = Path(snapshot_download(dataset_id, repo_type="dataset", allow_patterns=patterns))
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as exc:
        raise PlaygroundError(f"Hub dataset {dataset_id!r}: cannot download it ({type(exc).__name__}: {exc})") from exc
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name.endswith(TRACE_SUFFIXES))
    if not files:
        raise PlaygroundError(f"Hub dataset {dataset_id!r}: no .jsonl/.csv trace file in it")
    return [record for path in files for record in read_trace(path)]


@dataclass
class ScoringResult:
    """Everything the page shows after a scoring."""

    taus: pd.DataFrame  # predictor, n, kendall_tau, p_value, spearman
    ranked: pd.DataFrame  # prompt, real length, real rank, predicted rank per predictor
    latency: pd.DataFrame  # order, mean latency, p90 latency, change vs FCFS
    scores: dict[str, np.ndarray]
    lengths: np.ndarray
    server: ServerModel


def score_trace(
    predictors: dict[str, LengthPredictor],
    records: Sequence[TraceRecord],
    server: ServerModel,
    progress: Progress = _no_progress,
) -> ScoringResult:
    if len(records) < 2:
        raise PlaygroundError("the trace needs at least two records to rank")
    prompts = [r.prompt for r in records]
    lengths = np.array([r.length for r in records], dtype=np.float64)
    scores: dict[str, np.ndarray] = {}
    for i, (name, predictor) in enumerate(predictors.items()):
        progress(i / (len(predictors) + 1), f"scoring {len(prompts)} prompts with {name}")
        scores[name] = predictor.score(prompts)
    progress(len(predictors) / (len(predictors) + 1), "simulating the server")
    taus = pd.DataFrame([{"predictor": name, **rank_correlation(s, lengths)} for name, s in scores.items()])
    ranked = pd.DataFrame({f"rank by {name}": _ranks(s) for name, s in scores.items()})
    ranked["real rank"] = _ranks(lengths)
    ranked["real length"] = lengths
    ranked["prompt"] = prompts
    ranked = ranked.sort_values(f"rank by {next(iter(scores))}", kind="stable").reset_index(drop=True)
    return ScoringResult(taus, ranked, latency_table(lengths, scores, server), scores, lengths, server)


def _ranks(values: np.ndarray) -> np.ndarray:
    """1 = shortest (real or predicted), ties in input order."""
    return np.argsort(np.argsort(values, kind="stable"), kind="stable") + 1


def latency_table(lengths: np.ndarray, scores: dict[str, np.ndarray], server: ServerModel) -> pd.DataFrame:
    """Rows: FCFS, predicted order per predictor, oracle; mean / p90 latency and change against FCFS."""
    rows: list[dict[str, Any]] = []
    for name, s in scores.items():
        summary = latency_summary(lengths, s, server)
        if not rows:
            rows.append({"order": "FCFS (trace order)", **summary["fcfs"]})
        rows.append({"order": f"predicted: {name}", **summary["predicted"]})
    rows.append({"order": "oracle (real lengths)", **summary["oracle"]})
    table = pd.DataFrame(rows)
    fcfs_mean, fcfs_p90 = table.loc[0, "mean_s"], table.loc[0, "p90_s"]
    table["mean vs FCFS"] = [f"{(m / fcfs_mean - 1) * 100:+.0f}%" for m in table["mean_s"]]
    table["p90 vs FCFS"] = [f"{(p / fcfs_p90 - 1) * 100:+.0f}%" for p in table["p90_s"]]
    return table.rename(columns={"mean_s": "mean latency (s)", "p90_s": "p90 latency (s)"}).round(2)


def scatter_figure(result: ScoringResult) -> Any:
    """One panel per predictor: predicted score (x) against real output length (y, log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    count = len(result.scores)
    fig, axes = plt.subplots(1, count, figsize=(5 * count, 4), squeeze=False, sharey=True)
    taus = dict(zip(result.taus["predictor"], result.taus["kendall_tau"], strict=True))
    for ax, (name, s) in zip(axes[0], result.scores.items(), strict=True):
        ax.scatter(s, np.maximum(result.lengths, 1), s=12, alpha=0.6)
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(4))
        ax.set_xlabel("predicted score (higher = longer)")
        ax.set_title(f"{name}  (Kendall tau {taus[name]:.3f})", fontsize=10)
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel("real output length (tokens, log)")
    fig.tight_layout()
    plt.close(fig)
    return fig


def rank_prompts(predictors: dict[str, LengthPredictor], text: str) -> pd.DataFrame:
    """The user's own prompts (one per line), shortest expected first by the first predictor."""
    prompts = [line.strip() for line in text.splitlines() if line.strip()]
    if not prompts:
        raise PlaygroundError("type one prompt per line")
    table = pd.DataFrame()
    for name, predictor in predictors.items():
        s = predictor.score(prompts)
        table[f"rank by {name}"] = _ranks(s)
        table[f"score {name}"] = s.round(4)
    table["prompt"] = prompts
    return table.sort_values(f"rank by {next(iter(predictors))}", kind="stable").reset_index(drop=True)
