"""How the service is run under uvicorn: one set of options for `kb serve` and the tests' servers.

uvicorn's own proxy-header handling is off: by default it replaces the socket peer with the
``X-Forwarded-For`` value of any request from 127.0.0.1, which let a local client pose as a trusted
proxy. The service decides itself, from the socket peer and ``KB_TRUSTED_PROXIES``, whom to believe
(``search_service.auth.client_address``).
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any

from uvicorn.config import LOGGING_CONFIG

# Query parameters whose values are secrets, whatever the endpoint makes of them.
_SECRET_PARAMETER = re.compile(
    r"([?&](?:token|access_token|api_key|apikey|key|password|secret|auth|authorization)=)[^&\s\"]*", re.IGNORECASE)
# An API token anywhere in a logged string (e.g. pasted into ?q=); 16+ characters so "kb_index" is kept.
_TOKEN = re.compile(r"kb_[A-Za-z0-9_-]{16,}")
REDACTED = "[redacted]"


def redact(text: str) -> str:
    """``text`` with secret query-parameter values and API tokens replaced by ``[redacted]``."""
    return _TOKEN.sub(REDACTED, _SECRET_PARAMETER.sub(r"\1" + REDACTED, text))


class RedactSecrets(logging.Filter):
    """A log filter that redacts secrets in a record's message and arguments (the access log's request line)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


def log_config() -> dict[str, Any]:
    """uvicorn's logging configuration with secrets redacted from the access and error logs."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"redact_secrets": {"()": f"{__name__}.RedactSecrets"}}
    for name in ("uvicorn.access", "uvicorn.error"):
        config["loggers"].setdefault(name, {})["filters"] = ["redact_secrets"]
    return config


def uvicorn_options(host: str, port: int, *, log_level: str = "info") -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.run`` / ``uvicorn.Config`` (add the app, and ``workers`` if any)."""
    return {"host": host, "port": port, "log_level": log_level, "proxy_headers": False, "log_config": log_config()}
