package pool_test

import (
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap/zaptest/observer"
)

// editURL returns raw with f applied to its parsed form. The URLs carry
// passwords: never log them.
func editURL(t *testing.T, raw string, f func(u *url.URL)) string {
	t.Helper()
	u, err := url.Parse(raw)
	require.NoError(t, err)
	f(u)
	return u.String()
}

func password(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	require.NoError(t, err)
	pw, _ := u.User.Password()
	require.NotEmpty(t, pw)
	return pw
}

// requireNoSecret fails if a secret appears in any logged message or
// field.
func requireNoSecret(t *testing.T, logs *observer.ObservedLogs, secrets ...string) {
	t.Helper()
	for _, e := range logs.All() {
		line := e.Message + " " + fmt.Sprint(e.ContextMap())
		for _, s := range secrets {
			require.NotContains(t, line, s, "a password in the log")
		}
	}
}

// freezeProxy forwards TCP connections to a target. Freeze stops
// forwarding on the connections open at that moment, in both directions,
// while keeping their sockets open (a half-open peer, as a dead NAT entry
// or a hung server looks); connections opened later pass.
type freezeProxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu    sync.Mutex // guards conns: every connection accepted, frozen or not
	conns []*proxied
}

type proxied struct {
	client, server net.Conn
	frozen         atomic.Bool
}

func newFreezeProxy(t *testing.T, target string) *freezeProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &freezeProxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *freezeProxy) addr() string { return p.ln.Addr().String() }

func (p *freezeProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		pc := p.track(c, s)
		p.wg.Add(2)
		go p.pipe(pc, c, s)
		go p.pipe(pc, s, c)
	}
}

func (p *freezeProxy) track(c, s net.Conn) *proxied {
	p.mu.Lock()
	defer p.mu.Unlock()
	pc := &proxied{client: c, server: s}
	p.conns = append(p.conns, pc)
	return pc
}

// pipe copies src to dst until either closes; once frozen it reads and
// holds what arrives, forwarding nothing.
func (p *freezeProxy) pipe(pc *proxied, src, dst net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if pc.frozen.Load() {
			if err == nil {
				continue // swallowed
			}
			return
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err == io.EOF {
				if tc, ok := dst.(*net.TCPConn); ok {
					_ = tc.CloseWrite()
				}
			}
			return
		}
	}
}

// freeze freezes every connection open now and reports how many.
func (p *freezeProxy) freeze() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, pc := range p.conns {
		if !pc.frozen.Swap(true) {
			n++
		}
	}
	return n
}

func (p *freezeProxy) closeConns() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pc := range p.conns {
		pc.client.Close()
		pc.server.Close()
	}
}

func (p *freezeProxy) close() {
	_ = p.ln.Close()
	p.closeConns()
	p.wg.Wait()
}

// mute accepts TCP connections and never answers: a server that hangs.
type mute struct {
	ln net.Listener
	wg sync.WaitGroup

	mu    sync.Mutex // guards conns: every connection accepted, held open
	conns []net.Conn
}

func newMute(t *testing.T) *mute {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	m := &mute{ln: ln}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			m.track(c)
		}
	}()
	t.Cleanup(m.close)
	return m
}

func (m *mute) track(c net.Conn) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.conns = append(m.conns, c)
}

func (m *mute) accepted() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.conns)
}

func (m *mute) close() {
	_ = m.ln.Close()
	m.wg.Wait()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range m.conns {
		c.Close()
	}
}

func hostPort(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	require.NoError(t, err)
	require.False(t, strings.Contains(u.Host, ","), "one host")
	return u.Host
}
