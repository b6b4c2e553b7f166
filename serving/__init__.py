"""Serving the exported models: the SavedModel export (`export.py`), a local stand-in for TF Serving's model server
(`server.py`, `versions.py`, `servable.py`, `rest.py`, `json_tensors.py`), its gRPC client (`client.py`) and the
version-swap load test (`swap_load.py`)."""
