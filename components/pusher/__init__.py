"""The Pusher's executor (`executor.py`): the component is TFX's own Pusher, given this executor by
`custom_executor_spec` (pipeline/pipeline.py)."""
