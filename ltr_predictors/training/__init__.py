"""Training predictors: the settings of a run (`config`), recipes, one run end to end (`run`), the trainer loop,
losses, what is trained (`trainables`, `frozen_prefix`, `lora`), and the provenance a trained predictor records."""
