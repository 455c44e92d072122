"""Scoring backends: raw head outputs of transformers (`transformer`) and lexical (`lexical`) predictors, and how
they become one score per prompt, higher = longer (`length_scores`, `buckets`)."""
