"""`ltr-predictors demo`: the Gradio page (same app as the Hugging Face Space), on this machine, offline.

ltr-predictors demo [--port P] [--predictor SPEC ...] [--data FILE] [--calibration BENCH.json]
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="open the demo page: rank prompts, compare with real lengths")
    parser.add_argument("--predictor", action="append", default=None, metavar="SPEC", help="offered predictor(s)")
    parser.add_argument("--data", default=None, metavar="FILE", help="a trace JSONL/CSV offered beside the demo pack")
    parser.add_argument("--calibration", default=None, help="server model JSON (saved `bench` results)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default loopback only)")
    parser.add_argument("--port", type=int, default=None, help="port (default: Gradio's, 7860 or the next free)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..demo.app import launch, quiet_environment

    quiet_environment()
    launch(args.predictor or ["default"], args.calibration, args.data, host=args.host, port=args.port)
    return 0
