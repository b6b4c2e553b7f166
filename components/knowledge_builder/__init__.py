"""`KnowledgeBuilder`: the component (spec and class) in `component.py`, its executor in `executor.py`."""
