"""JobsClient, error_info and the resuming watch. See the package docstring."""

from __future__ import annotations

import collections
import random
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional, Sequence, Tuple

import grpc
from google.rpc import error_details_pb2, status_pb2

from jobs.v1 import job_pb2, job_service_pb2, job_service_pb2_grpc

#: States after which a job's WatchJob stream ends by itself (with OK).
TERMINAL_STATES = frozenset(
    {job_pb2.JOB_STATE_COMPLETED, job_pb2.JOB_STATE_FAILED, job_pb2.JOB_STATE_CANCELLED}
)

_STATUS_DETAILS_KEY = "grpc-status-details-bin"


def error_info(error: grpc.RpcError) -> Optional[error_details_pb2.ErrorInfo]:
    """The ``google.rpc.ErrorInfo`` detail of a failed call, or None.

    gRPC carries it in the ``grpc-status-details-bin`` trailer: a serialized
    ``google.rpc.Status`` whose ``details`` are ``Any`` messages. The server
    sends one ErrorInfo with ``domain`` "jobs.v1", a ``reason`` such as
    JOB_NOT_FOUND, INVALID_TRANSITION or STALE_ATTEMPT, and ``metadata``
    (``job_id``, ``state``, ``call``) where they apply.
    """
    trailers = error.trailing_metadata() if isinstance(error, grpc.Call) else None
    for key, value in trailers or ():
        if key != _STATUS_DETAILS_KEY:
            continue
        status = status_pb2.Status.FromString(value)
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                return info
    return None


class _CallDetails(
    collections.namedtuple(
        "_CallDetails",
        ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression"),
    ),
    grpc.ClientCallDetails,
):
    pass


class _BearerToken(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Adds ``authorization: Bearer <token>`` to every call."""

    def __init__(self, token: str) -> None:
        self._header = ("authorization", f"Bearer {token}")

    def _with_token(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        metadata = [m for m in (details.metadata or ()) if m[0] != "authorization"]
        metadata.append(self._header)
        return _CallDetails(
            details.method,
            details.timeout,
            metadata,
            details.credentials,
            details.wait_for_ready,
            details.compression,
        )

    def intercept_unary_unary(self, continuation, client_call_details, request):  # type: ignore[no-untyped-def]
        return continuation(self._with_token(client_call_details), request)

    def intercept_unary_stream(self, continuation, client_call_details, request):  # type: ignore[no-untyped-def]
        return continuation(self._with_token(client_call_details), request)


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff between reconnects: ``initial`` seconds, times
    ``multiplier`` after each failed attempt, at most ``maximum``, each delay
    varied by ±``jitter`` (a fraction) so that many watchers do not reconnect
    in step. Any message received resets it."""

    initial: float = 0.2
    maximum: float = 10.0
    multiplier: float = 2.0
    jitter: float = 0.2

    def delay(self, attempt: int) -> float:
        base = min(self.maximum, self.initial * self.multiplier ** max(0, attempt - 1))
        return max(0.0, base * (1.0 + random.uniform(-self.jitter, self.jitter)))


#: Called before each reconnect with the revision the watch resumes after and
#: the error that ended the previous attempt.
OnReconnect = Callable[[int, grpc.RpcError], None]

#: Codes that grpc reports for a connection that went away (a reset stream, a
#: cut-off response) as well as for a server's answer; only the server's
#: answers carry an ErrorInfo.
_CONNECTION_CODES = frozenset(
    {
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.ABORTED,
    }
)


def is_broken_stream(error: grpc.RpcError) -> bool:
    """Whether a failed stream broke rather than being ended by the server:
    UNAVAILABLE (the server drains or restarts, the connection is refused or
    dropped), or a code grpc made up for a connection that went away. Every
    error the jobs service itself sends carries an ErrorInfo, so one without
    it is the connection's."""
    code = error.code() if isinstance(error, grpc.Call) else None
    if code == grpc.StatusCode.UNAVAILABLE:
        return True
    return code in _CONNECTION_CODES and error_info(error) is None


class WatchTimeout(grpc.RpcError):
    """Raised by a watch whose ``timeout`` has passed; ``code()`` is
    DEADLINE_EXCEEDED, whatever the call it cut short was doing then."""

    def __init__(self, job_id: str, timeout: float, last_revision: int) -> None:
        super().__init__(
            f"job {job_id} did not finish within {timeout} s (last revision {last_revision})"
        )

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.DEADLINE_EXCEEDED

    def details(self) -> str:
        return str(self)


class JobWatch(Iterator[job_pb2.JobEvent]):
    """Iterates over one job's events (``JobEvent``), oldest first.

    Starts after ``after_revision`` (0: the whole history), then follows the
    job live. When the stream breaks without the server ending it — the
    server drains on SIGTERM, restarts, crashes, or the network drops (see
    :func:`is_broken_stream`) — it waits (``backoff``) and calls WatchJob
    again with ``after_revision`` = the last revision it delivered, so the
    server replays exactly what was missed. Iteration ends when the server
    ends the stream with OK, i.e. after an event whose ``to_state`` is
    COMPLETED, FAILED or CANCELLED. The server's own refusals (NOT_FOUND,
    OUT_OF_RANGE, UNAUTHENTICATED…), more than ``max_attempts`` failed
    attempts in a row, are raised as the ``grpc.RpcError``; ``timeout``
    seconds after the watch began, :class:`WatchTimeout` (an RpcError whose
    code is DEADLINE_EXCEEDED).

    Heartbeats (sent by the server on idle streams) are not yielded; pass
    ``on_heartbeat`` to see them. ``close()`` (from any thread) stops the
    watch: the iteration ends quietly.
    """

    def __init__(
        self,
        stub: job_service_pb2_grpc.JobServiceStub,
        job_id: str,
        after_revision: int = 0,
        *,
        backoff: Backoff = Backoff(),
        max_attempts: Optional[int] = None,
        timeout: Optional[float] = None,
        on_reconnect: Optional[OnReconnect] = None,
        on_heartbeat: Optional[Callable[[job_pb2.Heartbeat], None]] = None,
    ) -> None:
        self._stub = stub
        self._timeout = timeout
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self.job_id = job_id
        self._last_revision = after_revision
        self._backoff = backoff
        self._max_attempts = max_attempts
        self._on_reconnect = on_reconnect
        self._on_heartbeat = on_heartbeat
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._call: Any = None
        self.reconnects = 0
        self._events = self._run()

    @property
    def last_revision(self) -> int:
        """The revision of the last event delivered (or the starting point)."""
        return self._last_revision

    def __iter__(self) -> "JobWatch":
        return self

    def __next__(self) -> job_pb2.JobEvent:
        return next(self._events)

    def close(self) -> None:
        """Stops the watch; safe from any thread, and more than once."""
        self._closed.set()
        with self._lock:
            call = self._call
        if call is not None:
            call.cancel()

    def __enter__(self) -> "JobWatch":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open(self) -> Any:
        request = job_service_pb2.WatchJobRequest(
            job_id=self.job_id, after_revision=self._last_revision
        )
        # The time left, as this call's own deadline: grpc ends it with DEADLINE_EXCEEDED.
        remaining = None if self._deadline is None else max(0.0, self._deadline - time.monotonic())
        call = self._stub.WatchJob(request, timeout=remaining)
        with self._lock:
            self._call = call
        if self._closed.is_set():
            call.cancel()
        return call

    def _run(self) -> Iterator[job_pb2.JobEvent]:
        failures = 0
        while not self._closed.is_set():
            call = None
            try:
                call = self._open()
                for message in call:
                    failures = 0
                    kind = message.WhichOneof("kind")
                    if kind == "event":
                        self._last_revision = message.event.revision
                        yield message.event
                    elif kind == "heartbeat" and self._on_heartbeat is not None:
                        self._on_heartbeat(message.heartbeat)
                return  # the server ended the stream with OK: the job is finished
            except grpc.RpcError as error:
                if self._closed.is_set():
                    return
                if self._deadline is not None and time.monotonic() >= self._deadline:
                    # Whichever way the call ended then (its own deadline, or the server's answer to it).
                    raise WatchTimeout(self.job_id, self._timeout or 0.0, self._last_revision) from error
                if not is_broken_stream(error):
                    raise
                failures += 1
                if self._max_attempts is not None and failures >= self._max_attempts:
                    raise
                delay = self._backoff.delay(failures)
                if self._deadline is not None:
                    # The next call then ends at once with DEADLINE_EXCEEDED.
                    delay = min(delay, max(0.0, self._deadline - time.monotonic()))
                if self._closed.wait(delay):
                    return
                self.reconnects += 1
                if self._on_reconnect is not None:
                    self._on_reconnect(self._last_revision, error)
            finally:
                # Also when the caller stops iterating early: free the stream.
                if call is not None:
                    call.cancel()
                with self._lock:
                    self._call = None


#: Channel options that make a channel retry a lost connection quickly
#: (grpc's defaults back off up to 2 minutes between connection attempts).
FAST_RECONNECT: Sequence[Tuple[str, Any]] = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
)


