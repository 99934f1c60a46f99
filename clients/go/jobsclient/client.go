// Package jobsclient is a small layer over the generated jobs.v1 client
// (package jobsv1): a connection that sends the bearer token on every call,
// the google.rpc.ErrorInfo of an error, and a watch that resumes from the last
// revision whenever its stream breaks (see Watch).
package jobsclient

import (
	"context"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	jobsv1 "github.com/jobs-platform/jobs/clients/go/gen/jobs/v1"
)

// Client is the generated JobServiceClient on a connection that carries the
// bearer token.
type Client struct {
	jobsv1.JobServiceClient
	Conn *grpc.ClientConn
}

// New connects to target ("host:port") as the holder of token. The connection
// is plaintext HTTP/2 (h2c), as the server serves it unless TLS is configured;
// pass grpc.WithTransportCredentials(credentials.NewTLS(...)) in opts for TLS.
// Lost connections are retried quickly (at most 2 s apart) instead of grpc's
// default of up to 2 minutes.
func New(target, token string, opts ...grpc.DialOption) (*Client, error) {
	all := append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(BearerToken{Token: token, AllowInsecure: true}),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
			MinConnectTimeout: 5 * time.Second,
		}),
	}, opts...)
	conn, err := grpc.NewClient(target, all...)
	if err != nil {
		return nil, err
	}
	return &Client{JobServiceClient: jobsv1.NewJobServiceClient(conn), Conn: conn}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.Conn.Close() }

// WatchJob follows one job's events, resuming after disconnects: see Watch.
func (c *Client) WatchJob(ctx context.Context, jobID string, opts WatchOptions) *JobWatch {
	return Watch(ctx, c.JobServiceClient, jobID, opts)
}

// BearerToken sends "authorization: Bearer <Token>" with every call.
type BearerToken struct {
	Token string
	// AllowInsecure lets the token go over a plaintext connection.
	AllowInsecure bool
}

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (b BearerToken) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.Token}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials.
func (b BearerToken) RequireTransportSecurity() bool { return !b.AllowInsecure }

// ErrorInfo returns the google.rpc.ErrorInfo detail of an error from the
// server (domain "jobs.v1"; reason such as JOB_NOT_FOUND, INVALID_TRANSITION
// or STALE_ATTEMPT; metadata job_id, state, call), or nil. gRPC carries it in
// the grpc-status-details-bin trailer; grpc-go decodes it into
// status.Details() because this package imports errdetails.
func ErrorInfo(err error) *errdetails.ErrorInfo {
	st, ok := status.FromError(err)
	if !ok {
		return nil
	}
	for _, detail := range st.Details() {
		if info, ok := detail.(*errdetails.ErrorInfo); ok {
			return info
		}
	}
	return nil
}

// Reason is ErrorInfo(err).Reason, or "" when there is none.
func Reason(err error) string {
	if info := ErrorInfo(err); info != nil {
		return info.GetReason()
	}
	return ""
}
