"""Interaction data: its containers, readers, split protocols, data files and negative sampling.

The containers every other module consumes (`dataset.py`: `CSR`, `Interactions`, `Dataset`), the readers
(`readers.py`), the paper's preprocessing and split protocols (`split.py`, one user's `per_user` split in
`user_split.py`), `--data` read and split in one call (`loading.py`), where data files are (`datafiles.py`) and the
negative sampling over the train interactions (`sampling.py`)."""
