// Command executor is an example executor: it claims one job, works on it,
// and reports the outcome.
//
//	go run ./examples/executor -server 127.0.0.1:50051 -token "$JOBS_TOKEN" \
//	    -job-id 6f0c… -executor-id worker-1 [-steps 5] [-heartbeat-interval 2s]
//
// What it does:
//
//  1. RunJob claims the job (PENDING, or FAILED to retry it). If another
//     executor already runs it, stop (RunJob on a RUNNING job is a no-op
//     whoever asks: compare the returned executor_id with ours).
//  2. WatchJob follows the job from the revision RunJob returned, resuming
//     after disconnects (jobsclient.Watch). A CANCELLATION_REQUESTED event
//     (to_state PENDING_CANCELLATION) tells us to stop.
//  3. While working, HeartbeatJob(job_id, executor_id, attempt) every
//     -heartbeat-interval keeps the lease alive. Its reply also says the
//     job's state, a second way to learn of a cancellation request; a
//     STALE_ATTEMPT error means the lease was lost and the job is not ours.
//  4. Done: CompleteJob with the attempt (a late report of a superseded
//     attempt is rejected). Cancelled: CancelJob acknowledges the request.
//     Either way the watch then sees the final event and ends by itself.
//
// The work is simulated: one step per heartbeat interval, -steps steps (0:
// until cancelled). It prints one JSON object per line (claimed, heartbeat,
// event, completed, cancelled, …). Exit codes: 0 completed or cancelled,
// 1 error, 3 the job is someone else's, 4 the lease was lost.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"sync"
	"time"

	"google.golang.org/grpc/status"

	jobsv1 "github.com/jobs-platform/jobs/clients/go/gen/jobs/v1"
	"github.com/jobs-platform/jobs/clients/go/jobsclient"
)

// Outcome is how a run ended.
type Outcome string

const (
	Completed         Outcome = "completed"
	Failed            Outcome = "failed"
	Cancelled         Outcome = "cancelled"
	NotOurs           Outcome = "not_ours"
	LostLease         Outcome = "lost_lease"
	FinishedElsewhere Outcome = "finished_elsewhere"
)

// Config says which job to run and how.
type Config struct {
	JobID             string
	ExecutorID        string
	Steps             int // heartbeats of work; 0: until cancelled
	HeartbeatInterval time.Duration
	LeaseSeconds      int32
	// Emit reports progress: what happened and its details.
	Emit func(what string, fields map[string]any)
}

// resultFor is the result variant of the job's type (made up: the work is
// simulated), or nil for a type this executor does not handle.
func resultFor(job *jobsv1.Job) *jobsv1.JobResult {
	switch job.GetType() {
	case jobsv1.JobType_JOB_TYPE_FORECAST:
		return &jobsv1.JobResult{Kind: &jobsv1.JobResult_Forecast{Forecast: &jobsv1.ForecastResult{Cost: 42, Rows: 1000}}}
	case jobsv1.JobType_JOB_TYPE_HEALTH_CHECK:
		return &jobsv1.JobResult{Kind: &jobsv1.JobResult_HealthCheck{HealthCheck: &jobsv1.HealthCheckResult{Healthy: true, Checks: map[string]string{"ping": "ok"}}}}
	}
	return nil
}

func isTerminal(s jobsv1.JobState) bool {
	return s == jobsv1.JobState_JOB_STATE_COMPLETED || s == jobsv1.JobState_JOB_STATE_FAILED || s == jobsv1.JobState_JOB_STATE_CANCELLED
}

// Run runs one job to its end.
func Run(ctx context.Context, c *jobsclient.Client, cfg Config) (Outcome, error) {
	emit := cfg.Emit
	if emit == nil {
		emit = func(string, map[string]any) {}
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = 2 * time.Second
	}
	run, err := c.RunJob(ctx, &jobsv1.RunJobRequest{JobId: cfg.JobID, ExecutorId: cfg.ExecutorID, LeaseSeconds: cfg.LeaseSeconds})
	if err != nil {
		return "", err
	}
	job := run.GetJob()
	if job.GetExecutorId() != cfg.ExecutorID || job.GetState() != jobsv1.JobState_JOB_STATE_RUNNING {
		emit("not_ours", map[string]any{"executor_id": job.GetExecutorId(), "state": job.GetState().String()})
		return NotOurs, nil
	}
	attempt := job.GetAttempt()
	emit("claimed", map[string]any{"attempt": attempt, "revision": job.GetRevision(), "changed": run.GetChanged()})

	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	watch := c.WatchJob(watchCtx, cfg.JobID, jobsclient.WatchOptions{AfterRevision: job.GetRevision()})

	var (
		mu        sync.Mutex
		stopWhy   Outcome // Cancelled or FinishedElsewhere, set by the watcher
		seenVia   string
		reporting bool // we report the outcome ourselves from here on
		watched   []int64
		watchErr  error
	)
	stop := make(chan struct{})
	stopOnce := sync.Once{}
	signalStop := func(why Outcome, via string) {
		mu.Lock()
		if stopWhy == "" {
			stopWhy, seenVia = why, via
		}
		mu.Unlock()
		stopOnce.Do(func() { close(stop) })
	}
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		for event, err := range watch.Events() {
			if err != nil {
				mu.Lock()
				watchErr = err
				mu.Unlock()
				stopOnce.Do(func() { close(stop) })
				return
			}
			mu.Lock()
			watched = append(watched, event.GetRevision())
			ours := reporting
			mu.Unlock()
			emit("event", map[string]any{
				"revision": event.GetRevision(), "type": event.GetType().String(),
				"to_state": event.GetToState().String(), "actor": event.GetActor().GetName(),
			})
			switch {
			case event.GetToState() == jobsv1.JobState_JOB_STATE_PENDING_CANCELLATION:
				signalStop(Cancelled, "watch")
			case isTerminal(event.GetToState()) && !ours:
				signalStop(FinishedElsewhere, "watch") // another caller, or the reaper
			}
		}
	}()

	ticker := time.NewTicker(cfg.HeartbeatInterval)
	defer ticker.Stop()
	done := 0
	lost := false
