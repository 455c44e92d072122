"""Benchmarks that print figures: scoring speed (`scoring`), hook overhead (`hook_overhead`), a queueing simulator
(`queueing`) and the serving benchmark on a real vLLM engine (`serving`)."""
