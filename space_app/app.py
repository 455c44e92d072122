"""Hugging Face Space entry point: the same page as `ltr-predictors demo`, all logic in the package."""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio / huggingface_hub are imported
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from ltr_predictors.demo.app import build_app

demo = build_app(predictors=["default", "Luna2099/vllm-ltr-predictors:PARS-bert"], selected=["default"])

if __name__ == "__main__":
    demo.queue().launch()
