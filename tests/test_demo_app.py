"""The demo page (`ltr-predictors demo`, the Space): its logic, every API endpoint through `gradio_client`, and a
real browser run (Playwright + Debian chromium) that scores a trace with nothing leaving the machine.

Predictors here are tiny random BERTs built by the test (one Apache-2.0, one under the non-commercial OPT
license), never the shipped default, which may change.
"""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
from hub_mirror import free_port
from tiny_models import bert_model, bert_tokenizer

from ltr_predictors.benchmarks.queueing import ServerModel
from ltr_predictors.data.traces import read_trace
from ltr_predictors.demo.backend import DEMO_PACK, PredictorPool, load_trace, score_trace
from ltr_predictors.loading.ltr_config import LTRConfig

CHROMIUM = Path("/usr/bin/chromium")
TRACE_ROWS = [
    {"prompt": "yes", "output_tokens": [2, 3]},
    {"prompt": "write a long essay about the world", "output_tokens": [400, 380]},
    {"prompt": "list code", "output_tokens": [60, 80]},
    {"prompt": "hello world", "output_tokens": [12, 10]},
    {"prompt": "write a story", "output_tokens": [250, 300]},
]


def write_tiny_predictor(folder: Path, license_id: str, seed: int) -> Path:
    tokenizer = bert_tokenizer()
    bert_model(1, len(tokenizer), seed=seed).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "usage_config.json").write_text(
        json.dumps({"model": {"pred_model": None, "num_labels": 1, "mtype": "regression", "activation": None}})
    )
    LTRConfig(license={"license": license_id}).save(folder)
    return folder


