"""One error contract for every subcommand: bad input is exit status 2 and one line on stderr naming the culprit.

Every subcommand the parser knows must appear in `SLOTS`, each input it reads with the kinds of bad input that apply
to it; every combination runs through `cli.main` (one case through the real entry point in a subprocess). Nothing
heavy starts on bad input: the vLLM engine, the labelling model and Gradio are replaced by tripwires that fail the
test if a check let the input through.
"""

from __future__ import annotations

import ast
import gzip
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from tiny_models import write_seed_predictor, write_tokenizer_repo

import ltr_predictors
from ltr_predictors.benchmarks.serving.replayed_scores import prompt_sha1
from ltr_predictors.cli import bench as bench_command
from ltr_predictors.cli import build_parser, main
from ltr_predictors.cli import label as label_command
from ltr_predictors.demo import app as space

REPO = Path(__file__).resolve().parents[1]
PROMPTS_TEXT = [f"write {'long ' * i}story number {i}" for i in range(12)]
# Good rows are good as traces, prompts and replayed scores alike: bad files start with one, so that the error
# must name the bad line after it.
GOOD_ROWS = [
    {"prompt": p, "output_tokens": 3 * i + 1, "prompt_sha1": prompt_sha1(p), "score": float(i)}
    for i, p in enumerate(PROMPTS_TEXT)
]


# ------------------------------------------------------------------------------------------------ the bad inputs
@dataclass(frozen=True)
class Bad:
    """A bad file: `write(folder)` makes it and returns its path; `culprit(path)` what the error line must name."""

    name: str
    write: Callable[[Path], Path]
    culprit: Callable[[Path], str] = str


def _text(name: str, content: str) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        (folder / name).write_text(content, encoding="utf-8")
        return folder / name

    return write


def _bytes(name: str, content: bytes) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        (folder / name).write_bytes(content)
        return folder / name

    return write


def _folder(folder: Path) -> Path:
    (folder / "a-folder.jsonl").mkdir()
    return folder / "a-folder.jsonl"


def _line(number: int) -> Callable[[Path], str]:
    return lambda path: f"{path}:{number}:"


def _rows(name: str, *rows: str) -> Callable[[Path], Path]:
    """A JSONL file: one good record, then the given lines."""
    return _text(name, json.dumps(GOOD_ROWS[1]) + "\n" + "".join(row + "\n" for row in rows))


GOOD_GZ = gzip.compress(("".join(json.dumps(r) + "\n" for r in GOOD_ROWS)).encode())

