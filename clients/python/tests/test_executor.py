"""The example executor (examples/executor.py), run as its own process against
the live server: the happy path and a cancellation requested by someone else."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Dict, List

import grpc
import pytest
from conftest import PYTHON_CLIENT, ServerProcess, Tokens

from jobs.v1 import job_pb2, job_service_pb2 as api
from jobs_client import JobsClient, error_info

EXECUTOR = PYTHON_CLIENT / "examples" / "executor.py"


class Executor:
    """examples/executor.py as a child process; its JSON lines, as they come."""

    def __init__(self, server: ServerProcess, token: str, job_id: str, executor_id: str, steps: int) -> None:
        self.lines: "queue.Queue[Dict[str, Any]]" = queue.Queue()
        self.seen: List[Dict[str, Any]] = []
        self.stderr = ""
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(EXECUTOR),
                "--server", server.address,
                "--token", token,
                "--job-id", job_id,
                "--executor-id", executor_id,
                "--steps", str(steps),
                "--heartbeat-interval", "0.2",
                "--lease-seconds", "30",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(json.loads(line))

    def next_event(self, name: str, timeout: float = 30.0) -> Dict[str, Any]:
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"executor printed no {name!r}; so far: {self.seen}") from None
            self.seen.append(line)
            if line["event"] == name:
                return line

    def wait(self) -> int:
        code = self.process.wait(timeout=60)
        assert self.process.stderr is not None
        self.stderr = self.process.stderr.read()
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return code


def create_job(client: JobsClient, job_type: int = job_pb2.JOB_TYPE_FORECAST) -> job_pb2.Job:
    request = api.CreateJobRequest(
        type=job_type,
        company_id=7,
        input=job_pb2.JobInput(forecast=job_pb2.ForecastInput(nql="select 1"))
        if job_type == job_pb2.JOB_TYPE_FORECAST
        else None,
    )
    return client.stub.CreateJob(request).job


def events_of(client: JobsClient, job_id: str) -> List[job_pb2.JobEvent]:
    return list(client.stub.ListJobEvents(api.ListJobEventsRequest(job_id=job_id)).events)


def names(events: List[job_pb2.JobEvent]) -> List[str]:
    return [job_pb2.JobEventType.Name(e.type) for e in events]


def test_executor_claims_heartbeats_and_completes(server: ServerProcess, tokens: Tokens) -> None:
    with JobsClient(server.address, tokens.scheduler) as scheduler:
        job = create_job(scheduler)
        executor = Executor(server, tokens.executor, job.id, "py-worker-1", steps=3)
        assert executor.wait() == 0, executor.stderr

        kinds = [line["event"] for line in executor.seen]
        claimed = executor.seen[kinds.index("claimed")]
        assert claimed["attempt"] == 1 and claimed["changed"] is True
        heartbeats = [line for line in executor.seen if line["event"] == "heartbeat"]
        assert [h["step"] for h in heartbeats] == [1, 2, 3]
        assert all(h["state"] == "JOB_STATE_RUNNING" for h in heartbeats)
        assert executor.seen[kinds.index("completed")]["changed"] is True
        # The executor's watch started after STARTED and saw exactly the completion.
        assert executor.seen[kinds.index("watch_ended")]["revisions"] == [3]

        final = scheduler.stub.GetJob(api.GetJobRequest(job_id=job.id)).job
        assert final.state == job_pb2.JOB_STATE_COMPLETED
        assert final.executor_id == "py-worker-1"
        assert final.result.WhichOneof("kind") == "forecast"
        assert final.result.forecast.cost == 42
        assert names(events_of(scheduler, job.id)) == [
            "JOB_EVENT_TYPE_CREATED",
            "JOB_EVENT_TYPE_STARTED",
            "JOB_EVENT_TYPE_COMPLETED",
        ]


def test_executor_acknowledges_a_cancellation_requested_by_someone_else(
    server: ServerProcess, tokens: Tokens
) -> None:
    with JobsClient(server.address, tokens.scheduler) as scheduler:
        job = create_job(scheduler)
        executor = Executor(server, tokens.executor, job.id, "py-worker-2", steps=0)  # works until cancelled
        executor.next_event("claimed")

        requested = scheduler.stub.RequestJobCancellation(
            api.RequestJobCancellationRequest(job_id=job.id, reason="no longer needed")
        )
        assert requested.changed
        assert requested.job.state == job_pb2.JOB_STATE_PENDING_CANCELLATION

        cancelled = executor.next_event("cancelled")
        assert cancelled["changed"] is True
        assert executor.wait() == 0, executor.stderr
        watched = [line for line in executor.seen if line["event"] == "event"]
        # The executor's watch delivered the request (by the scheduler), then its own CancelJob.
        assert [(e["type"], e["actor"]) for e in watched] == [
            ("JOB_EVENT_TYPE_CANCELLATION_REQUESTED", "py-scheduler"),
            ("JOB_EVENT_TYPE_CANCELLED", "py-executor"),
        ]

        final = scheduler.stub.GetJob(api.GetJobRequest(job_id=job.id)).job
        assert final.state == job_pb2.JOB_STATE_CANCELLED
        assert final.cancellation_reason == "no longer needed"
        events = events_of(scheduler, job.id)
        assert names(events) == [
            "JOB_EVENT_TYPE_CREATED",
            "JOB_EVENT_TYPE_STARTED",
            "JOB_EVENT_TYPE_CANCELLATION_REQUESTED",
            "JOB_EVENT_TYPE_CANCELLED",
        ]
        assert [e.actor.name for e in events[1:]] == ["py-executor", "py-scheduler", "py-executor"]


def test_a_second_executor_does_not_take_a_running_job(server: ServerProcess, tokens: Tokens) -> None:
    with JobsClient(server.address, tokens.scheduler) as scheduler, JobsClient(
        server.address, tokens.executor
    ) as worker:
        job = create_job(scheduler)
        worker.stub.RunJob(api.RunJobRequest(job_id=job.id, executor_id="py-worker-3"))
        executor = Executor(server, tokens.executor, job.id, "py-worker-4", steps=1)
        assert executor.wait() == 3, executor.stderr
        assert executor.seen[-1] == {
            "event": "not_ours",
            "executor_id": "py-worker-3",
            "state": "JOB_STATE_RUNNING",
        }


def test_errors_carry_error_info_and_the_token_is_required(server: ServerProcess, tokens: Tokens) -> None:
    with JobsClient(server.address, tokens.scheduler) as client:
        missing = "00000000-0000-4000-8000-000000000000"
        with pytest.raises(grpc.RpcError) as raised:
            client.stub.GetJob(api.GetJobRequest(job_id=missing))
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND
        info = error_info(raised.value)
        assert info is not None
        assert (info.domain, info.reason) == ("jobs.v1", "JOB_NOT_FOUND")
        assert info.metadata["job_id"] == missing

        job = create_job(client)
        with pytest.raises(grpc.RpcError) as raised:
            client.stub.CancelJob(api.CancelJobRequest(job_id=job.id))
        assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        info = error_info(raised.value)
        assert info is not None and info.reason == "INVALID_TRANSITION"
        assert info.metadata["state"] == "JOB_STATE_PENDING"

    with JobsClient(server.address, "not-a-token") as stranger:
        with pytest.raises(grpc.RpcError) as raised:
            stranger.stub.GetJob(api.GetJobRequest(job_id=job.id))
        assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
        info = error_info(raised.value)
        assert info is not None and info.domain == "jobs.v1"