@pytest.fixture(scope="module", autouse=True)
def visitor_has_accepted_nothing() -> Iterator[None]:
    """The page's acceptance step is what these tests check: no license accepted through the environment (CI
    accepts opt-175b-license for the license-marked tests)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("LTR_PREDICTORS_ACCEPT_LICENSES", raising=False)
        yield


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("demo-predictors")
    return {
        "apache": str(write_tiny_predictor(root / "tiny-apache", "apache-2.0", seed=1)),
        "nc": str(write_tiny_predictor(root / "tiny-nc", "opt-175b-license", seed=2)),
    }


@pytest.fixture(scope="module")
def trace_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demo-trace") / "trace.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in TRACE_ROWS))
    return path


def test_demo_pack_is_labelled_and_recorded() -> None:
    rows = [json.loads(line) for line in DEMO_PACK.read_text(encoding="utf-8").splitlines()]
    assert len(rows) >= 150
    kinds = {r["kind"] for r in rows}
    assert {"one_word", "fact", "list", "code", "essay", "story", "translation", "math", "summary"} <= kinds
    assert all(r["model"].startswith("HuggingFaceTB/SmolLM2-135M-Instruct") for r in rows)
    sampling = rows[0]["sampling"]
    assert all(r["sampling"] == sampling for r in rows)
    assert {"temperature", "top_p", "repetition_penalty", "max_new_tokens", "samples", "seed"} <= set(sampling)
    records = read_trace(DEMO_PACK)
    lengths = np.array([r.length for r in records])
    assert (lengths >= 1).all() and (lengths <= sampling["max_new_tokens"]).all() and len(set(lengths)) > 20


def test_scoring_logic_on_a_trace(tiny: dict[str, str], trace_file: Path) -> None:
    pool = PredictorPool()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        predictors = pool.get([tiny["apache"]], accept_noncommercial=False)
    result = score_trace(predictors, load_trace("upload", str(trace_file)), ServerModel.from_file())
    assert list(result.taus["predictor"]) == ["tiny-apache"] and result.taus.loc[0, "n"] == 5
    assert sorted(result.ranked["real rank"]) == [1, 2, 3, 4, 5]
    latency = result.latency.set_index("order")
    assert (
        latency.loc["oracle (real lengths)", "mean latency (s)"]
        <= latency.loc["FCFS (trace order)", "mean latency (s)"]
    )


def test_noncommercial_predictor_needs_acceptance(tiny: dict[str, str]) -> None:
    from ltr_predictors import LicenseNotAcceptedError

    pool = PredictorPool()
    with pytest.raises(LicenseNotAcceptedError, match="opt-175b-license"):
        pool.get([tiny["nc"]], accept_noncommercial=False)
    assert list(pool.get([tiny["nc"]], accept_noncommercial=True)) == ["tiny-nc"]
    with pytest.raises(LicenseNotAcceptedError):  # loaded once with acceptance: still refused without it
        pool.get([tiny["nc"]], accept_noncommercial=False)


@pytest.fixture(scope="module")
def app_url(tiny: dict[str, str], trace_file: Path) -> Iterator[str]:
    from ltr_predictors.demo.app import build_app

    demo = build_app([tiny["apache"], tiny["nc"]], data=trace_file)
    port = free_port()
    demo.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


def test_every_api_endpoint(app_url: str, tiny: dict[str, str]) -> None:
    from gradio_client import Client

    client = Client(app_url, analytics_enabled=False, verbose=False)
    endpoints = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert {"/load_predictors", "/score", "/rank_prompts"} <= endpoints

    status, badges = client.predict([tiny["apache"]], False, api_name="/load_predictors")
    assert status.startswith("OK") and "apache-2.0" in badges and "commercial use allowed" in badges
    status, badges = client.predict([tiny["nc"]], False, api_name="/load_predictors")
    assert status.startswith("**Error**") and "LicenseNotAcceptedError" in status and "Traceback" not in status
    status, badges = client.predict([tiny["apache"], tiny["nc"]], True, api_name="/load_predictors")
    assert status.startswith("OK") and "non-commercial only" in badges

    status, _, taus, plot, ranked, latency, server = client.predict(
        [tiny["apache"]], False, "data", None, "", None, api_name="/score"
    )
    assert status.startswith("OK: scored 5 prompts"), status
    assert taus["data"][0][0] == "tiny-apache" and len(ranked["data"]) == 5 and plot is not None
    assert [row[0] for row in latency["data"]] == [
        "FCFS (trace order)",
        "predicted: tiny-apache",
        "oracle (real lengths)",
    ]
    assert "burst" in server

    status, *_ = client.predict([], False, "hub", None, "", None, api_name="/score")
    assert status.startswith("**Error**") and "at least one predictor" in status

    status, table = client.predict([tiny["apache"]], False, "a\nwrite a long essay\nhello", api_name="/rank_prompts")
    assert status.startswith("OK: ranked 3") and sorted(r[0] for r in table["data"]) == [1, 2, 3]
    status, table = client.predict([tiny["apache"]], False, "   ", api_name="/rank_prompts")
    assert status.startswith("**Error**") and "one prompt per line" in status


@pytest.mark.browser
def test_browser_scores_the_demo_pack_offline(app_url: str, tmp_path: Path) -> None:
    if not CHROMIUM.is_file() or shutil.which("chromium") is None:
        pytest.skip("Debian chromium is not installed (apt-get install chromium)")
    playwright = pytest.importorskip("playwright.sync_api")
    outside: list[str] = []

    def guard(route, request) -> None:  # type: ignore[no-untyped-def]
        host = urlparse(request.url).hostname or ""
        if request.url.startswith(("data:", "blob:")) or host in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            outside.append(request.url)
            route.abort()

    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
            ],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        page.route("**/*", guard)
        page.goto(app_url)
        page.get_by_label("embedded demo pack").check()
        page.get_by_label("I accept the non-commercial terms", exact=False).check()  # tiny-nc is preselected
        page.locator("#score-button").click()
        page.wait_for_selector("#status :text('scored')", timeout=120_000)
        assert "best Kendall tau" in page.locator("#status").inner_text()
        tau_text = page.locator("#tau-table").inner_text()
        assert "kendall_tau" in tau_text
        page.wait_for_selector("#scatter img, #scatter svg, #scatter canvas", timeout=30_000)
        assert "FCFS" in page.locator("#latency-table").inner_text()
        page.screenshot(path=str(tmp_path / "demo.png"), full_page=True)
        shot = Path(__file__).parent.parent / "build" / "demo-screenshot.png"
        shot.parent.mkdir(exist_ok=True)
        shutil.copy(tmp_path / "demo.png", shot)
        browser.close()
    assert outside == [], f"the page tried to reach: {outside}"


def test_trace_source_errors_are_plain_messages() -> None:
    from ltr_predictors.demo.backend import PlaygroundError

    with pytest.raises(PlaygroundError, match="upload a trace file"):
        load_trace("upload", None)
    with pytest.raises(PlaygroundError, match="type a Hub dataset id"):
        load_trace("hub", dataset_id=" ")
    with pytest.raises(PlaygroundError, match=r"nobody/no-such-trace.*cannot download"):
        load_trace("hub", dataset_id="nobody/no-such-trace")


def test_space_files() -> None:
    """The Space card pins the Gradio we test with, names an app file that builds the same page."""
    import runpy

    import gradio as gr
    import yaml

    space = Path(__file__).parent.parent / "space_app"
    card = yaml.safe_load((space / "README.md").read_text(encoding="utf-8").split("---")[1])
    assert card["sdk"] == "gradio" and card["sdk_version"] == gr.__version__
    assert card["license"] and card["models"] and (space / card["app_file"]).is_file()
    assert "ltr-predictors" in (space / "requirements.txt").read_text()
    demo = runpy.run_path(str(space / card["app_file"]))["demo"]
    assert isinstance(demo, gr.Blocks)
    api_names = {dep.get("api_name") for dep in demo.config["dependencies"]}
    assert {"load_predictors", "score", "rank_prompts"} <= api_names
