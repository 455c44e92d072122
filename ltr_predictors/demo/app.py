"""The Gradio 6 page of `ltr-predictors demo` and of the Hugging Face Space (`space_app/app.py`).

Thin: widgets and wiring only; the work is in `backend`. Every handler returns a status line instead of
raising, so the page shows errors as text, never a stack trace. API endpoints (for `gradio_client`):
`/load_predictors`, `/score`, `/rank_prompts`.

Import this module only after `quiet_environment()` has run (or with the same variables set): Gradio and
huggingface_hub read them at import time.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

TRACE_SOURCES = [("embedded demo pack", "demo"), ("uploaded JSONL/CSV", "upload"), ("Hub dataset", "hub")]


def quiet_environment() -> None:
    """No analytics or telemetry calls from Gradio or huggingface_hub (Gradio must not be imported yet).

    The CLI has already imported huggingface_hub, which read its environment then: its telemetry switch is also set
    on the loaded module (it is read at call time), unless the user set the variable to something else.
    """
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    hub_constants = sys.modules.get("huggingface_hub.constants")
    if hub_constants is not None and os.environ["HF_HUB_DISABLE_TELEMETRY"].lower() in ("1", "true", "yes", "on"):
        hub_constants.HF_HUB_DISABLE_TELEMETRY = True  # type: ignore[attr-defined]


def _error_text(exc: Exception) -> str:
    return f"**Error** ({type(exc).__name__}): {exc}"


def build_app(
    predictors: Sequence[str] = ("default",),
    calibration: str | Path | None = None,
    data: str | Path | None = None,
    selected: Sequence[str] | None = None,
) -> Any:
    """The Blocks app: `predictors` are the specs offered, `selected` those preselected (default: all),
    `calibration` the server model file, `data` a trace file offered (and preselected) beside the demo pack."""
    quiet_environment()
    import gradio as gr
    import pandas as pd

    from ..benchmarks.queueing import DEFAULT_CALIBRATION, ServerModel
    from .backend import (
        NONCOMMERCIAL_LICENSES,
        PredictorPool,
        badges,
        load_trace,
        rank_prompts,
        scatter_figure,
        score_trace,
    )

    pool = PredictorPool()
    calibration_path = Path(calibration) if calibration else DEFAULT_CALIBRATION
    empty = pd.DataFrame()
    sources = ([(f"{Path(data).name} (given at launch)", "data")] if data else []) + TRACE_SOURCES

    def server_model(bench_file: str | None) -> ServerModel:
        return ServerModel.from_file(bench_file or calibration_path)

    def load_predictors(specs: list[str], accept: bool) -> tuple[str, str]:
        try:
            loaded = pool.get(specs, accept)
        except Exception as exc:  # shown in the page
            return _error_text(exc), ""
        return f"OK: loaded {len(loaded)} predictor(s)", badges(loaded)

    def score(
        specs: list[str],
        accept: bool,
        source: str,
        upload: str | None,
        dataset_id: str,
        bench_file: str | None,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio's progress idiom
    ) -> tuple[str, str, pd.DataFrame, Any, pd.DataFrame, pd.DataFrame, str]:
        try:
            progress(0.0, desc="loading predictors")
            loaded = pool.get(specs, accept)
            progress(0.05, desc="reading the trace")
            records = load_trace("upload", str(data)) if source == "data" else load_trace(source, upload, dataset_id)
            server = server_model(bench_file)
            result = score_trace(loaded, records, server, lambda f, m: progress(0.1 + 0.9 * f, desc=m))
        except Exception as exc:  # shown in the page
            return _error_text(exc), "", empty, None, empty, empty, ""
        best = result.taus.sort_values("kendall_tau", ascending=False).iloc[0]
        status = f"OK: scored {len(records)} prompts; best Kendall tau {best['kendall_tau']:.3f} ({best['predictor']})"
        taus = result.taus.round({"kendall_tau": 4, "spearman": 4})  # p-values can be tiny: not rounded
        server_note = (
            f"Server model: {server.description} — up to {server.max_num_seqs} sequences per batch, "
            f"decode step {server.step_base_s:.3f} s + {server.step_per_seq_s:.4f} s per running sequence; "
            f"all {len(records)} requests arrive at once (a burst), prefill ignored."
        )
        return status, badges(loaded), taus, scatter_figure(result), result.ranked, result.latency, server_note

    def rank_own(specs: list[str], accept: bool, text: str) -> tuple[str, pd.DataFrame]:
        try:
            table = rank_prompts(pool.get(specs, accept), text)
        except Exception as exc:  # shown in the page
            return _error_text(exc), empty
        return f"OK: ranked {len(table)} prompts (rank 1 = shortest expected output)", table

    with gr.Blocks(title="ltr-predictors: rank prompts by output length") as demo:
        gr.Markdown(
            "# ltr-predictors\nRank prompts by expected output length, check the ranking against real lengths, "
            "and see what it buys a batched LLM server. Score: higher = longer expected output."
        )
        with gr.Row():
            spec_box = gr.Dropdown(
                choices=list(predictors),
                value=list(predictors if selected is None else selected),
                multiselect=True,
                allow_custom_value=True,
                label="Predictors (`default`, a local folder, or REPO[:SUBFOLDER][@REVISION]; type to add)",
            )
            accept_box = gr.Checkbox(
                value=False,
                label=f"I accept the non-commercial terms ({', '.join(NONCOMMERCIAL_LICENSES)}) of the predictors "
                "I load (needed for OPT-derived weights)",
            )
        load_button = gr.Button("Load predictors / show licenses")
        license_md = gr.Markdown(elem_id="licenses")
        status_md = gr.Markdown(elem_id="status")
        with gr.Tab("Score a trace"):
            with gr.Row():
                source_radio = gr.Radio(sources, value=sources[0][1], label="Trace")
                upload_file = gr.File(label="JSONL/CSV trace (prompt, output_tokens)", file_types=[".jsonl", ".csv"])
                dataset_box = gr.Textbox(label="Hub dataset id", placeholder="user/my-trace")
                bench_file = gr.File(label="Server calibration / saved bench results (JSON, optional)")
            score_button = gr.Button("Score", variant="primary", elem_id="score-button")
            tau_table = gr.Dataframe(label="Kendall tau per predictor", elem_id="tau-table")
            scatter = gr.Plot(label="Predicted score vs real length", elem_id="scatter")
            gr.Markdown("### What it buys: latency of the trace as a burst on a batched server")
            latency_table = gr.Dataframe(label="Mean / p90 latency by admission order", elem_id="latency-table")
            server_md = gr.Markdown()
            ranked_table = gr.Dataframe(label="Ranked prompts (rank 1 = shortest)", max_height=400, wrap=True)
        with gr.Tab("Rank your prompts"):
            prompts_box = gr.Textbox(lines=6, label="One prompt per line", placeholder="Write a poem about the sea")
            rank_button = gr.Button("Rank")
            own_table = gr.Dataframe(label="Your prompts, shortest expected first", wrap=True)

        load_button.click(load_predictors, [spec_box, accept_box], [status_md, license_md], api_name="load_predictors")
        score_button.click(
            score,
            [spec_box, accept_box, source_radio, upload_file, dataset_box, bench_file],
            [status_md, license_md, tau_table, scatter, ranked_table, latency_table, server_md],
            api_name="score",
        )
        rank_button.click(
            rank_own, [spec_box, accept_box, prompts_box], [status_md, own_table], api_name="rank_prompts"
        )
    return demo


def launch(
    predictors: Sequence[str] = ("default",),
    calibration: str | Path | None = None,
    data: str | Path | None = None,
    host: str = "127.0.0.1",
    port: int | None = None,
    **kwargs: Any,
) -> Any:
    """Check the predictors and files named (`backend.check_launch`), then build and serve the app (blocking
    unless `prevent_thread_lock=True` is passed)."""
    from .backend import check_launch

    check_launch(predictors, calibration, data)
    demo = build_app(predictors, calibration, data)
    demo.queue().launch(server_name=host, server_port=port, share=False, footer_links=["api"], **kwargs)
    return demo
