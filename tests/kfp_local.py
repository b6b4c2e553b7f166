"""What a KFP v2 backend does with a compiled TFX job spec, done on this machine without Kubernetes or Docker.

Each container task runs its own `command` + `args` from `deploymentSpec` as a subprocess, the `{{$}}` placeholder
replaced by the task's `ExecutorInput` JSON (its constant parameters, its upstream tasks' output artifacts as their
executors reported them in `executor_output.json`, fresh output URIs under the pipeline root). Resolver tasks run
their ML Metadata filter over the artifacts earlier tasks produced (this job's and earlier jobs' on the same
`LocalBackend`), as the backend's metadata service would. A task with `enableCache` whose inputs match an earlier
execution reuses its outputs, as KFP's cache does. Tasks whose upstream tasks have all finished run at the same
time, up to `parallelism` processes, as a KFP backend schedules independent pods. The image's interpreter
(`python`) does not exist here: it is replaced by this venv's.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import yaml

PLACEHOLDER = "{{$}}"
_CLAUSE = re.compile(
    r'^(?:schema_title="(?P<title>[^"]+)"|state=(?P<state>\w+)'
    r'|metadata\.(?P<key>\w+)\.number_value=(?P<number>[-\d.]+)|name="(?P<name>[^"]*)")$'
)
_INPUT_METADATA = re.compile(r"\{\{\$\.inputs\.artifacts\['(?P<input>\w+)'\]\.metadata\['(?P<key>\w+)'\]\}\}")


class TaskFailed(RuntimeError):
    pass


def schema_title(artifact_type: dict) -> str:
    """The type name of an `artifactType` ({"instanceSchema": yaml} or {"schemaTitle": name})."""
    return artifact_type.get("schemaTitle") or yaml.safe_load(artifact_type["instanceSchema"])["title"]


def dag_levels(tasks: dict) -> list[list[str]]:
    """Task names in waves: each wave's tasks depend on or take artifacts only from earlier waves' (by name)."""

    def upstream(task):
        producers = {
            a["taskOutputArtifact"]["producerTask"]
            for a in task.get("inputs", {}).get("artifacts", {}).values()
            if "taskOutputArtifact" in a
        }
        return set(task.get("dependentTasks", [])) | producers

    levels, done = [], set()
    while len(done) < len(tasks):
        ready = sorted(n for n, t in tasks.items() if n not in done and upstream(t) <= done)
        if not ready:
            raise ValueError(f"the DAG has a cycle among {sorted(set(tasks) - done)}")
        levels.append(ready)
        done |= set(ready)
    return levels


def dag_order(tasks: dict) -> list[str]:
    """Task names, every task after the tasks it depends on or takes artifacts from."""
    return [name for level in dag_levels(tasks) for name in level]


@dataclass
class Execution:
    task: str
    state: str  # "complete" | "cached" | "resolved"
    outputs: dict[str, list[dict]]  # output key -> RuntimeArtifact dicts (uri, name, type, metadata)
    seconds: float = 0.0
    started: float = 0.0  # time.perf_counter() when its process started


@dataclass
class LocalBackend:
    root: str  # the pipeline root (runtimeConfig.gcsOutputDirectory)
    env: dict = field(default_factory=dict)  # extra environment of every task process
    artifacts: list[dict] = field(default_factory=list)  # everything produced, oldest first
    cache: dict[str, dict] = field(default_factory=dict)  # cache key -> outputs
    parallelism: int = 2  # container tasks running at once
    _jobs: itertools.count = field(default_factory=itertools.count)

    def run(self, job: dict) -> dict[str, Execution]:
        """Runs the job (the JSON `hetcomp kubeflow` writes) to the end; raises TaskFailed naming the task.
        The returned executions are in `dag_order`."""
        spec, job_id = job["pipelineSpec"], f"job-{next(self._jobs)}"
        tasks = spec["root"]["dag"]["tasks"]
        done: dict[str, Execution] = {}
        with ThreadPoolExecutor(max_workers=self.parallelism) as pool:
            for level in dag_levels(tasks):
                launched = {}
                for name in level:
                    task = tasks[name]
                    component = spec["components"][task["componentRef"]["name"]]
                    executor = spec["deploymentSpec"]["executors"][component["executorLabel"]]
                    inputs = self._input_artifacts(task, component, done)
                    if "resolver" in executor:
                        done[name] = Execution(name, "resolved", self._resolve(executor["resolver"], inputs))
                    else:
                        launched[name] = pool.submit(
                            self._launch, job_id, name, task, component, executor["container"], inputs
                        )
                for name, future in launched.items():  # by name: the artifact store's order does not race
                    execution, cache_key = future.result()
                    if execution.state == "complete":
                        self.artifacts += [a for artifacts in execution.outputs.values() for a in artifacts]
                        self.cache[cache_key] = execution.outputs
                    done[name] = execution
        return {name: done[name] for name in dag_order(tasks)}

    def _input_artifacts(self, task: dict, component: dict, done: dict) -> dict[str, list[dict]]:
        inputs = {}
        for key, source in task.get("inputs", {}).get("artifacts", {}).items():
            producer = source["taskOutputArtifact"]
            artifacts = done[producer["producerTask"]].outputs.get(producer["outputArtifactKey"], [])
            if artifacts:  # an empty resolver output leaves an optional input unset
                artifact_type = component["inputDefinitions"]["artifacts"][key]["artifactType"]
                inputs[key] = [{**a, "type": artifact_type} for a in artifacts]
        return inputs

    def _resolve(self, resolver: dict, inputs: dict) -> dict[str, list[dict]]:
        """Each output query's latest matching artifact (none: an empty list)."""
        return {
            key: [a for a in reversed(self.artifacts) if self._matches(query["filter"], a, inputs)][:1]
            for key, query in resolver["outputArtifactQueries"].items()
        }

    @staticmethod
    def _matches(query: str, artifact: dict, inputs: dict) -> bool:
        def input_metadata(match):
            found = inputs.get(match["input"], [])
            return str(found[0]["metadata"].get(match["key"], "")) if found else ""

        for clause in _INPUT_METADATA.sub(input_metadata, query).split(" AND "):
            parts = _CLAUSE.match(clause.strip())
            if parts is None:
                raise ValueError(f"unsupported resolver filter clause {clause!r} in {query!r}")
            if parts["title"] and schema_title(artifact["type"]) != parts["title"]:
                return False
            if parts["state"] and parts["state"] != "LIVE":  # nothing here is ever deleted
                return False
            if parts["key"] and artifact["metadata"].get(parts["key"]) != float(parts["number"]):
                return False
            if parts["name"] is not None and artifact["name"] != parts["name"]:
                return False
        return True

    def _launch(self, job_id, name, task, component, container, inputs) -> tuple[Execution, str]:
        """Runs one container task (or finds it in the cache); the caller records its outputs."""
        parameters = {k: v["runtimeValue"]["constantValue"] for k, v in task["inputs"].get("parameters", {}).items()}
        cache_key = json.dumps(
            [container, parameters, {k: [a["name"] for a in v] for k, v in inputs.items()}], sort_keys=True
        )
        if task.get("cachingOptions", {}).get("enableCache") and cache_key in self.cache:
            return Execution(name, "cached", self.cache[cache_key]), cache_key
        task_dir = os.path.join(self.root, job_id, name)
        outputs = {
            key: [
                {
                    "name": f"local/{job_id}/{name}/{key}",
                    "uri": os.path.join(task_dir, key),
                    "type": definition["artifactType"],
                    "metadata": {},
                }
            ]
            for key, definition in component.get("outputDefinitions", {}).get("artifacts", {}).items()
        }
        output_file = os.path.join(task_dir, "executor_output.json")
        executor_input = {
            "inputs": {"parameters": parameters, "artifacts": _lists(inputs)},
            "outputs": {"artifacts": _lists(outputs), "outputFile": output_file},
        }
        command = [sys.executable if part == "python" else part for part in container["command"]]
        args = [json.dumps(executor_input) if arg == PLACEHOLDER else arg for arg in container["args"]]
        unresolved = [arg for arg in container["args"] if "{{" in arg and arg != PLACEHOLDER]
        if unresolved:
            raise ValueError(f"task {name}: unsupported placeholders {unresolved}")
        started = time.perf_counter()
        result = subprocess.run([*command, *args], capture_output=True, text=True, env={**os.environ, **self.env})
        if result.returncode != 0:
            raise TaskFailed(f"task {name} exited with {result.returncode}: {result.stderr[-3000:]}")
        with open(output_file) as f:
            reported = json.load(f).get("artifacts", {})
        for key, artifacts in outputs.items():
            if key in reported:  # the executor's view: its custom properties as metadata
                artifacts[:] = [
                    {**a, "metadata": r.get("metadata", {})} for a, r in zip(artifacts, reported[key]["artifacts"])
                ]
        return Execution(name, "complete", outputs, time.perf_counter() - started, started), cache_key


def _lists(artifacts: dict[str, list[dict]]) -> dict:
    """ExecutorInput's {key: {"artifacts": [RuntimeArtifact]}} form."""
    return {key: {"artifacts": values} for key, values in artifacts.items()}
