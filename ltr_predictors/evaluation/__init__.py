"""How well a predictor ranks: Kendall tau-b through the shipped `evaluate` metric (`metrics`) and reference
ceilings (`ceilings`)."""
