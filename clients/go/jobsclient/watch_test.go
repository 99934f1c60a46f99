package jobsclient_test

import (
	"context"
	"errors"
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

type reconnect struct {
	after int64
	code  codes.Code
}

// SIGTERM ends the stream with UNAVAILABLE; the watch retries with backoff
// until the server is back on the same port and database, then resumes after
// the last revision it delivered. A change made while the server was down
// (through another replica) is replayed; nothing is lost or repeated.
func TestWatchResumesFromTheLastRevisionAfterAServerRestart(t *testing.T) {
	watched := livetest.StartT(t, 0) // the server the watcher talks to; restarted below
	replica := livetest.StartT(t, 0) // same database: takes the writes, also while watched is down
	token, err := livetest.CreateToken("go-watch-test")
	if err != nil {
		t.Fatal(err)
	}
	writer, err := jobsclient.New(replica.Addr(), token)
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	reader, err := jobsclient.New(watched.Addr(), token)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	created, err := writer.CreateJob(ctx, &jobsv1.CreateJobRequest{Type: jobsv1.JobType_JOB_TYPE_HEALTH_CHECK, CompanyId: 7})
	if err != nil {
		t.Fatal(err)
	}
	jobID := created.GetJob().GetId()

	var (
		mu         sync.Mutex
		seen       []*jobsv1.JobEvent
		reconnects []reconnect
		heartbeats []int64
		watchErr   error
	)
	watch := reader.WatchJob(ctx, jobID, jobsclient.WatchOptions{
		Backoff: jobsclient.Backoff{Initial: 50 * time.Millisecond, Max: 500 * time.Millisecond},
		OnReconnect: func(after int64, err error) {
			mu.Lock()
			reconnects = append(reconnects, reconnect{after, status.Code(err)})
			mu.Unlock()
		},
		OnHeartbeat: func(h *jobsv1.Heartbeat) {
			mu.Lock()
			heartbeats = append(heartbeats, h.GetRevision())
			mu.Unlock()
		},
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for event, err := range watch.Events() {
			mu.Lock()
			if err != nil {
				watchErr = err
			} else {
				seen = append(seen, event)
			}
			mu.Unlock()
		}
	}()
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(seen) }

	livetest.WaitUntil(t, "the CREATED event", func() bool { return count() >= 1 })
	if _, err := writer.RunJob(ctx, &jobsv1.RunJobRequest{JobId: jobID, ExecutorId: "go-worker"}); err != nil {
		t.Fatal(err)
	}
	livetest.WaitUntil(t, "the STARTED event, live", func() bool { return count() >= 2 })
	livetest.WaitUntil(t, "a heartbeat with the latest revision", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(heartbeats, 2)
	})

	if code, err := watched.Stop(); err != nil || code != 0 { // SIGTERM: drain, exit 0
		t.Fatalf("server exit %d, %v:\n%s", code, err, watched.Output())
	}
	// While the watcher's server is down, the job moves on elsewhere.
	if _, err := writer.RequestJobCancellation(ctx, &jobsv1.RequestJobCancellationRequest{JobId: jobID, Reason: "restart test"}); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 2 {
		t.Fatalf("saw %d events while the server was down", n)
	}
	if err := watched.Start(); err != nil { // same port, same database
		t.Fatal(err)
	}
	livetest.WaitUntil(t, "the event missed while down, replayed", func() bool { return count() >= 3 })
	if _, err := writer.CancelJob(ctx, &jobsv1.CancelJobRequest{JobId: jobID}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the watch did not end after CANCELLED")
	}

	mu.Lock()
	defer mu.Unlock()
	if watchErr != nil {
		t.Fatalf("watch error: %v", watchErr)
	}
	var revisions []int64
	var types []string
	for _, e := range seen {
		revisions = append(revisions, e.GetRevision())
		types = append(types, e.GetType().String())
	}
	if want := []int64{1, 2, 3, 4}; !slices.Equal(revisions, want) {
		t.Errorf("revisions %v, want %v", revisions, want)
	}
	if want := []string{"JOB_EVENT_TYPE_CREATED", "JOB_EVENT_TYPE_STARTED", "JOB_EVENT_TYPE_CANCELLATION_REQUESTED", "JOB_EVENT_TYPE_CANCELLED"}; !slices.Equal(types, want) {
		t.Errorf("types %v, want %v", types, want)
	}
	if len(seen) == 4 && seen[3].GetJob().GetState() != jobsv1.JobState_JOB_STATE_CANCELLED {
		t.Errorf("last event's job = %v", seen[3].GetJob())
	}
	// The drain ended the stream with UNAVAILABLE; every retry resumed after revision 2.
	if len(reconnects) == 0 || reconnects[0] != (reconnect{2, codes.Unavailable}) {
		t.Fatalf("reconnects = %v", reconnects)
	}
	for _, r := range reconnects {
		if r.after != 2 {
			t.Errorf("a reconnect resumed after %d, want 2: %v", r.after, reconnects)
		}
	}
	if watch.Reconnects() != int64(len(reconnects)) || watch.LastRevision() != 4 {
		t.Errorf("Reconnects() = %d, LastRevision() = %d", watch.Reconnects(), watch.LastRevision())
	}
}

