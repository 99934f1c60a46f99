#!/usr/bin/env python3
"""An example executor: claims one job, works on it, and reports the outcome.

    python examples/executor.py --server 127.0.0.1:50051 --token "$JOBS_TOKEN" \\
        --job-id 6f0c… --executor-id worker-1 [--steps 5] [--heartbeat-interval 2]

1. RunJob claims the job (PENDING, or FAILED to retry it). If another
   executor already runs it, stop (RunJob on a RUNNING job is a no-op whoever
   asks: compare the returned executor_id with ours).
2. WatchJob follows the job from the revision RunJob returned, in a thread,
   resuming after disconnects (jobs_client.JobWatch). A CANCELLATION_REQUESTED
   event (to_state PENDING_CANCELLATION) tells us to stop.
3. While working, HeartbeatJob(job_id, executor_id, attempt) every
   --heartbeat-interval seconds keeps the lease alive. Its reply also says
   the job's state, a second way to learn of a cancellation request; a
   STALE_ATTEMPT error means the lease was lost and someone else owns the job.
4. Done: CompleteJob with the attempt (a late report of a superseded attempt
   is rejected). Cancelled: CancelJob acknowledges the request. Either way
   the watch then sees the final event and ends by itself.

The work is simulated: one step per heartbeat interval, --steps steps (0 =
until cancelled). Prints one JSON object per line (claimed, heartbeat, event,
completed, cancelled, …) so that scripts and tests can follow it.
Exit codes: 0 completed or cancelled, 1 error, 3 the job is someone else's,
4 the lease was lost.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

# Run from a checkout without installing: the generated code and jobs_client
# live one directory up.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import grpc  # noqa: E402

from jobs.v1 import job_pb2, job_service_pb2 as api  # noqa: E402
from jobs_client import TERMINAL_STATES, JobsClient, error_info  # noqa: E402

Emit = Callable[..., None]


def result_for(job: job_pb2.Job) -> Optional[job_pb2.JobResult]:
    """The result variant of this job's type (made up: the work is simulated)."""
    if job.type == job_pb2.JOB_TYPE_FORECAST:
        return job_pb2.JobResult(forecast=job_pb2.ForecastResult(cost=42, rows=1000))
    if job.type == job_pb2.JOB_TYPE_HEALTH_CHECK:
        return job_pb2.JobResult(
            health_check=job_pb2.HealthCheckResult(healthy=True, checks={"ping": "ok"})
        )
    return None  # a type this executor does not handle


