# The image every Kubeflow task of the HetComp pipeline runs in:
#   docker build -t IMAGE . && hetcomp kubeflow --image IMAGE --pipeline-root gs://BUCKET/hetcomp --out pipeline.json
# Same install as the Makefile: the uv-resolved lock, then the packages whose metadata needs --no-deps
# (tfx/ml-pipelines-sdk cap Python <3.11; kfp-pipeline-spec asks protobuf<4), then this package.
# bookworm = Debian 12 (glibc 2.36), the platform the lock was resolved and tested on.
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    UV_NO_CACHE=1

WORKDIR /opt/hetcomp

# g++: the fused rest kernel (hetcomp_tf/distill/fused.py) is compiled on first use, on the CPU that runs the task.
RUN apt-get update && apt-get install -y --no-install-recommends g++ && rm -rf /var/lib/apt/lists/*

# The pinned stack in its own layer: it changes far less often than the code.
COPY requirements/requirements.lock requirements/no-deps.txt requirements/
RUN pip install --no-cache-dir --disable-pip-version-check uv==0.13.9 \
 && uv pip install --system -r requirements/requirements.lock \
 && uv pip install --system --no-deps -r requirements/no-deps.txt

COPY pyproject.toml README.md ./
COPY hetcomp_tf/ hetcomp_tf/
COPY components/ components/
COPY pipeline/ pipeline/
COPY serving/ serving/
RUN uv pip install --system --no-deps . \
 && python -c "import components, pipeline.pipeline, serving.export"

# KubeflowV2DagRunner sets this command on every task itself; the entrypoint makes `docker run IMAGE ARGS`
# behave the same way.
ENTRYPOINT ["python", "-m", "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"]
