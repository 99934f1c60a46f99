// Package livetest runs the real jobs server (`jobsctl serve`) for the Go
// client's tests, and makes tokens with `jobsctl tokens create`.
//
// Environment (test/clients/go.test.ts sets it; `npm test` runs that):
//
//	DATABASE_URL  a migrated PostgreSQL database of our own (the server does not migrate)
//	NODE          Node 24 (the checkout's node_modules/.bin/node)
//	JOBS_ROOT     the checkout (default: found from this file's directory)
package livetest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func env(name string) (string, error) {
	v := os.Getenv(name)
	if v == "" {
		return "", fmt.Errorf("%s is not set: run these tests through `npm test` (test/clients/go.test.ts), or set DATABASE_URL (a migrated database) and NODE (Node 24) yourself", name)
	}
	return v, nil
}

func root() string {
	if r := os.Getenv("JOBS_ROOT"); r != "" {
		return r
	}
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "..")
}

// FreePort returns a TCP port that was free a moment ago on 127.0.0.1.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Server is `jobsctl serve` on 127.0.0.1:Port.
type Server struct {
	Port int
	mu   sync.Mutex
	cmd  *exec.Cmd
	out  []string
	done chan struct{}
}

// Addr is host:port.
func (s *Server) Addr() string { return fmt.Sprintf("127.0.0.1:%d", s.Port) }

// Output is what the server printed so far.
func (s *Server) Output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.out, "\n")
}

// Start starts a server on port (0: a free one) and waits until it serves.
func Start(port int) (*Server, error) {
	if port == 0 {
		var err error
		if port, err = FreePort(); err != nil {
			return nil, err
		}
	}
	s := &Server{Port: port}
	return s, s.Start()
}

// Start (re)starts the server on its port.
func (s *Server) Start() error {
	node, err := env("NODE")
	if err != nil {
		return err
	}
	dbURL, err := env("DATABASE_URL")
	if err != nil {
		return err
	}
	cmd := exec.Command(node, filepath.Join(root(), "bin", "jobsctl.js"), "serve")
	cmd.Dir = root()
	cmd.Env = append(os.Environ(),
		"DATABASE_URL="+dbURL,
		"HOST=127.0.0.1",
		fmt.Sprintf("PORT=%d", s.Port),
		"MIGRATE_ON_START=false",
		"LOG_LEVEL=warn",
		"WATCH_HEARTBEAT_SECONDS=1",
	)
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return err
	}
	ready := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		scanner := bufio.NewScanner(pipe)
		once := sync.Once{}
		for scanner.Scan() {
			line := scanner.Text()
			s.mu.Lock()
			s.out = append(s.out, line)
			s.mu.Unlock()
			if strings.Contains(line, "jobs is serving") {
				once.Do(func() { close(ready) })
			}
		}
	}()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	select {
	case <-ready:
		return nil
	case <-done:
		_ = cmd.Wait()
		return fmt.Errorf("server exited before serving on port %d:\n%s", s.Port, s.Output())
	case <-time.After(60 * time.Second):
		s.Kill()
		return fmt.Errorf("server did not start on port %d within 60s:\n%s", s.Port, s.Output())
	}
}

// Stop sends SIGTERM (the server drains) and returns the exit code.
func (s *Server) Stop() (int, error) {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return 0, errors.New("server is not running")
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return 0, err
	}
	<-done // output fully read before Wait closes the pipe
	err := cmd.Wait()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), nil
	}
	return 0, err
}

// Kill ends the server at once if it still runs.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd := s.cmd
	s.cmd = nil
	s.mu.Unlock()
	if cmd != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
}

// StartT is Start for a test: it fails the test on error and kills the
// server when the test ends.
func StartT(t testing.TB, port int) *Server {
	t.Helper()
	s, err := Start(port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Kill)
	return s
}

// CreateToken makes a service token the way an operator does:
// `jobsctl tokens create --principal service --name NAME --scopes jobs:read,jobs:write`.
func CreateToken(name string) (string, error) {
	node, err := env("NODE")
	if err != nil {
		return "", err
	}
	dbURL, err := env("DATABASE_URL")
	if err != nil {
		return "", err
	}
	cmd := exec.Command(node, filepath.Join(root(), "bin", "jobsctl.js"),
		"tokens", "create", "--principal", "service", "--name", name, "--scopes", "jobs:read,jobs:write")
	cmd.Dir = root()
	cmd.Env = append(os.Environ(), "DATABASE_URL="+dbURL, "LOG_LEVEL=warn")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("jobsctl tokens create: %v\n%s", err, stderr.String())
	}
	token := strings.TrimSpace(string(out))
	if token == "" || strings.ContainsAny(token, " \n") {
		return "", fmt.Errorf("expected the token alone on stdout, got %q", out)
	}
	return token, nil
}

// WaitUntil waits for something that must happen; the test fails (nothing is
// timed) if it has not happened after 30 s.
func WaitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
