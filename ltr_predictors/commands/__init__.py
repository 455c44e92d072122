"""Subcommands of the `ltr-predictors` CLI, one module each (see `ltr_predictors/cli.py`)."""