class JobsClient:
    """A channel to the jobs server that sends the bearer token on every call.

    ``target`` is ``host:port``. Without ``credentials`` the channel is
    plaintext (h2c), as the server serves it unless TLS is configured; pass
    ``grpc.ssl_channel_credentials()`` for TLS. ``client.stub`` is the
    generated ``JobServiceStub``: ``client.stub.GetJob(GetJobRequest(...))``.
    """

    def __init__(
        self,
        target: str,
        token: str,
        *,
        credentials: Optional[grpc.ChannelCredentials] = None,
        options: Sequence[Tuple[str, Any]] = FAST_RECONNECT,
    ) -> None:
        if credentials is None:
            channel = grpc.insecure_channel(target, options=list(options))
        else:
            channel = grpc.secure_channel(target, credentials, options=list(options))
        self._raw_channel = channel
        self.channel = grpc.intercept_channel(channel, _BearerToken(token))
        self.stub = job_service_pb2_grpc.JobServiceStub(self.channel)

    def watch_job(
        self,
        job_id: str,
        after_revision: int = 0,
        *,
        backoff: Backoff = Backoff(),
        max_attempts: Optional[int] = None,
        timeout: Optional[float] = None,
        on_reconnect: Optional[OnReconnect] = None,
        on_heartbeat: Optional[Callable[[job_pb2.Heartbeat], None]] = None,
    ) -> JobWatch:
        """Follows one job's events, resuming after disconnects: see JobWatch."""
        return JobWatch(
            self.stub,
            job_id,
            after_revision,
            backoff=backoff,
            max_attempts=max_attempts,
            timeout=timeout,
            on_reconnect=on_reconnect,
            on_heartbeat=on_heartbeat,
        )

    def close(self) -> None:
        self._raw_channel.close()

    def __enter__(self) -> "JobsClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
