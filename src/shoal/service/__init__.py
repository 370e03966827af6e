"""``shoal serve``: one graph behind an HTTP API with an OpenAI-compatible front, Prometheus
metrics and hashed API keys. Needs ``fastapi``, ``uvicorn`` and ``prometheus-client``; ``import
shoal`` does not import this package.

.. versionadded:: 0.1.0
"""

from shoal.service.app import WARMUP_TEXT, RunRequest, create_app
from shoal.service.keys import (
    ANY_GRAPH,
    ApiKey,
    KeysFileError,
    KeyStore,
    add_key,
    default_keys_path,
    hash_key,
    read_keys,
    remove_key,
)
from shoal.service.metrics import Metrics

__all__ = [
    "ANY_GRAPH",
    "ApiKey",
    "KeyStore",
    "KeysFileError",
    "Metrics",
    "RunRequest",
    "WARMUP_TEXT",
    "add_key",
    "create_app",
    "default_keys_path",
    "hash_key",
    "read_keys",
    "remove_key",
]
