"""`ltr-predictors upload`: publish predictors to the Hub from a manifest, in one checked commit.

    ltr-predictors upload --manifest upload_scripts/manifests/seed-zoo.yaml --dry-run
    ltr-predictors upload --manifest my.yaml        # token from HF_TOKEN or the `hf auth login` cache

(`python upload_scripts/upload.py` takes the same flags.) The plan (`publishing.plan`) is complete and checked
before any Hub call; `--dry-run` prints it and stops, `--output-dir` writes the repo tree into a new or empty folder
instead; otherwise it is sent as one commit and each predictor is downloaded back and checked (`publishing.upload`).

Exit codes:
  0  uploaded and verified (or the dry run / --output-dir tree is done)
  2  refused: a rule, a path, a file or the manifest is wrong; nothing was sent to the Hub
  3  the upload failed: the Hub refused a step (or did not answer) and reported no commit; the repo history is
     unchanged, though the repo may have been created and file content may have been transferred
  4  committed at the printed commit, but the read-back verification failed: the commit EXISTS on the Hub;
     inspect it, and revert it if the copy there is wrong
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from pathlib import Path

from huggingface_hub import HfApi

from ..errors import LTRPredictorError, UploadFailedError
from ..publishing.folder_scan import SizeLimits, format_size, parse_size
from ..publishing.manifest import Manifest
from ..publishing.plan import plan_upload
from ..publishing.upload import upload, verify_upload

EXIT_OK = 0
EXIT_REFUSED = 2
EXIT_UPLOAD_FAILED = 3
EXIT_COMMITTED_UNVERIFIED = 4
PROG = "ltr-predictors upload"
DESCRIPTION = "Publish predictors to the Hugging Face Hub in one checked commit."
EPILOG = __doc__[__doc__.index("Exit codes:") :] if __doc__ else None


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "upload",
        help="publish predictors to the Hub from a manifest, in one checked commit",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_arguments(parser)
    parser.set_defaults(func=run)


def build_parser() -> argparse.ArgumentParser:
    """The parser of `upload_scripts/upload.py`: the flags of `ltr-predictors upload`."""
    parser = argparse.ArgumentParser(
        prog=PROG, description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    _add_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """`upload_scripts/upload.py`: parse, then `run`; the exit code says how far it got (module docstring)."""
    return run(build_parser().parse_args(argv))


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--manifest", required=True, type=Path, help="upload manifest (YAML)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan (files, sizes, card YAML); send nothing")
    parser.add_argument("--output-dir", type=Path, help="write the repo tree into this new or empty folder instead")
    parser.add_argument("--allow-unknown-license", action="store_true", help="publish a backbone of unknown license")
    parser.add_argument("--accept-license", action="append", default=[], metavar="ID", help="to load for checks")
    parser.add_argument("--licenses-dir", type=Path, help="license texts (default: the LICENSES/ above the manifest)")
    parser.add_argument("--token", default=None, help="Hub token (default: HF_TOKEN or the login cache)")
    for flag, default in (("--max-file-size", SizeLimits().max_file), ("--max-total-size", SizeLimits().max_total)):
        parser.add_argument(
            flag,
            type=_size_flag,
            metavar="SIZE",
            help=f"limit in bytes or with a unit, 500MB or 4GiB (default: the manifest's, else {format_size(default)})",
        )


def _size_flag(text: str) -> int:
    try:
        return parse_size(text, "size")
    except LTRPredictorError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def run(args: argparse.Namespace) -> int:
    """Plan, then dry-run, write or upload and verify."""
    try:
        manifest = Manifest.load(args.manifest)
        limits = dataclasses.replace(
            manifest.limits,
            **{k: v for k, v in (("max_file", args.max_file_size), ("max_total", args.max_total_size)) if v},
        )
        plan = plan_upload(
            manifest,
            allow_unknown_license=args.allow_unknown_license,
            accept_license=args.accept_license,
            licenses_dir=args.licenses_dir,
            limits=limits,
        )
        print(plan.describe())
        if args.dry_run:
            print("Dry run: nothing was uploaded.")
            return EXIT_OK
        if args.output_dir:
            print(f"Wrote the repo tree to {plan.write_to(args.output_dir)}")
            return EXIT_OK
        api = HfApi(token=args.token)
        commit = upload(plan, api)
    except UploadFailedError as exc:
        print(f"{PROG}: failed, no commit was made: {_one_line(exc)}", file=sys.stderr)
        return EXIT_UPLOAD_FAILED
    except LTRPredictorError as exc:
        print(f"{PROG}: error: refused, nothing was sent to the Hub: {_one_line(exc)}", file=sys.stderr)
        return EXIT_REFUSED
    print(f"Committed {commit.oid} to {plan.manifest.repo_id}: {commit.commit_url}")
    try:
        differences = verify_upload(
            plan, commit.oid, endpoint=api.endpoint, token=args.token, accept_license=args.accept_license
        )
    except Exception as exc:  # whatever failed, the commit exists: say so rather than end in a traceback
        print(
            f"{PROG}: committed {commit.oid} to {plan.manifest.repo_id}, but verification failed: "
            f"{type(exc).__name__}: {_one_line(exc)}. The commit is on the Hub: inspect it, and revert it if it is "
            "wrong.",
            file=sys.stderr,
        )
        return EXIT_COMMITTED_UNVERIFIED
    for subfolder, diff in differences.items():
        print(f"  verified {subfolder}: loads back, largest score difference {diff:.2g}")
    return EXIT_OK


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).splitlines())