work:
	for {
		select {
		case <-stop:
			break work
		case <-ctx.Done():
			return "", ctx.Err()
		case <-ticker.C:
		}
		beat, err := c.HeartbeatJob(ctx, &jobsv1.HeartbeatJobRequest{JobId: cfg.JobID, ExecutorId: cfg.ExecutorID, Attempt: attempt})
		if err != nil {
			if info := jobsclient.ErrorInfo(err); info != nil && info.GetReason() == "STALE_ATTEMPT" {
				emit("lost_lease", map[string]any{"state": info.GetMetadata()["state"]})
				lost = true
				break work
			}
			return "", err
		}
		done++
		emit("heartbeat", map[string]any{"state": beat.GetJob().GetState().String(), "step": done})
		if beat.GetJob().GetState() == jobsv1.JobState_JOB_STATE_PENDING_CANCELLATION {
			signalStop(Cancelled, "heartbeat")
			break work
		}
		if cfg.Steps > 0 && done >= cfg.Steps {
			break work
		}
	}

	mu.Lock()
	reporting = true
	why, via, werr := stopWhy, seenVia, watchErr
	mu.Unlock()
	if werr != nil {
		return "", fmt.Errorf("watch: %w", werr)
	}
	var outcome Outcome
	switch {
	case lost:
		stopWatch()
		return LostLease, nil
	case why == FinishedElsewhere:
		stopWatch()
		return FinishedElsewhere, nil
	case why == Cancelled:
		res, err := c.CancelJob(ctx, &jobsv1.CancelJobRequest{JobId: cfg.JobID})
		if err != nil {
			return "", err
		}
		emit("cancelled", map[string]any{"seen_via": via, "changed": res.GetChanged()})
		outcome = Cancelled
	default:
		result := resultFor(job)
		if result == nil {
			res, err := c.FailJob(ctx, &jobsv1.FailJobRequest{JobId: cfg.JobID, Attempt: attempt,
				Message: "this executor does not handle " + job.GetType().String()})
			if err != nil {
				return "", err
			}
			emit("failed", map[string]any{"changed": res.GetChanged()})
			outcome = Failed
		} else {
			res, err := c.CompleteJob(ctx, &jobsv1.CompleteJobRequest{JobId: cfg.JobID, Attempt: attempt, Result: result})
			if err != nil {
				return "", err
			}
			emit("completed", map[string]any{"changed": res.GetChanged(), "steps": done})
			outcome = Completed
		}
	}
	// The watch ends by itself after the final event.
	select {
	case <-watchDone:
	case <-time.After(60 * time.Second):
		return "", errors.New("the watch did not end after the job finished")
	}
	mu.Lock()
	defer mu.Unlock()
	if watchErr != nil {
		return "", fmt.Errorf("watch: %w", watchErr)
	}
	emit("watch_ended", map[string]any{"revisions": watched, "reconnects": watch.Reconnects()})
	return outcome, nil
}

func main() {
	server := flag.String("server", envOr("JOBS_SERVER", "127.0.0.1:50051"), "host:port of the jobs server")
	token := flag.String("token", os.Getenv("JOBS_TOKEN"), "bearer token (default $JOBS_TOKEN)")
	jobID := flag.String("job-id", "", "the job to run (required)")
	executorID := flag.String("executor-id", "", "this executor's id (required)")
	steps := flag.Int("steps", 3, "heartbeats of work; 0: until cancelled")
	interval := flag.Duration("heartbeat-interval", 2*time.Second, "time between heartbeats")
	lease := flag.Int("lease-seconds", 30, "lease asked for in RunJob")
	flag.Parse()
	if *jobID == "" || *executorID == "" || *token == "" {
		fmt.Fprintln(os.Stderr, "executor: -job-id, -executor-id and -token (or JOBS_TOKEN) are required")
		os.Exit(2)
	}
	out := json.NewEncoder(os.Stdout)
	emit := func(what string, fields map[string]any) {
		line := map[string]any{"event": what}
		for k, v := range fields {
			line[k] = v
		}
		_ = out.Encode(line)
	}
	client, err := jobsclient.New(*server, *token)
	if err != nil {
		fmt.Fprintln(os.Stderr, "executor:", err)
		os.Exit(1)
	}
	defer client.Close()
	outcome, err := Run(context.Background(), client, Config{
		JobID: *jobID, ExecutorID: *executorID, Steps: *steps,
		HeartbeatInterval: *interval, LeaseSeconds: int32(*lease), Emit: emit,
	})
	if err != nil {
		st, _ := status.FromError(err)
		emit("error", map[string]any{"code": st.Code().String(), "message": st.Message(), "reason": jobsclient.Reason(err)})
		os.Exit(1)
	}
	switch outcome {
	case NotOurs:
		os.Exit(3)
	case LostLease:
		os.Exit(4)
	}
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}
