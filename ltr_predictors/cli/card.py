"""`ltr-predictors card PATH > README.md`: render the model card of a predictor folder (or a folder of them)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..licensing.publication_rules import DeclaredLicense
from ..publishing.cards import CardMetadata, card_for_path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("card", help="print the model card (README.md) of a predictor folder")
    parser.add_argument("path", type=Path, help="a predictor folder, or a folder whose subfolders are predictors")
    parser.add_argument("--repo-id", help="the Hub repo the card is for (used in the usage snippets)")
    parser.add_argument("--metadata", type=Path, help="card metadata YAML (see model_cards/), e.g. reported tau")
    parser.add_argument("--license", help="declared license (default: the one the folders' provenance gives)")
    parser.add_argument("--license-name", help="with --license other")
    parser.add_argument("--license-link", help="with --license other")
    parser.add_argument("--allow-unknown-license", action="store_true", help="render even if a license is unknown")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    declared = None
    if args.license:
        declared = DeclaredLicense(args.license, args.license_name, args.license_link, where="--license")
    card = card_for_path(
        args.path,
        repo_id=args.repo_id,
        metadata=CardMetadata.load(args.metadata) if args.metadata else None,
        declared=declared,
        allow_unknown_license=args.allow_unknown_license,
    )
    print(str(card), end="" if str(card).endswith("\n") else "\n")
    return 0
