"""Serving planner adapter: reads model folders (config.json, safetensors headers) and load traces,
and runs the vectorised numerics (numpy) behind the pure rules in `domain/queueing.py`,
`domain/batching.py`, `domain/serving_memory.py` and `domain/autoscale.py`.  Qt-free."""
