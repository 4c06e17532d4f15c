"""The composed config: its groups (``groups``), its validation before any training
(``validation``), the names a run is known by (``names``) and the settings and keys its results
depend on (``keys``). Everything is importable from ``tiedae.config`` itself.
"""

from __future__ import annotations

from tiedae.config.errors import ConfigError, DivergedError
from tiedae.config.groups import (
    CONFIG_DIR,
    PROJECT_ROOT,
    check_choices,
    config_groups,
    groups_help,
)
from tiedae.config.keys import (
    IDENTITY_PARTS,
    changed_parts,
    flatten,
    key_parts,
    pool_settings,
    precision_settings,
    pretrain_settings,
    protocol_name,
    protocol_settings,
    provenance,
    run_settings,
    settings_key,
    source_settings,
)
from tiedae.config.names import (
    CONV_DEFAULT_SHAPE,
    DEFAULT_SIZES,
    draws_pool,
    has_decoder,
    is_pretrained,
    is_sklearn,
    labels_label,
    method_name,
    n_layers,
    objective_row,
    on_codes,
    precision_name,
    reads_pool,
    reuse_layers,
    run_name,
    uses_objective,
)
from tiedae.config.validation import (
    CLASSIFIER_KINDS,
    PRECISIONS,
    SKLEARN_ESTIMATORS,
    validate,
)
from tiedae.pretrainings.transfer import BUILTIN_SOURCE, MODEL_URI_SCHEMES, source_classes
from tiedae.vocab import (
    ACTIVATIONS,
    AE_IMAGES,
    AE_LOSSES,
    INITIALIZERS,
    N_CLASSES,
    NOISES,
    OPTIMIZERS,
    n_classes,
)

__all__ = [
    "ACTIVATIONS", "AE_IMAGES", "AE_LOSSES", "BUILTIN_SOURCE", "CLASSIFIER_KINDS", "CONFIG_DIR",
    "CONV_DEFAULT_SHAPE", "ConfigError", "DEFAULT_SIZES", "DivergedError", "IDENTITY_PARTS",
    "INITIALIZERS", "MODEL_URI_SCHEMES", "NOISES", "N_CLASSES", "OPTIMIZERS",
    "PRECISIONS", "PROJECT_ROOT", "SKLEARN_ESTIMATORS", "changed_parts",
    "check_choices", "config_groups", "draws_pool", "flatten", "groups_help", "has_decoder",
    "is_pretrained", "is_sklearn", "key_parts", "labels_label", "method_name", "n_classes",
    "n_layers", "objective_row", "on_codes", "pool_settings", "precision_name",
    "precision_settings", "pretrain_settings", "protocol_name", "protocol_settings",
    "provenance", "reads_pool", "reuse_layers", "run_name", "run_settings", "settings_key",
    "source_classes", "source_settings", "uses_objective", "validate",
]  # fmt: skip
