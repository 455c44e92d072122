"""Serving benchmark: replay a length-labelled trace against a real vLLM engine under FCFS, LTR, oracle and
random admission orders (`ltr-predictors bench`)."""
