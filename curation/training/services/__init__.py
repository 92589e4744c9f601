"""The training app's verbs: embedding sets, the model registry and the retraining pipeline.

Split by responsibility; import from here.
"""

from curation.training.services.embeddings import (  # noqa: F401
    EmbeddingError,
    EmbedReport,
    embedding_set_activate,
    embedding_set_add_products,
    embedding_set_build,
)
from curation.training.services.registry import (  # noqa: F401
    RegistryError,
    model_version_activate,
    model_version_make_active,
    model_version_rollback,
)
from curation.training.services.pipeline import (  # noqa: F401
    STEP_NAMES,
    STEPS,
    PipelineBusy,
    PipelineFailed,
    pipeline_run_execute,
    pipeline_run_fail,
    pipeline_run_request,
    pipeline_runs_fail_stale,
    pipeline_step_run,
    retrain_if_enough_labels,
)
