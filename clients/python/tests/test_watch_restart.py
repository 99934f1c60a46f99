"""JobWatch across a server restart: SIGTERM ends the stream with UNAVAILABLE;
the watch retries with backoff until the server is back on the same port and
database, then resumes after the last revision it delivered. Changes made
while the server was down (through another replica) are replayed; nothing is
lost or repeated."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator, List, Tuple

import grpc
from conftest import ServerProcess, Tokens, wait_until

from jobs.v1 import job_pb2, job_service_pb2 as api
from jobs_client import Backoff, JobsClient, JobWatch, WatchTimeout


@contextmanager
def _writer_reader_job(
    replica: ServerProcess, watched: ServerProcess, tokens: Tokens
) -> Iterator[Tuple[JobsClient, JobsClient, job_pb2.Job]]:
    """A writer on `replica`, a reader on `watched` (same database), and a new job."""
    with JobsClient(replica.address, tokens.scheduler) as writer, JobsClient(
        watched.address, tokens.executor
    ) as reader:
        job = writer.stub.CreateJob(
            api.CreateJobRequest(type=job_pb2.JOB_TYPE_HEALTH_CHECK, company_id=7)
        ).job
        yield writer, reader, job


def _consume(
    watch: JobWatch, seen: List[job_pb2.JobEvent], failure: List[BaseException]
) -> threading.Thread:
    """Iterates over the watch in a thread: its events into `seen`, what it raised into `failure`."""

    def consume() -> None:
        try:
            for event in watch:
                seen.append(event)
        except BaseException as error:
            failure.append(error)

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    return consumer


def test_watch_resumes_from_the_last_revision_after_a_server_restart(
    server: ServerProcess, start_server, tokens: Tokens  # type: ignore[no-untyped-def]
) -> None:
    watched = start_server()  # the server the watcher talks to; restarted below
    # `server` is a second replica on the same database: it takes the writes,
    # also while `watched` is down.
    with _writer_reader_job(server, watched, tokens) as (writer, reader, job):

        seen: List[job_pb2.JobEvent] = []
        reconnects: List[Tuple[int, grpc.StatusCode]] = []
        heartbeats: List[int] = []
        failure: List[BaseException] = []
        watch = reader.watch_job(
            job.id,
            after_revision=0,
            backoff=Backoff(initial=0.05, maximum=0.5),
            on_reconnect=lambda after, error: reconnects.append((after, error.code())),
            on_heartbeat=lambda beat: heartbeats.append(beat.revision),
        )

        consumer = _consume(watch, seen, failure)
        try:
            wait_until(lambda: len(seen) >= 1, "the CREATED event")
            writer.stub.RunJob(api.RunJobRequest(job_id=job.id, executor_id="py-worker"))
            wait_until(lambda: len(seen) >= 2, "the STARTED event, live")
            wait_until(lambda: 2 in heartbeats, "a heartbeat with the latest revision on the idle stream")

            assert watched.stop() == 0, "\n".join(watched.output)  # SIGTERM: drain, exit 0
            # While the watcher's server is down, the job moves on elsewhere.
            writer.stub.RequestJobCancellation(
                api.RequestJobCancellationRequest(job_id=job.id, reason="restart test")
            )
            assert len(seen) == 2

            watched.start()  # same port, same database
            wait_until(lambda: len(seen) >= 3, "the event missed while down, replayed")
            writer.stub.CancelJob(api.CancelJobRequest(job_id=job.id))
            consumer.join(timeout=30)
            assert not consumer.is_alive(), "the watch did not end after CANCELLED"
        finally:
            watch.close()
            consumer.join(timeout=5)

        assert failure == []
        assert [e.revision for e in seen] == [1, 2, 3, 4]
        assert [job_pb2.JobEventType.Name(e.type) for e in seen] == [
            "JOB_EVENT_TYPE_CREATED",
            "JOB_EVENT_TYPE_STARTED",
            "JOB_EVENT_TYPE_CANCELLATION_REQUESTED",
            "JOB_EVENT_TYPE_CANCELLED",
        ]
        assert seen[-1].job.state == job_pb2.JOB_STATE_CANCELLED
        # The drain ended the stream with UNAVAILABLE; every retry resumed after revision 2.
        assert reconnects, "the watch never reconnected"
        assert reconnects[0] == (2, grpc.StatusCode.UNAVAILABLE)
        assert all(after == 2 for after, _ in reconnects)
        assert watch.reconnects == len(reconnects)


def test_watch_resumes_after_the_server_is_killed(
    server: ServerProcess, start_server, tokens: Tokens  # type: ignore[no-untyped-def]
) -> None:
    """SIGKILL: no drain, no UNAVAILABLE from the server; the connection just
    breaks. The watch resumes all the same, once the server is back on the same
    port and database, and ends by itself when the job finishes."""
    watched = start_server()
    with _writer_reader_job(server, watched, tokens) as (writer, reader, job):
        seen: List[job_pb2.JobEvent] = []
        reconnects: List[int] = []
        failure: List[BaseException] = []
        watch = reader.watch_job(
            job.id,
            backoff=Backoff(initial=0.05, maximum=0.5),
            on_reconnect=lambda after, error: reconnects.append(after),
        )

        consumer = _consume(watch, seen, failure)
        try:
            wait_until(lambda: len(seen) >= 1, "the CREATED event")
            writer.stub.RunJob(api.RunJobRequest(job_id=job.id, executor_id="py-worker"))
            wait_until(lambda: len(seen) >= 2, "the STARTED event, live")

            watched.kill()  # SIGKILL
            writer.stub.CompleteJob(
                api.CompleteJobRequest(
                    job_id=job.id, result=job_pb2.JobResult(health_check=job_pb2.HealthCheckResult(healthy=True))
                )
            )
            wait_until(lambda: len(reconnects) >= 1 or bool(failure), "the watch to try again")
            assert failure == [], failure
            assert len(seen) == 2

            watched.start()  # same port, same database
            consumer.join(timeout=30)
            assert not consumer.is_alive(), "the watch did not end after COMPLETED"
        finally:
            watch.close()
            consumer.join(timeout=5)

        assert failure == []
        assert [e.revision for e in seen] == [1, 2, 3]
        assert seen[-1].job.state == job_pb2.JOB_STATE_COMPLETED
        assert reconnects and all(after == 2 for after in reconnects)


def test_watch_timeout_is_its_deadline(
    server: ServerProcess, tokens: Tokens  # type: ignore[no-untyped-def]
) -> None:
    """A watch with a timeout raises WatchTimeout (DEADLINE_EXCEEDED) once it
    passes, whether the stream is open then or the watch is waiting to
    reconnect."""
    with JobsClient(server.address, tokens.scheduler) as client:
        job = client.stub.CreateJob(
            api.CreateJobRequest(type=job_pb2.JOB_TYPE_HEALTH_CHECK, company_id=7)
        ).job
        seen: List[int] = []
        try:
            for event in client.watch_job(job.id, timeout=0.5):
                seen.append(event.revision)
        except WatchTimeout as error:
            assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        else:
            raise AssertionError("the watch outlived its timeout")
        # The job never finishes: only the timeout ends the watch (after CREATED, unless that took longer).
        assert seen in ([], [1])
