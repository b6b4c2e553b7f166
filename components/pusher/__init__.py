"""The Pusher's executor (`executor.py`): the component is TFX's own Pusher (inputs `model` and `model_blessing`,
output `pushed_model`), given this executor by `custom_executor_spec` (pipeline/pipeline.py)."""
