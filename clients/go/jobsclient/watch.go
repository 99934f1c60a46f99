package jobsclient

import (
	"context"
	"errors"
	"io"
	"iter"
	"math"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	jobsv1 "github.com/jobs-platform/jobs/clients/go/gen/jobs/v1"
)

// Backoff is the wait between reconnects: Initial, times Multiplier after each
// failed attempt, at most Max, each varied by ±Jitter (a fraction). Any
// message received resets it. Zero fields take the defaults (200ms, ×2, 10s,
// 0.2).
type Backoff struct {
	Initial    time.Duration
	Max        time.Duration
	Multiplier float64
	Jitter     float64
}

func (b Backoff) delay(attempt int) time.Duration {
	if b.Initial <= 0 {
		b.Initial = 200 * time.Millisecond
	}
	if b.Max <= 0 {
		b.Max = 10 * time.Second
	}
	if b.Multiplier < 1 {
		b.Multiplier = 2
	}
	if b.Jitter < 0 || b.Jitter >= 1 {
		b.Jitter = 0.2
	}
	d := math.Min(float64(b.Max), float64(b.Initial)*math.Pow(b.Multiplier, float64(attempt-1)))
	return time.Duration(d * (1 + b.Jitter*(2*rand.Float64()-1)))
}

// WatchOptions tune Watch.
type WatchOptions struct {
	// AfterRevision: start after this revision (0 replays the whole history).
	AfterRevision int64
	Backoff       Backoff
	// MaxAttempts: give up after this many failed attempts in a row (0: keep
	// trying until the context ends).
	MaxAttempts int
	// OnReconnect is called before each reconnect with the revision the watch
	// resumes after and the error that ended the previous attempt.
	OnReconnect func(afterRevision int64, err error)
	// OnHeartbeat sees the heartbeats the server sends on idle streams.
	OnHeartbeat func(*jobsv1.Heartbeat)
}

// JobWatch follows one job's events. Range over Events().
type JobWatch struct {
	client     jobsv1.JobServiceClient
	ctx        context.Context
	jobID      string
	opts       WatchOptions
	last       atomic.Int64
	reconnects atomic.Int64
}

// Watch follows one job's events, oldest first: those after
// opts.AfterRevision, then live ones. When the stream breaks without the
// server ending it (the server drains on SIGTERM, restarts or crashes, or the
// network drops: see BrokenStream) it waits (opts.Backoff) and calls WatchJob
// again with after_revision = the last revision it delivered, so the server
// replays exactly what was missed: no event is lost or repeated. Iteration
// ends when the server ends the stream with OK, i.e. after an event whose
// to_state is COMPLETED, FAILED or CANCELLED. The server's own refusals
// (NOT_FOUND, OUT_OF_RANGE, UNAUTHENTICATED…), the context's end (its
// deadline is the watch's), or MaxAttempts failures in a row are yielded once
// as the error, and iteration ends. Breaking out of the loop closes the stream.
func Watch(ctx context.Context, client jobsv1.JobServiceClient, jobID string, opts WatchOptions) *JobWatch {
	w := &JobWatch{client: client, ctx: ctx, jobID: jobID, opts: opts}
	w.last.Store(opts.AfterRevision)
	return w
}

// LastRevision is the revision of the last event delivered (or the start).
func (w *JobWatch) LastRevision() int64 { return w.last.Load() }

// Reconnects counts the reconnects so far.
func (w *JobWatch) Reconnects() int64 { return w.reconnects.Load() }

var errStopped = errors.New("stopped by the caller")

// Events yields the job's events; see Watch. Use it once.
func (w *JobWatch) Events() iter.Seq2[*jobsv1.JobEvent, error] {
	return func(yield func(*jobsv1.JobEvent, error) bool) {
		failures := 0
		for {
			err := w.attempt(yield, &failures)
			if errors.Is(err, io.EOF) || errors.Is(err, errStopped) {
				return // ended with OK (the job is finished), or the caller stopped
			}
			if w.ctx.Err() != nil {
				yield(nil, w.ctx.Err())
				return
			}
			if !BrokenStream(err) {
				yield(nil, err)
				return
			}
			failures++
			if w.opts.MaxAttempts > 0 && failures >= w.opts.MaxAttempts {
				yield(nil, err)
				return
			}
			timer := time.NewTimer(w.opts.Backoff.delay(failures))
			select {
			case <-w.ctx.Done():
				timer.Stop()
				yield(nil, w.ctx.Err())
				return
			case <-timer.C:
			}
			w.reconnects.Add(1)
			if w.opts.OnReconnect != nil {
				w.opts.OnReconnect(w.last.Load(), err)
			}
		}
	}
}

// BrokenStream reports whether a failed stream broke rather than being ended
// by the server: UNAVAILABLE (the server drains or restarts, the connection
// is refused or dropped), or a code grpc made up for a connection that went
// away (a reset stream is CANCELED or INTERNAL, a cut-off one UNKNOWN). Every
// error the jobs service itself sends carries an ErrorInfo, so one without
// it is the connection's.
func BrokenStream(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable:
		return true
	case codes.Canceled, codes.Unknown, codes.Internal, codes.Aborted:
		return ErrorInfo(err) == nil
	default:
		return false
	}
}

// attempt runs one WatchJob call; it returns io.EOF when the server ended the
// stream with OK.
func (w *JobWatch) attempt(yield func(*jobsv1.JobEvent, error) bool, failures *int) error {
	ctx, cancel := context.WithCancel(w.ctx)
	defer cancel()
	stream, err := w.client.WatchJob(ctx, &jobsv1.WatchJobRequest{JobId: w.jobID, AfterRevision: w.last.Load()})
	if err != nil {
		return err
	}
	for {
		msg, err := stream.Recv()
		if err != nil {
			return err
		}
		*failures = 0
		switch kind := msg.GetKind().(type) {
		case *jobsv1.WatchJobResponse_Event:
			w.last.Store(kind.Event.GetRevision())
			if !yield(kind.Event, nil) {
				return errStopped
			}
		case *jobsv1.WatchJobResponse_Heartbeat:
			if w.opts.OnHeartbeat != nil {
				w.opts.OnHeartbeat(kind.Heartbeat)
			}
		}
	}
}
