"""One source per training fact: `TrainingConfig` gives the recipe keys, the `train` / `bench-train` flags and the
provenance's hyperparameters; the typed `Provenance` that `train` writes is the one cards read."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from test_training import synthetic
from tiny_models import write_seed_predictor

from ltr_predictors import AdapterError, RecipeError, UsageConfigError
from ltr_predictors.cli import build_parser, main
from ltr_predictors.publishing.cards import card_for_path
from ltr_predictors.training.config import TrainingConfig
from ltr_predictors.training.lora import LoraSettings
from ltr_predictors.training.provenance import Provenance
from ltr_predictors.training.recipes import load_recipe, recipe_names

SCALARS = (bool, int, float, str)


def options_of(command: str) -> dict[str, object]:
    subparsers = next(a for a in build_parser()._actions if a.dest == "command")
    parser = subparsers.choices[command]  # type: ignore[attr-defined]
    return {option: action for action in parser._actions for option in action.option_strings}


def test_every_setting_is_a_flag_of_train_and_bench_train() -> None:
    train, bench = options_of("train"), options_of("bench-train")
    settings = [f.name for f in dataclasses.fields(TrainingConfig) if f.name not in ("lexical", "lora")]
    lora = [f"lora_{f.name}" for f in dataclasses.fields(LoraSettings)]
    for name in settings + lora:
        flag = "--" + name.replace("_", "-")
        assert flag in train and flag in bench, flag
    assert set(train) - set(bench) == {"--out"}
    assert set(bench) - set(train) == {"--train-on", "--plot", "--json"}
    assert bench["--loss"].nargs is None and type(bench["--loss"]).__name__ == "_AppendAction"  # variants


@pytest.mark.parametrize("name", recipe_names())
def test_shipped_recipes_load_with_their_settings(name: str) -> None:
    recipe = load_recipe(name)
    assert recipe.name == name and recipe.data
    assert (recipe.lora is not None) == (recipe.adapter is not None)
    if name == "best":
        assert recipe.lora == LoraSettings(rank=16, alpha=32) and recipe.train_top_layers == 8


def test_a_setting_out_of_bounds_is_refused_when_the_recipe_is_read(tmp_path: Path) -> None:
    """Checked on reading (with the file named), not after the data was read and a model built."""
    recipe = tmp_path / "r.yaml"
    recipe.write_text("backbone: lexical\nepochs: 0\n")
    with pytest.raises(RecipeError, match=r"r\.yaml: epochs must be an integer >= 1, got 0"):
        load_recipe(str(recipe))
    recipe.write_text("backbone: lexical\nweight_decay: -0.5\n")
    with pytest.raises(RecipeError, match=r"r\.yaml: weight_decay must be a finite number >= 0"):
        load_recipe(str(recipe))


def test_lora_settings_go_with_an_adapter() -> None:
    assert TrainingConfig(adapter="lora").lora == LoraSettings()
    assert TrainingConfig().hyperparameters()["lora"] is None
    with pytest.raises(AdapterError, match="no adapter"):
        TrainingConfig(lora=LoraSettings())


def test_train_records_every_setting_and_cards_read_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = tmp_path / "trace.jsonl"
    trace.write_text(
        "".join(json.dumps({"prompt": e.prompt, "output_tokens": e.length}) + "\n" for e in synthetic(120, seed=4))
    )
    recipe = tmp_path / "mine.yaml"
    recipe.write_text(f"name: mine\ndescription: a test recipe\nbackbone: lexical\ndata:\n- path: {trace}\n")
    out = tmp_path / "pred"
    flags = ["--epochs", "2", "--lr", "0.05", "--max-minutes", "5", "--lr-schedule", "linear", "--seed", "3"]
    assert main(["train", "--recipe", str(recipe), *flags, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    written = json.loads((out / "ltr_config.json").read_text())["provenance"]
    provenance = Provenance.from_dict(written, "test")
    expected = load_recipe(str(recipe)).override(epochs=2, lr=0.05, max_minutes=5.0, lr_schedule="linear", seed=3)
    assert provenance.hyperparameters == json.loads(json.dumps(expected.hyperparameters()))
    assert (provenance.recipe, provenance.description, provenance.backbone) == ("mine", "a test recipe", "lexical")
    assert provenance.training is not None and provenance.training.train_examples > 0
    assert Provenance.from_dict(provenance.to_dict(), "again") == provenance
    assert json.loads(printed[: printed.rindex("}") + 1])["best_epoch"] == provenance.training.best_epoch
    card = card_for_path(out, repo_id="org/mine").text
    assert "- max_minutes: 5.0" in card and "- seed: 3" in card and "a test recipe" in card


def test_provenance_reads_older_records_and_refuses_wrong_types(tmp_path: Path) -> None:
    older = Provenance.from_dict({"recipe": "default", "seed": 0, "hyperparameters": {"lr": 0.01}}, "old")
    assert older.hyperparameters == {"lr": 0.01, "seed": 0} and older.training is None
    folder = write_seed_predictor(tmp_path / "p", "bert")
    training = {"best_epoch": "three", "val_kendall_tau": 0.4, "train_examples": 8, "val_examples": 2}
    config = {"license": {"license": "apache-2.0"}, "provenance": {"training": {**training, "seconds": 1.0}}}
    (folder / "ltr_config.json").write_text(json.dumps(config))
    with pytest.raises(UsageConfigError, match=r"ltr_config\.json: provenance\.training\.best_epoch must be int"):
        card_for_path(folder)


def test_bench_train_compares_variants_on_one_held_out_split(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trace = tmp_path / "trace.jsonl"
    trace.write_text(
        "".join(json.dumps({"prompt": e.prompt, "output_tokens": e.length}) + "\n" for e in synthetic(300, seed=4))
    )
    rows_file = tmp_path / "rows.json"
    argv = ["bench-train", "--data", str(trace), "--backbone", "lexical", "--epochs", "2", "--lr", "0.05"]
    assert main([*argv, "--loss", "margin", "--loss", "listmle", "--json", str(rows_file)]) == 0
    rows = json.loads(rows_file.read_text())
    assert [r["loss"] for r in rows] == ["margin", "listmle"]
    for row in rows:
        [(source, held_out)] = row["test"].items()
        assert source == str(trace) and held_out["n"] > 0 and held_out["kendall_tau"] > 0.5
    assert "| lexical | margin |" in capsys.readouterr().out
