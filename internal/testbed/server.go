package testbed

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"time"
)

// server is one server the bed started, a local process (process.go) or a
// container (docker.go): the fault controls act on both the same way.
// Its fields are guarded by the owner's mutex (Bed.mu, Replica.mu,
// TrixieBouncer.mu); stop waits for the run to end while that is held,
// which is the one long operation allowed under it.
type server struct {
	name   string
	port   int
	run    runner
	done   chan struct{} // closed when the current run ends; nil before the first
	frozen bool          // SIGSTOP or docker pause is in force
}

// runner starts and signals the runs of one server.
type runner interface {
	// start begins a run and returns a function that blocks until the
	// run ends.
	start(ctx context.Context) (wait func(), err error)
	// signal sends sig to the server's main process.
	signal(sig syscall.Signal) error
	// kill ends every process of the server at once.
	kill()
	// freeze stops (true) or resumes (false) every process of the server.
	freeze(on bool) error
	// logTail returns the last n lines the server logged.
	logTail(n int) string
	// remove deletes what the server leaves behind once it has stopped for
	// good (a container); it is a no-op for a local process.
	remove()
}

func (s *server) launch(ctx context.Context) error {
	wait, err := s.run.start(ctx)
	if err != nil {
		return err
	}
	done := make(chan struct{})
	s.done = done
	// Owned by the run: it ends when the run does.
	go func() { wait(); close(done) }()
	return nil
}

func (s *server) running() bool {
	if s.done == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// exited is closed when the current run ends.
func (s *server) exited() <-chan struct{} {
	if s.done == nil {
		c := make(chan struct{})
		close(c)
		return c
	}
	return s.done
}

func (s *server) stop(mode stopMode) {
	if !s.running() {
		return
	}
	if s.frozen {
		_ = s.resume()
	}
	sig := syscall.SIGINT
	if mode == stopImmediate {
		sig = syscall.SIGQUIT
	}
	_ = s.run.signal(sig)
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		s.run.kill()
		<-s.done
	}
}

// hang freezes every process of the server: connections stay open and
// nothing answers, as when a host stalls.
func (s *server) hang() error {
	if err := s.run.freeze(true); err != nil {
		return err
	}
	s.frozen = true
	return nil
}

func (s *server) resume() error {
	if err := s.run.freeze(false); err != nil {
		return err
	}
	s.frozen = false
	return nil
}

// close stops the server for good and removes what it leaves behind.
func (s *server) close() {
	s.stop(stopFast)
	s.run.remove()
}

func (s *server) logTail(n int) string { return s.run.logTail(n) }

const startAttempts = 5

// startOnFreePort starts a server on a free loopback port and waits until
// readyURL(port) answers a query. A server that lost the race for its
// port (another process bound it first) is started again on another.
func startOnFreePort(ctx context.Context, name string, newRun func(port int) (runner, error), readyURL func(port int) string) (*server, error) {
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		run, err := newRun(port)
		if err != nil {
			return nil, err
		}
		s := &server{name: name, port: port, run: run}
		if err := s.launch(ctx); err != nil {
			run.remove()
			return nil, err
		}
		err = waitReady(ctx, s, readyURL(port))
		if err == nil {
			return s, nil
		}
		tail := s.logTail(10)
		if s.running() {
			run.kill()
			<-s.exited()
		}
		run.remove()
		if attempt < startAttempts && (strings.Contains(tail, "could not bind") || strings.Contains(tail, "Address already in use")) {
			continue
		}
		return nil, fmt.Errorf("testbed: %s did not start: %w%s", name, err, tail)
	}
}
