"""The StudentTrainer's `run_fn` (TFX Trainer contract: called with `FnArgs`).

It distils with `hetcomp_tf.distill.distill`, writes TensorBoard logs and the run's summary to `model_run`,
exports the serving SavedModel into the Model's `Format-Serving/` (TFX's serving path, what the Pusher
copies) with `serving.export.export_student`, and saves the student's weights (`student.save_student`)
beside it. TFX reloads this module on every execution, so it defines nothing but the function.
"""

from __future__ import annotations

import os

from components import storage
from components.artifacts import KNOWLEDGE_DIR, METRICS_FILE, STUDENT_DIR
from hetcomp_tf import ensemble
from hetcomp_tf.config import DistillConfig, from_dict
from hetcomp_tf.distill import distill
from hetcomp_tf.student import save_student
from serving.export import export_student


def run_fn(fn_args) -> None:
    """Distils the student described by `custom_config["distill_config"]` (a DistillConfig dict)."""
    custom = fn_args.custom_config
    cfg = from_dict(DistillConfig, custom["distill_config"])
    data = storage.read_dataset(custom["dataset_uri"])
    with storage.readable_dir(custom["knowledge_uri"]) as directory:
        knowledge = ensemble.EnsembleKnowledge.load(os.path.join(directory, KNOWLEDGE_DIR))
    with storage.writable_dir(fn_args.model_run_dir) as log_dir:
        run = distill(data, knowledge, cfg, log_dir=log_dir)
    with storage.writable_dir(fn_args.serving_model_dir) as export_dir:
        export_student(run.student, data, export_dir)
    with storage.writable_dir(os.path.join(os.path.dirname(fn_args.serving_model_dir), STUDENT_DIR)) as directory:
        save_student(run.student, directory)
    storage.write_json(fn_args.model_run_dir, METRICS_FILE, run.to_dict())
