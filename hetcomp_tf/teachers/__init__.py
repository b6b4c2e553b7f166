"""Training the teachers (the six models of `hetcomp_tf/models`): the one training loop (`training.py`), the
ranking trajectories recorded while they train (`trajectories.py`) and the workflow that trains all of them for the
`teachers` command and the benchmark (`workflow.py`)."""
