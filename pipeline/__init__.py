"""The HetComp TFX pipeline (DAG, configs, local and Kubeflow runners).

Importing TFX pulls in google-cloud clients that emit FutureWarnings about their own Python support policy
on import; they say nothing about this pipeline, so they are silenced here, before any TFX import.
"""

import warnings

warnings.filterwarnings("ignore", category=FutureWarning, module=r"google\.")