func TestWatchReportsErrorsOtherThanUnavailable(t *testing.T) {
	server := livetest.StartT(t, 0)
	token, err := livetest.CreateToken("go-watcher")
	if err != nil {
		t.Fatal(err)
	}
	c, err := jobsclient.New(server.Addr(), token)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	created, err := c.CreateJob(ctx, &jobsv1.CreateJobRequest{Type: jobsv1.JobType_JOB_TYPE_HEALTH_CHECK, CompanyId: 7})
	if err != nil {
		t.Fatal(err)
	}
	// after_revision beyond the job's revision is OUT_OF_RANGE: not retried, yielded once.
	var errs []error
	for event, err := range c.WatchJob(ctx, created.GetJob().GetId(), jobsclient.WatchOptions{AfterRevision: 5}).Events() {
		if event != nil {
			t.Errorf("unexpected event %v", event)
		}
		errs = append(errs, err)
	}
	if len(errs) != 1 || status.Code(errs[0]) != codes.OutOfRange || jobsclient.Reason(errs[0]) == "" {
		t.Errorf("errors = %v", errs)
	}
}

// SIGKILL: no drain, no UNAVAILABLE from the server; the connection just
// breaks. The watch resumes all the same once the server is back on the same
// port and database, delivers every revision once and in order, and ends by
// itself when the job finishes.
func TestWatchResumesAfterTheServerIsKilled(t *testing.T) {
	watched := livetest.StartT(t, 0)
	replica := livetest.StartT(t, 0) // same database: takes the writes, also while watched is down
	token, err := livetest.CreateToken("go-watch-kill")
	if err != nil {
		t.Fatal(err)
	}
	writer, err := jobsclient.New(replica.Addr(), token)
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	reader, err := jobsclient.New(watched.Addr(), token)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	created, err := writer.CreateJob(ctx, &jobsv1.CreateJobRequest{Type: jobsv1.JobType_JOB_TYPE_HEALTH_CHECK, CompanyId: 7})
	if err != nil {
		t.Fatal(err)
	}
	jobID := created.GetJob().GetId()
	var (
		mu         sync.Mutex
		seen       []int64
		reconnects []int64
		watchErr   error
	)
	watch := reader.WatchJob(ctx, jobID, jobsclient.WatchOptions{
		Backoff: jobsclient.Backoff{Initial: 50 * time.Millisecond, Max: 500 * time.Millisecond},
		OnReconnect: func(after int64, err error) {
			mu.Lock()
			reconnects = append(reconnects, after)
			mu.Unlock()
		},
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for event, err := range watch.Events() {
			mu.Lock()
			if err != nil {
				watchErr = err
			} else {
				seen = append(seen, event.GetRevision())
			}
			mu.Unlock()
		}
	}()
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(seen) }

	livetest.WaitUntil(t, "the CREATED event", func() bool { return count() >= 1 })
	if _, err := writer.RunJob(ctx, &jobsv1.RunJobRequest{JobId: jobID, ExecutorId: "go-worker"}); err != nil {
		t.Fatal(err)
	}
	livetest.WaitUntil(t, "the STARTED event, live", func() bool { return count() >= 2 })

	watched.Kill() // SIGKILL
	result := &jobsv1.JobResult{Kind: &jobsv1.JobResult_HealthCheck{HealthCheck: &jobsv1.HealthCheckResult{Healthy: true}}}
	if _, err := writer.CompleteJob(ctx, &jobsv1.CompleteJobRequest{JobId: jobID, Result: result}); err != nil {
		t.Fatal(err)
	}
	livetest.WaitUntil(t, "the watch to try again", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(reconnects) > 0 || watchErr != nil
	})
	if err := watched.Start(); err != nil { // same port, same database
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the watch did not end after COMPLETED")
	}

	mu.Lock()
	defer mu.Unlock()
	if watchErr != nil {
		t.Fatalf("watch error: %v", watchErr)
	}
	if want := []int64{1, 2, 3}; !slices.Equal(seen, want) {
		t.Errorf("revisions %v, want %v", seen, want)
	}
	for _, after := range reconnects {
		if after != 2 {
			t.Errorf("a reconnect resumed after %d, want 2: %v", after, reconnects)
		}
	}
}

// A context deadline is the watch's deadline: it ends the watch with the
// context's error, whether a stream is open then or it waits to reconnect.
func TestWatchEndsAtTheContextDeadline(t *testing.T) {
	server := livetest.StartT(t, 0)
	token, err := livetest.CreateToken("go-watch-deadline")
	if err != nil {
		t.Fatal(err)
	}
	c, err := jobsclient.New(server.Addr(), token)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	created, err := c.CreateJob(context.Background(), &jobsv1.CreateJobRequest{Type: jobsv1.JobType_JOB_TYPE_HEALTH_CHECK, CompanyId: 7})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	var revisions []int64
	var errs []error
	for event, err := range c.WatchJob(ctx, created.GetJob().GetId(), jobsclient.WatchOptions{}).Events() {
		if err != nil {
			errs = append(errs, err)
		} else {
			revisions = append(revisions, event.GetRevision())
		}
	}
	// The job never finishes: only the deadline ends the watch (after the CREATED event, unless that took longer).
	if len(revisions) > 1 || (len(revisions) == 1 && revisions[0] != 1) || len(errs) != 1 || !errors.Is(errs[0], context.DeadlineExceeded) {
		t.Errorf("revisions %v, errors %v", revisions, errs)
	}
}