# Whatever stops a file from being read as lines of records: applies to every file of records.
UNREADABLE = [
    Bad("missing", lambda folder: folder / "missing.jsonl"),
    Bad("directory", _folder),
    Bad("not-utf8", _bytes("latin1.jsonl", b'{"prompt": "caf\xe9", "output_tokens": 3}\n'), _line(1)),
    Bad("not-gzip", _bytes("plain.jsonl.gz", b'{"prompt": "x", "output_tokens": 3}\n')),
    Bad("truncated-gzip", _bytes("cut.jsonl.gz", GOOD_GZ[: len(GOOD_GZ) // 2])),
    Bad("malformed-json", _rows("malformed.jsonl", "{oops"), _line(2)),
    Bad("json-not-object", _rows("list.jsonl", "[1, 2]"), _line(2)),
    Bad("json-nested-deep", _rows("deep.jsonl", "[" * 100_000), _line(2)),
    Bad("json-number-digits", _rows("digits.jsonl", '{"prompt": "x", "output_tokens": ' + "9" * 5000 + "}"), _line(2)),
    Bad("csv-field-oversized", _text("big.csv", 'prompt,output_tokens\n"' + "x" * 200_000 + '",3\n'), _line(1)),
    Bad("empty", _text("empty.jsonl", "")),
]
# Records whose prompt cannot be used: applies to every file of prompts.
BAD_PROMPTS = [
    Bad("no-prompt", _rows("noprompt.jsonl", '{"output_tokens": 3}'), _line(2)),
    Bad("lone-surrogate", _rows("surrogate.jsonl", '{"prompt": "a\\ud800b", "output_tokens": 3}'), _line(2)),
]


def _length(name: str, value: str, shown: str) -> Bad:
    """A record whose `output_tokens` is `value` (JSON text); the error names the line, the field and the value."""
    write = _rows(f"{name}.jsonl", '{"prompt": "x", "output_tokens": ' + value + "}")
    return Bad(name, write, lambda path: f"{path}:2: 'output_tokens' must be a finite number >= 0, got {shown}")


# Numbers that are no output length: applies to every file of lengths.
BAD_LENGTHS = [
    Bad(
        "length-text",
        _rows("text.jsonl", '{"prompt": "x", "output_tokens": "many"}'),
        lambda p: f"{p}:2: 'output_tokens' is not a number: 'many'",
    ),
    Bad(
        "length-csv-text",
        _text("text.csv", "prompt,output_tokens\nhello,abc\n"),
        lambda p: f"{p}:2: 'output_tokens' is not a number: 'abc'",
    ),
    Bad(
        "length-bool",
        _rows("bool.jsonl", '{"prompt": "x", "output_tokens": true}'),
        lambda p: f"{p}:2: 'output_tokens' must be a number or a list of numbers, got True",
    ),
    Bad("length-empty-list", _rows("nolist.jsonl", '{"prompt": "x", "output_tokens": []}'), _line(2)),
    _length("length-negative", "-3", "-3"),
    _length("length-nan", "NaN", "nan"),
    _length("length-infinity", "Infinity", "inf"),
    _length("length-overflow", "1e999", "inf"),
    _length("length-huge-int", "9" * 400, "9" * 37 + "..."),
    _length("length-in-list", "[3, -1]", "-1"),
    Bad(
        "length-csv-overflow",
        _text("inf.csv", "prompt,output_tokens\nhello,1e999\n"),
        lambda p: f"{p}:2: 'output_tokens' must be a finite number >= 0, got inf",
    ),
]
PROMPTS = UNREADABLE + BAD_PROMPTS
TRACES = PROMPTS + BAD_LENGTHS
SCORES = UNREADABLE

NO_FOLDER = [Bad("missing", lambda folder: folder / "no-such-folder"), Bad("file", _text("file.txt", "x"))]
YAML_FILES = [
    Bad("missing", lambda folder: folder / "missing.yaml"),
    Bad("not-utf8", _bytes("latin1.yaml", b"description: caf\xe9\n")),
    Bad("malformed", _text("malformed.yaml", "description: [unclosed\n")),
]
RECIPES = [
    *YAML_FILES,
    Bad("epochs-text", _text("epochs.yaml", "epochs: three\n"), lambda p: f"{p}: 'epochs' must be int, got 'three'"),
    Bad("lr-text", _text("lr.yaml", "lr: fast\n"), lambda p: f"{p}: 'lr' must be float, got 'fast'"),
    Bad(
        "lr-negative", lambda folder: _recipe_with_data(folder, "lr: -1.0"), lambda p: "lr must be a finite number > 0"
    ),
    Bad("data-not-list", _text("data.yaml", "data: 5\n"), lambda p: f"{p}: 'data' must be a list"),
]


def _recipe_with_data(folder: Path, line: str) -> Path:
    """A recipe that reads well (a lexical backbone, one epoch, a good trace) but for `line`."""
    trace = folder / "recipe-data.jsonl"
    trace.write_text("".join(json.dumps(r) + "\n" for r in GOOD_ROWS))
    recipe = folder / "recipe.yaml"
    recipe.write_text(f"backbone: lexical\nepochs: 1\n{line}\ndata:\n- path: {trace}\n")
    return recipe


CALIBRATIONS = [
    Bad("missing", lambda folder: folder / "missing.json"),
    Bad("not-utf8", _bytes("latin1.json", b'{"description": "caf\xe9"}')),
    Bad("malformed", _text("malformed.json", "{oops")),
]


# ------------------------------------------------------------------------------------- every subcommand's inputs
@dataclass(frozen=True)
class Slot:
    """One input of a subcommand: its argv with `{bad}` where the bad path goes (`{good}`: a good trace, `{out}`:
    a folder for outputs, `{pred}`: a predictor folder), and the bad inputs that apply to it."""

    argv: tuple[str, ...]
    bad: tuple[Bad, ...]


def slot(argv: str, bad: list[Bad]) -> Slot:
    return Slot(tuple(argv.split()), tuple(bad))


SLOTS: dict[str, list[Slot]] = {
    "bench": [
        slot("--data {bad} --policies fcfs,oracle --output {out}/r.json", TRACES),
        slot("--data {good} --scores {bad} --policies fcfs,ltr --output {out}/r.json", SCORES),
    ],
    "bench-hook": [slot("--prompts {bad} --requests 4 --waiting 10", PROMPTS)],
    "bench-score": [slot("--data {bad} --shapes bert-base", TRACES)],
    "bench-train": [slot("--data {bad} --backbone lexical --epochs 1", TRACES), slot("--recipe {bad}", RECIPES)],
    "card": [slot("{bad}", NO_FOLDER), slot("{pred} --metadata {bad}", YAML_FILES)],
    "ceiling": [slot("--data {bad}", TRACES), slot("--data {good} --aux {bad}", TRACES)],
    "demo": [
        slot("--data {bad}", TRACES),
        slot("--predictor {bad}", NO_FOLDER),
        slot("--calibration {bad}", CALIBRATIONS),
    ],
    "eval": [slot("--data {bad}", TRACES), slot("--data {good} --predictor {bad}", NO_FOLDER)],
    "info": [slot("{bad}", NO_FOLDER)],
    "label": [slot("--prompts {bad} --model {out}/model --out {out}/trace.jsonl", PROMPTS)],
    "score": [slot("--input {bad}", PROMPTS)],
    "train": [
        slot("--data {bad} --backbone lexical --epochs 1 --out {out}/p", TRACES),
        slot("--recipe {bad} --out {out}/p", RECIPES),
    ],
    "upload": [slot("--manifest {bad} --dry-run", YAML_FILES)],
}

# Flags with values no command can use: argparse's own refusals and the checks behind them.
BAD_FLAGS: list[tuple[str, str, str]] = [
    ("bench", "--data {good} --cv 0 --output {out}/r.json", "argument --cv: must be a finite number > 0, got '0'"),
    ("bench", "--data {good} --repeats 0 --output {out}/r.json", "argument --repeats: must be an integer >= 1"),
    ("bench", "--data {good} --request-rate fast --output {out}/r.json", "request rate 'fast'"),
    ("bench", "--data {good} --request-rate nan --output {out}/r.json", "request rate 'nan'"),
    ("bench", "--data {good} --split test --test-fraction 2 --output {out}/r.json", "test_fraction 2.0"),
    ("bench", "--data {good} --policies fcfs --model {out}/no-model --output {out}/r.json", "no-model"),
    ("bench", "--data {good} --output {out}", "argument --output: '{out}' is a folder, not a file to write"),
    ("bench", "--data {good} --output {out}/r.json --plot {out}/no/r.png", "no folder '{out}/no'"),
    ("bench-score", "--output {out}/no/b.json", "argument --output: cannot write '{out}/no/b.json'"),
    ("bench-train", "--data {good} --json {out}/no/rows.json", "argument --json: cannot write"),
    ("label", "--prompts {good} --model m --out {out}/no/t.jsonl", "argument --out: cannot write"),
    ("score", "--input {good} --output {out}/no/s.jsonl", "argument --output: cannot write"),
    ("bench-hook", "--requests 0", "argument --requests: must be an integer >= 1, got '0'"),
    ("bench-score", "--shapes bert-base,nope", "--shapes: unknown nope"),
    ("bench-score", "--num-prompts -1", "argument --num-prompts"),
    ("eval", "--data {good} --batch-size 0", "argument --batch-size"),
    ("eval", "--data {good} --split test --val-fraction 0.95", "val_fraction 0.95"),
    ("eval", "--data {good} --length-tokenizer {out}/no-tokenizer", "no-tokenizer"),
    ("label", "--prompts {good} --model m --out o --samples 0", "argument --samples"),
    ("train", "--out {out}/p", "name --recipe or at least one --data file"),
    ("train", "--data {good} --epochs 0 --out {out}/p", "argument --epochs"),
    ("train", "--data {good} --lr nan --out {out}/p", "argument --lr"),
    ("train", "--data {good} --backbone lexical --val-fraction 0.95 --out {out}/p", "val_fraction 0.95"),
    ("train", "--data {good} --weight-decay -1 --out {out}/p", "argument --weight-decay: weight_decay must be"),
    ("upload", "--manifest {good} --max-file-size lots", "argument --max-file-size: size: 'lots' is not a size"),
]


class Tripwire(Exception):
    """Something heavy started although its input was bad (not an LTRPredictorError: `main` lets it through)."""


@pytest.fixture(scope="module")
def good_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A good trace, an output folder, a backbone tokenizer and a predictor folder."""
    root = tmp_path_factory.mktemp("good")
    good = root / "good.jsonl"
    good.write_text("".join(json.dumps(r) + "\n" for r in GOOD_ROWS))
    (root / "out").mkdir()
    tokenizer = write_tokenizer_repo(root / "tok", "bert")
    predictor = write_seed_predictor(root / "pred", "bert", pred_model=str(tokenizer))
    (predictor / "ltr_config.json").write_text('{"license": {"license": "apache-2.0"}}')
    return {"good": str(good), "out": str(root / "out"), "pred": str(predictor), "tok": str(tokenizer)}


@pytest.fixture
def files(good_files: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The good files; the engine, the labeller and Gradio never start."""

    def tripwire(*args: object, **kwargs: object) -> None:
        raise Tripwire("started on bad input")

    monkeypatch.setattr(bench_command, "run_benchmark", tripwire)
    monkeypatch.setattr(label_command, "label_prompts", tripwire)
    monkeypatch.setattr(space, "build_app", tripwire)
    return good_files


def run_cli(argv: list[str], capfd: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    """Exit status and the non-empty stderr lines of `ltr-predictors ARGV` (argparse's exits included)."""
    try:
        status = main(argv)
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else 1
    return status, [line for line in capfd.readouterr().err.splitlines() if line.strip()]


def assert_one_line_error(command: str, status: int, lines: list[str], culprit: str) -> None:
    assert status == 2, lines
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"ltr-predictors {command}: error: "), lines
    assert culprit in lines[0]


CASES = [
    pytest.param(command, s.argv, bad, id=f"{command}:{s.argv[s.argv.index('{bad}') - 1]}:{bad.name}")
    for command, slots in SLOTS.items()
    for s in slots
    for bad in s.bad
]


def test_every_subcommand_is_covered() -> None:
    subparsers = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(SLOTS) == set(subparsers.choices)  # type: ignore[attr-defined]


@pytest.mark.parametrize(("command", "argv", "bad"), CASES)
def test_bad_input_is_one_line_and_exit_2(
    command: str,
    argv: tuple[str, ...],
    bad: Bad,
    files: dict[str, str],
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    path = bad.write(bad_dir)
    args = [a.format(bad=path, **files) for a in argv]
    status, lines = run_cli([command, *args], capfd)
    assert_one_line_error(command, status, lines, bad.culprit(path))


@pytest.mark.parametrize(("command", "argv", "culprit"), BAD_FLAGS, ids=[f"{c}:{a}" for c, a, _ in BAD_FLAGS])
def test_bad_flag_values_are_one_line_and_exit_2(
    command: str, argv: str, culprit: str, files: dict[str, str], capfd: pytest.CaptureFixture[str]
) -> None:
    status, lines = run_cli([command, *argv.format(**files).split()], capfd)
    assert_one_line_error(command, status, lines, culprit.format(**files))


@pytest.mark.parametrize("command", sorted(SLOTS))
def test_usage_errors_are_one_line_and_exit_2(command: str, capfd: pytest.CaptureFixture[str]) -> None:
    status, lines = run_cli([command, "--no-such-flag"], capfd)
    assert status == 2 and len(lines) == 1, lines
    assert lines[0].startswith("ltr-predictors") and "error: " in lines[0] and "--help)" in lines[0]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_file_is_one_line(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    locked = tmp_path / "locked.jsonl"
    locked.write_text(json.dumps(GOOD_ROWS[0]) + "\n")
    locked.chmod(0)
    status, lines = run_cli(["eval", "--data", str(locked)], capfd)
    assert_one_line_error("eval", status, lines, f"{locked}: cannot read it (Permission denied)")


def test_the_entry_point_answers_in_one_line(tmp_path: Path) -> None:
    """Through a fresh interpreter: nothing else (import-time warnings, a traceback) reaches stderr."""
    missing = tmp_path / "missing.jsonl"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "ltr_predictors.cli", "eval", "--data", str(missing)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"ltr-predictors eval: error: {missing}: cannot read it (No such file or directory)"
    ]


def test_a_reader_that_stops_reading_ends_the_command_quietly(tmp_path: Path) -> None:
    """`ltr-predictors score ... | head -1`: the closed pipe ends the command with 141, no traceback."""
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a prompt to score\n" * 20_000)  # far more output than a pipe holds
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "ltr_predictors.cli", "score", "--input", str(prompts)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) as process:
        assert process.stdout is not None and process.stdout.readline().startswith(b'{"index": 0')
        process.stdout.close()
        _, stderr = process.communicate(timeout=300)
    assert process.returncode == 141
    assert b"Traceback" not in stderr and b"BrokenPipeError" not in stderr


# ----------------------------------------------------------------------------------------- tau that is undefined
def constant_predictor(folder: Path, tokenizer: Path) -> Path:
    """A real predictor whose head has zero weights: every prompt gets the head's bias as its score."""
    write_seed_predictor(folder, "bert", pred_model=str(tokenizer))
    (folder / "ltr_config.json").write_text('{"license": {"license": "apache-2.0"}}')
    weights = folder / "finetuned" / "model.safetensors"
    tensors = load_file(weights)
    tensors["classifier.weight"] = torch.zeros_like(tensors["classifier.weight"])
    save_file(tensors, weights, metadata={"format": "pt"})
    return folder


def write_trace(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_eval_constant_predictor_says_tau_is_undefined(files: dict[str, str], tmp_path: Path, capfd) -> None:
    predictor = constant_predictor(tmp_path / "constant", Path(files["tok"]))
    status = main(["eval", "--predictor", str(predictor), "--data", files["good"]])
    out, err = capfd.readouterr()
    assert status == 3
    assert [line for line in err.splitlines() if "ltr-predictors" in line] == [  # the rest: progress bars
        f"ltr-predictors eval: Kendall tau undefined for 1 of 1 runs ({predictor} on {files['good']}: "
        f"the predictor gives all {len(GOOD_ROWS)} prompts the same score)"
    ]
    lines = out.strip().splitlines()
    assert lines[-1] == "kendall_tau=undefined"
    summary = json.loads("\n".join(lines[:-1]), parse_constant=lambda name: pytest.fail(f"{name} in the JSON"))
    assert summary["kendall_tau"] is None and summary["tau_undefined"].startswith("the predictor gives")


def test_eval_table_shows_undefined_where_lengths_are_all_equal(files: dict[str, str], tmp_path: Path, capfd) -> None:
    flat = write_trace(tmp_path / "flat.jsonl", [{**r, "output_tokens": 7} for r in GOOD_ROWS])
    status = main(["eval", "--predictor", files["pred"], "--data", files["good"], "--data", str(flat)])
    out, err = capfd.readouterr()
    assert status == 3
    assert [line for line in err.splitlines() if "ltr-predictors" in line] == [
        f"ltr-predictors eval: Kendall tau undefined for 1 of 2 runs ({files['pred']} on {flat}: "
        f"all {len(GOOD_ROWS)} prompts have the same length)"
    ]
    rows = {line.split(" | ")[1]: line.split(" | ") for line in out.splitlines() if line.startswith("| ")}
    assert rows[str(flat)][4:6] == ["undefined", "undefined"]
    float(rows[files["good"]][4])  # the other trace keeps its number
    assert out.strip().splitlines()[-1].startswith("kendall_tau=") and "nan" not in out.lower()


# --------------------------------------------------------------------------------------------- library errors
def test_every_public_error_derives_from_the_base_and_is_exported() -> None:
    from ltr_predictors import errors

    classes = [c for c in vars(errors).values() if isinstance(c, type) and c.__module__ == errors.__name__]
    assert classes and all(issubclass(c, errors.LTRPredictorError) for c in classes)
    assert {c.__name__ for c in classes} <= set(ltr_predictors.__all__)


BUILTIN_ERRORS = {"ValueError", "TypeError", "KeyError", "RuntimeError", "OSError", "FileNotFoundError"}


def test_library_code_raises_no_builtin_error_that_names_a_flag() -> None:
    """Outside the command modules, a builtin error naming `--flag` is a CLI message in library code."""
    package = REPO / "ltr_predictors"
    offenders = []
    for path in package.rglob("*.py"):
        if path.parent.name == "commands" or path.name == "cli.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)):
                continue
            if getattr(node.exc.func, "id", None) not in BUILTIN_ERRORS:
                continue
            texts = [n.value for n in ast.walk(node.exc) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
            if any("--" in text for text in texts):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert offenders == []
