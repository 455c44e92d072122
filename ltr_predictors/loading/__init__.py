"""Finding and reading predictor folders: Hub downloads, `usage_config.json` / `ltr_config.json`, checkpoint and
pickle checks, adapter bases and GGUF weights. `LengthPredictor` (in `ltr_predictors.predictor`) puts them together."""
