"""The Gradio demo (`ltr-predictors demo`, the Hugging Face Space): the page (`app`), its logic (`backend`), and the
embedded demo pack and calibration (`data/`)."""
