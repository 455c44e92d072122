"""Training predictors: recipes, the trainer loop, losses, what is trained (`trainables`, `frozen_prefix`)."""