def run_executor(
    client: JobsClient,
    job_id: str,
    executor_id: str,
    *,
    steps: int = 3,
    heartbeat_interval: float = 2.0,
    lease_seconds: int = 30,
    emit: Emit = lambda what, **fields: None,
) -> str:
    """Runs one job to its end; returns "completed", "failed", "cancelled",
    "not_ours", "lost_lease" or "finished_elsewhere"."""
    run = client.stub.RunJob(
        api.RunJobRequest(job_id=job_id, executor_id=executor_id, lease_seconds=lease_seconds)
    )
    job = run.job
    if job.executor_id != executor_id or job.state != job_pb2.JOB_STATE_RUNNING:
        emit("not_ours", executor_id=job.executor_id, state=job_pb2.JobState.Name(job.state))
        return "not_ours"
    attempt = job.attempt
    emit("claimed", attempt=attempt, revision=job.revision, changed=run.changed)

    stop = threading.Event()
    reporting = threading.Event()  # set once we report the outcome ourselves
    why: Dict[str, str] = {}
    watched: List[job_pb2.JobEvent] = []
    watch_error: List[BaseException] = []
    watch = client.watch_job(job_id, after_revision=job.revision)

    def follow() -> None:
        try:
            for event in watch:
                watched.append(event)
                emit(
                    "event",
                    revision=event.revision,
                    type=job_pb2.JobEventType.Name(event.type),
                    to_state=job_pb2.JobState.Name(event.to_state),
                    actor=event.actor.name or f"user {event.actor.user_id}",
                )
                if event.to_state == job_pb2.JOB_STATE_PENDING_CANCELLATION:
                    why.setdefault("stop", "cancel")
                    why.setdefault("seen_via", "watch")
                    stop.set()
                elif event.to_state in TERMINAL_STATES and not reporting.is_set():
                    # Finished by someone else (another caller, or the reaper).
                    why.setdefault("stop", "finished_elsewhere")
                    stop.set()
        except BaseException as error:  # reported by the main thread
            watch_error.append(error)
            stop.set()

    watcher = threading.Thread(target=follow, name=f"watch-{job_id}", daemon=True)
    watcher.start()

    outcome = "completed"
    done = 0
    try:
        while True:
            if stop.wait(heartbeat_interval):
                break
            try:
                beat = client.stub.HeartbeatJob(
                    api.HeartbeatJobRequest(job_id=job_id, executor_id=executor_id, attempt=attempt)
                )
            except grpc.RpcError as error:
                info = error_info(error)
                if info is not None and info.reason == "STALE_ATTEMPT":
                    emit("lost_lease", state=info.metadata.get("state", ""))
                    why["stop"] = "lost_lease"
                    break
                raise
            done += 1
            emit("heartbeat", state=job_pb2.JobState.Name(beat.job.state), step=done)
            if beat.job.state == job_pb2.JOB_STATE_PENDING_CANCELLATION:
                why.setdefault("stop", "cancel")
                why.setdefault("seen_via", "heartbeat")
                break
            if steps and done >= steps:
                break

        if watch_error:
            raise watch_error[0]
        reason = why.get("stop")
        reporting.set()
        if reason == "cancel":
            cancelled = client.stub.CancelJob(api.CancelJobRequest(job_id=job_id))
            emit("cancelled", seen_via=why["seen_via"], changed=cancelled.changed)
            outcome = "cancelled"
        elif reason in ("lost_lease", "finished_elsewhere"):
            outcome = reason
            watch.close()
        else:
            result = result_for(job)
            if result is None:
                failed = client.stub.FailJob(
                    api.FailJobRequest(
                        job_id=job_id,
                        attempt=attempt,
                        message=f"this executor does not handle {job_pb2.JobType.Name(job.type)}",
                    )
                )
                emit("failed", changed=failed.changed)
                outcome = "failed"
            else:
                completed = client.stub.CompleteJob(
                    api.CompleteJobRequest(job_id=job_id, attempt=attempt, result=result)
                )
                emit("completed", changed=completed.changed, steps=done)
        # The watch ends by itself after the final event (ours, or someone else's).
        watcher.join(timeout=60)
        if watcher.is_alive():
            watch.close()
            raise RuntimeError("the watch did not end after the job finished")
        if watch_error:
            raise watch_error[0]
        emit("watch_ended", revisions=[e.revision for e in watched], reconnects=watch.reconnects)
        return outcome
    finally:
        watch.close()


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default=os.environ.get("JOBS_SERVER", "127.0.0.1:50051"))
    parser.add_argument("--token", default=os.environ.get("JOBS_TOKEN"))
    parser.add_argument("--job-id", required=True)
    parser.add_argument("--executor-id", required=True)
    parser.add_argument("--steps", type=int, default=3, help="heartbeats of work; 0 = until cancelled")
    parser.add_argument("--heartbeat-interval", type=float, default=2.0)
    parser.add_argument("--lease-seconds", type=int, default=30)
    args = parser.parse_args(argv)
    if not args.token:
        parser.error("no token: pass --token or set JOBS_TOKEN")

    # The watch thread and the main thread both report; print() writes the text
    # and the newline separately, so unguarded lines could interleave.
    emitting = threading.Lock()

    def emit(what: str, **fields: Any) -> None:
        line = json.dumps({"event": what, **fields}) + "\n"
        with emitting:
            sys.stdout.write(line)
            sys.stdout.flush()

    with JobsClient(args.server, args.token) as client:
        try:
            outcome = run_executor(
                client,
                args.job_id,
                args.executor_id,
                steps=args.steps,
                heartbeat_interval=args.heartbeat_interval,
                lease_seconds=args.lease_seconds,
                emit=emit,
            )
        except grpc.RpcError as error:
            info = error_info(error)
            emit(
                "error",
                code=error.code().name,
                message=error.details(),
                reason=info.reason if info else None,
            )
            return 1
    return {"not_ours": 3, "lost_lease": 4}.get(outcome, 0)


if __name__ == "__main__":
    sys.exit(main())
