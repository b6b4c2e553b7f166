"""The StudentTrainer's `run_fn` (TFX Trainer contract: called with `FnArgs`).

It distils with `hetcomp_tf.distill.loop.distill`, writes TensorBoard logs and the run's summary to `model_run`,
exports the serving SavedModel into the Model's `Format-Serving/` (TFX's serving path, what the Pusher
copies) with `serving.export.export_model`, and saves the student's weights (`student.save_student`)
beside it, with the vocabularies its rows stand for. With a `base_model` (the latest blessed student, on a
warm-started run) the student starts from it (`hetcomp_tf.warmstart`); one without vocabularies (written before warm
starts) is ignored. With `distribute` = multi_worker every worker of the cluster runs it and only the chief's files
reach the artifacts (`distribute.worker_dir`). TFX reloads this module on every execution, so it defines nothing but
the function.
"""

from __future__ import annotations

import os

from components import keys, knowledge_beam, storage
from components.artifacts import KNOWLEDGE_DIR, METRICS_FILE, STUDENT_DIR
from hetcomp_tf.config import DistillConfig, from_dict
from hetcomp_tf.distill.loop import distill
from hetcomp_tf.distill.student import load_student, save_student
from hetcomp_tf.util.distribute import make_strategy, require_workers, worker_dir
from hetcomp_tf.util.progress import log
from hetcomp_tf.warmstart import WarmStart
from serving.export import export_model


def run_fn(fn_args) -> None:
    """Distils the student described by `custom_config[keys.DISTILL_CONFIG_FIELD]` (a DistillConfig dict) on the
    `custom_config[keys.WORKERS_FIELD]` workers it was compiled for.

    Args:
        fn_args: TFX's `FnArgs`: serving_model_dir, model_run_dir, base_model (the base Model's serving directory,
            or None) and custom_config (the distill config, the workers, the dataset and knowledge URIs).

    Raises:
        HetCompError: a cluster of another size than the workers, a bad config or knowledge, or a distillation
            failure (`distill`).
    """
    custom = fn_args.custom_config
    cfg = from_dict(DistillConfig, custom[keys.DISTILL_CONFIG_FIELD])
    strategy = make_strategy(cfg.distribute)  # before TensorFlow runs anything (multi-worker collectives)
    require_workers(strategy, custom.get(keys.WORKERS_FIELD, 1), "StudentTrainer")  # older specs: no field, one worker
    data = storage.read_dataset(custom[keys.DATASET_URI_FIELD])
    with storage.readable_dir(custom[keys.KNOWLEDGE_URI_FIELD]) as directory:
        knowledge = knowledge_beam.load_knowledge(os.path.join(directory, KNOWLEDGE_DIR))
    warm_start = None
    if fn_args.base_model:  # TFX hands over the base Model's Format-Serving directory
        base_uri = os.path.dirname(fn_args.base_model)
        vocabularies = storage.read_vocabulary(base_uri)
        if vocabularies is None:
            log(f"base model {base_uri} holds no vocabularies (written before warm starts): training cold")
        else:
            with storage.readable_dir(os.path.join(base_uri, STUDENT_DIR)) as directory:
                warm_start = WarmStart(load_student(directory), *vocabularies, source=base_uri)
    model_dir, serving_name = os.path.split(fn_args.serving_model_dir)
    with worker_dir(fn_args.model_run_dir, strategy) as run_dir, worker_dir(model_dir, strategy) as model_dir:
        with storage.writable_dir(run_dir) as log_dir:
            run = distill(data, knowledge, cfg, log_dir=log_dir, warm_start=warm_start, strategy=strategy)
        with storage.writable_dir(os.path.join(model_dir, serving_name)) as export_dir:
            export_model(run.student, data, export_dir)
        with storage.writable_dir(os.path.join(model_dir, STUDENT_DIR)) as directory:
            save_student(run.student, directory)
        storage.write_vocabulary(model_dir, data)
        storage.write_json(run_dir, METRICS_FILE, run.to_dict())
