"""A small typed layer over the generated jobs.v1 stubs (package ``jobs.v1``).

What it adds, and nothing more:

* :class:`JobsClient` — a channel whose every call carries
  ``authorization: Bearer <token>``; ``client.stub`` is the generated
  ``JobServiceStub``, so every RPC and message is the generated one.
* :func:`error_info` — the ``google.rpc.ErrorInfo`` the server attaches to
  every error (``reason``, ``domain``, ``metadata``), read from the
  ``grpc-status-details-bin`` trailer.
* :meth:`JobsClient.watch_job` — an iterator over a job's events that
  reconnects whenever the stream breaks (server drain, restart or crash,
  network) and resumes from the last revision it delivered, with exponential
  backoff, so no event is lost or repeated; until the job ends, ``close()``,
  or an optional ``timeout``.
"""

from jobs_client.client import (
    TERMINAL_STATES,
    Backoff,
    JobsClient,
    JobWatch,
    WatchTimeout,
    error_info,
    is_broken_stream,
)

__all__ = [
    "TERMINAL_STATES",
    "Backoff",
    "JobsClient",
    "JobWatch",
    "WatchTimeout",
    "error_info",
    "is_broken_stream",
]
