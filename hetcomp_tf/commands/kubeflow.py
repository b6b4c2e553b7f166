"""`hetcomp kubeflow`: compile the TFX pipeline to a Kubeflow Pipelines v2 job spec (JSON) for IMAGE.

IMAGE is built from the repository's Dockerfile; the pipeline root (and the data path, unless synthetic, or
citeulike, which the ingestion task fetches) must be reachable from every task, e.g. gs://bucket/hetcomp.
Compiling needs no cluster and no local copy of the data. `--student-workers N` compiles the StudentTrainer for N
workers (distribute=multi_worker): KFP v2 runs a task as one pod, so that task must be run as an N-worker job whose
platform sets TF_CONFIG (e.g. a Kubeflow TFJob or a Vertex AI custom job); with one pod it stops with that message.
`--teacher-workers N` does the same for each of the six TeacherTrainers.
"""

from __future__ import annotations

import os
import sys

from hetcomp_tf.commands.options import add_pipeline_arguments, pipeline_config
from hetcomp_tf.errors import HetCompError


def add_arguments(parser) -> None:
    add_pipeline_arguments(parser)
    parser.add_argument("--out", required=True, metavar="FILE", help="where to write the pipeline spec (JSON)")
    parser.add_argument("--image", required=True, help="container image every task runs in")
    parser.add_argument(
        "--pipeline-root",
        default=os.environ.get("HETCOMP_PIPELINE_ROOT"),
        metavar="URI",
        help="artifact root every task can reach, e.g. gs://bucket/hetcomp (default: "
        "$HETCOMP_PIPELINE_ROOT); the Pusher writes URI/serving/<version>/",
    )
    parser.add_argument(
        "--student-workers",
        type=int,
        default=1,
        metavar="N",
        help="train the student on N workers (MultiWorkerMirroredStrategy; the task must then run "
        "as an N-worker job whose platform sets TF_CONFIG; default 1)",
    )
    parser.add_argument(
        "--teacher-workers",
        type=int,
        default=1,
        metavar="N",
        help="train each teacher on N workers, likewise (default 1)",
    )


def run(args) -> int:
    from pipeline.kubeflow_runner import compile_pipeline

    if not args.pipeline_root:
        raise HetCompError(
            "give --pipeline-root (or set HETCOMP_PIPELINE_ROOT): a URI every task can reach, "
            "e.g. gs://bucket/hetcomp"
        )
    config = pipeline_config(
        args,
        args.pipeline_root,
        pipeline_root=args.pipeline_root,
        student_workers=args.student_workers,
        teacher_workers=args.teacher_workers,
    )
    spec = compile_pipeline(config, args.image, args.out)
    tasks = spec["pipelineSpec"]["root"]["dag"]["tasks"]
    print(f"wrote {os.path.abspath(args.out)}: {len(tasks)} tasks on image {args.image}", file=sys.stderr)
    return 0
