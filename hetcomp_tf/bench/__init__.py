"""Experiments on the library: the benchmark of every method, the quality-vs-serving-cost frontier, serving
latency, step and teacher timings, and the cost model.

The benchmark (`benchmark.py`: teachers once, then every method over seeds and student sizes; its runs in `runs.py`,
its results in `results.py`, the curriculum read back in `diagnosis.py`, its invocations' wall time in
`wall_clock.py`), the quality-vs-serving-cost frontier (`frontier.py`), serving latency (`latency.py`), the per-loss
step micro-benchmark (`step_timing.py`), the teachers' epoch and evaluation costs (`teacher_timing.py`) and the cost
model fitted at synthetic sizes (`cost_model.py`)."""
