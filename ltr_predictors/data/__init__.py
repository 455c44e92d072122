"""Length-labelled data: trace readers (`traces`), the hash split (`splits`), training examples (`examples`) and
labelling prompts with a local LLM (`labeling`)."""
