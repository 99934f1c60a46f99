package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	jobsv1 "github.com/jobs-platform/jobs/clients/go/gen/jobs/v1"
	"github.com/jobs-platform/jobs/clients/go/internal/livetest"
	"github.com/jobs-platform/jobs/clients/go/jobsclient"
)

// One live server (`jobsctl serve`) and two service tokens for this package.
var (
	server                        *livetest.Server
	executorToken, schedulerToken string
)

func TestMain(m *testing.M) {
	os.Exit(func() int {
		var err error
		if server, err = livetest.Start(0); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer func() {
			if code, err := server.Stop(); err != nil || code != 0 {
				fmt.Fprintf(os.Stderr, "server stopped with %d, %v:\n%s\n", code, err, server.Output())
			}
		}()
		if executorToken, err = livetest.CreateToken("go-executor"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if schedulerToken, err = livetest.CreateToken("go-scheduler"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return m.Run()
	}())
}

func connect(t *testing.T, token string) *jobsclient.Client {
	t.Helper()
	c, err := jobsclient.New(server.Addr(), token)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// recorder collects what the executor emits.
type recorder struct {
	mu      sync.Mutex
	lines   []map[string]any
	claimed chan struct{}
	once    sync.Once
}

func newRecorder() *recorder { return &recorder{claimed: make(chan struct{})} }

func (r *recorder) emit(what string, fields map[string]any) {
	r.mu.Lock()
	line := map[string]any{"event": what}
	for k, v := range fields {
		line[k] = v
	}
	r.lines = append(r.lines, line)
	r.mu.Unlock()
	if what == "claimed" {
		r.once.Do(func() { close(r.claimed) })
	}
}

func (r *recorder) all(what string) []map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []map[string]any
	for _, l := range r.lines {
		if l["event"] == what {
			out = append(out, l)
		}
	}
	return out
}

func createJob(t *testing.T, c *jobsclient.Client) *jobsv1.Job {
	t.Helper()
	res, err := c.CreateJob(context.Background(), &jobsv1.CreateJobRequest{
		Type:      jobsv1.JobType_JOB_TYPE_FORECAST,
		CompanyId: 7,
		Input:     &jobsv1.JobInput{Kind: &jobsv1.JobInput_Forecast{Forecast: &jobsv1.ForecastInput{Nql: "select 1"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return res.GetJob()
}

func eventTypes(t *testing.T, c *jobsclient.Client, jobID string) ([]string, []string) {
	t.Helper()
	res, err := c.ListJobEvents(context.Background(), &jobsv1.ListJobEventsRequest{JobId: jobID})
	if err != nil {
		t.Fatal(err)
	}
	var types, actors []string
	for _, e := range res.GetEvents() {
		types = append(types, e.GetType().String())
		actors = append(actors, e.GetActor().GetName())
	}
	return types, actors
}

func TestExecutorClaimsHeartbeatsAndCompletes(t *testing.T) {
	scheduler, executor := connect(t, schedulerToken), connect(t, executorToken)
	job := createJob(t, scheduler)
	rec := newRecorder()
	outcome, err := Run(context.Background(), executor, Config{
		JobID: job.GetId(), ExecutorID: "go-worker-1", Steps: 3,
		HeartbeatInterval: 200 * time.Millisecond, LeaseSeconds: 30, Emit: rec.emit,
	})
	if err != nil || outcome != Completed {
		t.Fatalf("Run = %q, %v; emitted %v", outcome, err, rec.lines)
	}
	if c := rec.all("claimed"); len(c) != 1 || c[0]["attempt"] != int64(1) || c[0]["changed"] != true {
		t.Errorf("claimed = %v", c)
	}
	beats := rec.all("heartbeat")
	if len(beats) != 3 {
		t.Errorf("heartbeats = %v, want 3", beats)
	}
	for i, b := range beats {
		if b["step"] != i+1 || b["state"] != "JOB_STATE_RUNNING" {
			t.Errorf("heartbeat %d = %v", i, b)
		}
	}
	if c := rec.all("completed"); len(c) != 1 || c[0]["changed"] != true {
		t.Errorf("completed = %v", c)
	}
	// The executor's watch started after STARTED and saw exactly the completion.
	if w := rec.all("watch_ended"); len(w) != 1 || !slices.Equal(w[0]["revisions"].([]int64), []int64{3}) {
		t.Errorf("watch_ended = %v", w)
	}

	got, err := scheduler.GetJob(context.Background(), &jobsv1.GetJobRequest{JobId: job.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if j := got.GetJob(); j.GetState() != jobsv1.JobState_JOB_STATE_COMPLETED || j.GetExecutorId() != "go-worker-1" ||
		j.GetResult().GetForecast().GetCost() != 42 {
		t.Errorf("job = %v", j)
	}
	types, _ := eventTypes(t, scheduler, job.GetId())
	if want := []string{"JOB_EVENT_TYPE_CREATED", "JOB_EVENT_TYPE_STARTED", "JOB_EVENT_TYPE_COMPLETED"}; !slices.Equal(types, want) {
		t.Errorf("events = %v, want %v", types, want)
	}
}

func TestExecutorAcknowledgesACancellationRequestedBySomeoneElse(t *testing.T) {
	scheduler, executor := connect(t, schedulerToken), connect(t, executorToken)
	job := createJob(t, scheduler)
	rec := newRecorder()
	type result struct {
		outcome Outcome
		err     error
	}
	finished := make(chan result, 1)
	go func() {
		outcome, err := Run(context.Background(), executor, Config{
			JobID: job.GetId(), ExecutorID: "go-worker-2", Steps: 0, // works until cancelled
			HeartbeatInterval: 200 * time.Millisecond, LeaseSeconds: 30, Emit: rec.emit,
		})
		finished <- result{outcome, err}
	}()
	select {
	case <-rec.claimed:
	case r := <-finished:
		t.Fatalf("executor ended before claiming: %v", r)
	case <-time.After(30 * time.Second):
		t.Fatal("executor did not claim the job")
	}

	req, err := scheduler.RequestJobCancellation(context.Background(),
		&jobsv1.RequestJobCancellationRequest{JobId: job.GetId(), Reason: "no longer needed"})
	if err != nil {
		t.Fatal(err)
	}
	if !req.GetChanged() || req.GetJob().GetState() != jobsv1.JobState_JOB_STATE_PENDING_CANCELLATION {
		t.Fatalf("RequestJobCancellation = %v", req)
	}
	var r result
	select {
	case r = <-finished:
	case <-time.After(60 * time.Second):
		t.Fatalf("executor did not stop; emitted %v", rec.lines)
	}
	if r.err != nil || r.outcome != Cancelled {
		t.Fatalf("Run = %q, %v; emitted %v", r.outcome, r.err, rec.lines)
	}
	if c := rec.all("cancelled"); len(c) != 1 || c[0]["changed"] != true {
		t.Errorf("cancelled = %v", c)
	}
	// The executor's watch delivered the request (by the scheduler), then its own CancelJob.
	var watched []string
	for _, e := range rec.all("event") {
		watched = append(watched, fmt.Sprint(e["type"], " by ", e["actor"]))
	}
	if want := []string{"JOB_EVENT_TYPE_CANCELLATION_REQUESTED by go-scheduler", "JOB_EVENT_TYPE_CANCELLED by go-executor"}; !slices.Equal(watched, want) {
		t.Errorf("watched %v, want %v", watched, want)
	}

	got, err := scheduler.GetJob(context.Background(), &jobsv1.GetJobRequest{JobId: job.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetJob().GetState() != jobsv1.JobState_JOB_STATE_CANCELLED || got.GetJob().GetCancellationReason() != "no longer needed" {
		t.Errorf("job = %v", got.GetJob())
	}
	types, actors := eventTypes(t, scheduler, job.GetId())
	if want := []string{"JOB_EVENT_TYPE_CREATED", "JOB_EVENT_TYPE_STARTED", "JOB_EVENT_TYPE_CANCELLATION_REQUESTED", "JOB_EVENT_TYPE_CANCELLED"}; !slices.Equal(types, want) {
		t.Errorf("events = %v, want %v", types, want)
	}
	if want := []string{"go-executor", "go-scheduler", "go-executor"}; len(actors) != 4 || !slices.Equal(actors[1:], want) {
		t.Errorf("actors = %v, want [go-scheduler… then %v]", actors, want)
	}
}

func TestASecondExecutorDoesNotTakeARunningJob(t *testing.T) {
	scheduler, executor := connect(t, schedulerToken), connect(t, executorToken)
	job := createJob(t, scheduler)
	if _, err := executor.RunJob(context.Background(), &jobsv1.RunJobRequest{JobId: job.GetId(), ExecutorId: "go-worker-3"}); err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	outcome, err := Run(context.Background(), executor, Config{JobID: job.GetId(), ExecutorID: "go-worker-4", Steps: 1, Emit: rec.emit})
	if err != nil || outcome != NotOurs {
		t.Fatalf("Run = %q, %v", outcome, err)
	}
	if n := rec.all("not_ours"); len(n) != 1 || n[0]["executor_id"] != "go-worker-3" || n[0]["state"] != "JOB_STATE_RUNNING" {
		t.Errorf("not_ours = %v", n)
	}
}

func TestErrorsCarryErrorInfoAndTheTokenIsRequired(t *testing.T) {
	c := connect(t, schedulerToken)
	missing := "00000000-0000-4000-8000-000000000000"
	_, err := c.GetJob(context.Background(), &jobsv1.GetJobRequest{JobId: missing})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("GetJob of a missing job: %v", err)
	}
	info := jobsclient.ErrorInfo(err)
	if info == nil || info.GetDomain() != "jobs.v1" || info.GetReason() != "JOB_NOT_FOUND" || info.GetMetadata()["job_id"] != missing {
		t.Errorf("ErrorInfo = %v", info)
	}

	job := createJob(t, c)
	_, err = c.CancelJob(context.Background(), &jobsv1.CancelJobRequest{JobId: job.GetId()})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("CancelJob of a PENDING job: %v", err)
	}
	if info := jobsclient.ErrorInfo(err); info == nil || info.GetReason() != "INVALID_TRANSITION" || info.GetMetadata()["state"] != "JOB_STATE_PENDING" {
		t.Errorf("ErrorInfo = %v", info)
	}

	stranger := connect(t, "not-a-token")
	_, err = stranger.GetJob(context.Background(), &jobsv1.GetJobRequest{JobId: job.GetId()})
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("GetJob with a bad token: %v", err)
	}
	if info := jobsclient.ErrorInfo(err); info == nil || info.GetDomain() != "jobs.v1" {
		t.Errorf("ErrorInfo = %v", info)
	}
}
