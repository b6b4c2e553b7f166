"""Distillation: HetComp, its ablations and the baselines, all on one code path.

The teachers' ensemble as targets (`ensemble.py`), HetComp's dynamic knowledge construction and ADT switch
(`dkc.py`), DCD's correction state (`dcd.py`), the losses (`losses/`), the fused rest kernel they may run on
(`fused.py`, `kernels/`), the student (`student.py`), the methods (`methods.py`), an epoch's batches
(`batches.py`), the compiled steps (`trainer.py`) and the epoch loop with its result and resumable state
(`loop.py`)."""
