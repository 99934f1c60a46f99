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

// watchRig is a server the watcher talks to (the test stops or kills it and
// starts it again), a replica on the same database that takes the writes,
// also while the first is down, a client on each, and one job.
type watchRig struct {
	watched        *livetest.Server
	writer, reader *jobsclient.Client
	ctx            context.Context
	jobID          string
}

func newWatchRig(t *testing.T, tokenName string) *watchRig {
	t.Helper()
	watched := livetest.StartT(t, 0)
	replica := livetest.StartT(t, 0)
	token, err := livetest.CreateToken(tokenName)
	if err != nil {
		t.Fatal(err)
	}
	writer, err := jobsclient.New(replica.Addr(), token)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { writer.Close() })
	reader, err := jobsclient.New(watched.Addr(), token)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reader.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	created, err := writer.CreateJob(ctx, &jobsv1.CreateJobRequest{Type: jobsv1.JobType_JOB_TYPE_HEALTH_CHECK, CompanyId: 7})
	if err != nil {
		t.Fatal(err)
	}
	return &watchRig{watched: watched, writer: writer, reader: reader, ctx: ctx, jobID: created.GetJob().GetId()}
}

// collector gathers what a watch delivers, from the goroutine that ranges over it.
type collector struct {
	mu         sync.Mutex
	seen       []*jobsv1.JobEvent
	reconnects []reconnect
	heartbeats []int64
	err        error
	done       chan struct{}
}

// watch starts watching the rig's job from the reader, with a quick backoff.
func (r *watchRig) watch() (*jobsclient.JobWatch, *collector) {
	c := &collector{done: make(chan struct{})}
	w := r.reader.WatchJob(r.ctx, r.jobID, jobsclient.WatchOptions{
		Backoff: jobsclient.Backoff{Initial: 50 * time.Millisecond, Max: 500 * time.Millisecond},
		OnReconnect: func(after int64, err error) {
			c.mu.Lock()
			c.reconnects = append(c.reconnects, reconnect{after, status.Code(err)})
			c.mu.Unlock()
		},
		OnHeartbeat: func(h *jobsv1.Heartbeat) {
			c.mu.Lock()
			c.heartbeats = append(c.heartbeats, h.GetRevision())
			c.mu.Unlock()
		},
	})
	go func() {
		defer close(c.done)
		for event, err := range w.Events() {
			c.mu.Lock()
			if err != nil {
				c.err = err
			} else {
				c.seen = append(c.seen, event)
			}
			c.mu.Unlock()
		}
	}()
	return w, c
}

func (c *collector) count() int { c.mu.Lock(); defer c.mu.Unlock(); return len(c.seen) }

// finished waits for the watch to end by itself and returns the revisions it delivered.
func (c *collector) finished(t *testing.T, what string) []int64 {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("the watch did not end after %s", what)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		t.Fatalf("watch error: %v", c.err)
	}
	var revisions []int64
	for _, e := range c.seen {
		revisions = append(revisions, e.GetRevision())
	}
	return revisions
}

// SIGTERM ends the stream with UNAVAILABLE; the watch retries with backoff
// until the server is back on the same port and database, then resumes after
// the last revision it delivered. A change made while the server was down
// (through another replica) is replayed; nothing is lost or repeated.
func TestWatchResumesFromTheLastRevisionAfterAServerRestart(t *testing.T) {
	rig := newWatchRig(t, "go-watch-test")
	ctx, jobID := rig.ctx, rig.jobID
	watch, c := rig.watch()

	livetest.WaitUntil(t, "the CREATED event", func() bool { return c.count() >= 1 })
	if _, err := rig.writer.RunJob(ctx, &jobsv1.RunJobRequest{JobId: jobID, ExecutorId: "go-worker"}); err != nil {
		t.Fatal(err)
	}
	livetest.WaitUntil(t, "the STARTED event, live", func() bool { return c.count() >= 2 })
	livetest.WaitUntil(t, "a heartbeat with the latest revision", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return slices.Contains(c.heartbeats, 2)
	})

	if code, err := rig.watched.Stop(); err != nil || code != 0 { // SIGTERM: drain, exit 0
		t.Fatalf("server exit %d, %v:\n%s", code, err, rig.watched.Output())
	}
	// While the watcher's server is down, the job moves on elsewhere.
	if _, err := rig.writer.RequestJobCancellation(ctx, &jobsv1.RequestJobCancellationRequest{JobId: jobID, Reason: "restart test"}); err != nil {
		t.Fatal(err)
	}
	if n := c.count(); n != 2 {
		t.Fatalf("saw %d events while the server was down", n)
	}
	if err := rig.watched.Start(); err != nil { // same port, same database
		t.Fatal(err)
	}
	livetest.WaitUntil(t, "the event missed while down, replayed", func() bool { return c.count() >= 3 })
	if _, err := rig.writer.CancelJob(ctx, &jobsv1.CancelJobRequest{JobId: jobID}); err != nil {
		t.Fatal(err)
	}
	revisions := c.finished(t, "CANCELLED")

	c.mu.Lock()
	defer c.mu.Unlock()
	var types []string
	for _, e := range c.seen {
		types = append(types, e.GetType().String())
	}
	if want := []int64{1, 2, 3, 4}; !slices.Equal(revisions, want) {
		t.Errorf("revisions %v, want %v", revisions, want)
	}
	if want := []string{"JOB_EVENT_TYPE_CREATED", "JOB_EVENT_TYPE_STARTED", "JOB_EVENT_TYPE_CANCELLATION_REQUESTED", "JOB_EVENT_TYPE_CANCELLED"}; !slices.Equal(types, want) {
		t.Errorf("types %v, want %v", types, want)
	}
	if len(c.seen) == 4 && c.seen[3].GetJob().GetState() != jobsv1.JobState_JOB_STATE_CANCELLED {
		t.Errorf("last event's job = %v", c.seen[3].GetJob())
	}
	// The drain ended the stream with UNAVAILABLE; every retry resumed after revision 2.
	if len(c.reconnects) == 0 || c.reconnects[0] != (reconnect{2, codes.Unavailable}) {
		t.Fatalf("reconnects = %v", c.reconnects)
	}
	for _, r := range c.reconnects {
		if r.after != 2 {
			t.Errorf("a reconnect resumed after %d, want 2: %v", r.after, c.reconnects)
		}
	}
	if watch.Reconnects() != int64(len(c.reconnects)) || watch.LastRevision() != 4 {
		t.Errorf("Reconnects() = %d, LastRevision() = %d", watch.Reconnects(), watch.LastRevision())
	}
}

// oneJob starts a server, connects to it, and creates a job that nobody runs.
func oneJob(t *testing.T, tokenName string) (*jobsclient.Client, string) {
	t.Helper()
	server := livetest.StartT(t, 0)
	token, err := livetest.CreateToken(tokenName)
	if err != nil {
		t.Fatal(err)
	}
	c, err := jobsclient.New(server.Addr(), token)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	created, err := c.CreateJob(context.Background(), &jobsv1.CreateJobRequest{Type: jobsv1.JobType_JOB_TYPE_HEALTH_CHECK, CompanyId: 7})
	if err != nil {
		t.Fatal(err)
	}
	return c, created.GetJob().GetId()
}

func TestWatchReportsErrorsOtherThanUnavailable(t *testing.T) {
	c, jobID := oneJob(t, "go-watcher")
	// after_revision beyond the job's revision is OUT_OF_RANGE: not retried, yielded once.
	var errs []error
	for event, err := range c.WatchJob(context.Background(), jobID, jobsclient.WatchOptions{AfterRevision: 5}).Events() {
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
	rig := newWatchRig(t, "go-watch-kill")
	ctx, jobID := rig.ctx, rig.jobID
	_, c := rig.watch()

	livetest.WaitUntil(t, "the CREATED event", func() bool { return c.count() >= 1 })
	if _, err := rig.writer.RunJob(ctx, &jobsv1.RunJobRequest{JobId: jobID, ExecutorId: "go-worker"}); err != nil {
		t.Fatal(err)
	}
	livetest.WaitUntil(t, "the STARTED event, live", func() bool { return c.count() >= 2 })

	rig.watched.Kill() // SIGKILL
	result := &jobsv1.JobResult{Kind: &jobsv1.JobResult_HealthCheck{HealthCheck: &jobsv1.HealthCheckResult{Healthy: true}}}
	if _, err := rig.writer.CompleteJob(ctx, &jobsv1.CompleteJobRequest{JobId: jobID, Result: result}); err != nil {
		t.Fatal(err)
	}
	livetest.WaitUntil(t, "the watch to try again", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.reconnects) > 0 || c.err != nil
	})
	if err := rig.watched.Start(); err != nil { // same port, same database
		t.Fatal(err)
	}
	if revisions, want := c.finished(t, "COMPLETED"), []int64{1, 2, 3}; !slices.Equal(revisions, want) {
		t.Errorf("revisions %v, want %v", revisions, want)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range c.reconnects {
		if r.after != 2 {
			t.Errorf("a reconnect resumed after %d, want 2: %v", r.after, c.reconnects)
		}
	}
}

// A context deadline is the watch's deadline: it ends the watch with the
// context's error, whether a stream is open then or it waits to reconnect.
func TestWatchEndsAtTheContextDeadline(t *testing.T) {
	c, jobID := oneJob(t, "go-watch-deadline")
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	var revisions []int64
	var errs []error
	for event, err := range c.WatchJob(ctx, jobID, jobsclient.WatchOptions{}).Events() {
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
