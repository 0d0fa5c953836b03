package pool_test

import (
	"io"
	"net"
	"net/url"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// hangProxy stands between a test's pool and a server. While hanging it
// accepts connections and never answers, like a pooler that is stuck;
// otherwise it forwards them. Connections accepted while hanging stay
// silent for good.
type hangProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex // guards hang and conns; held only for bookkeeping
	hang  bool
	conns []net.Conn
	wg    sync.WaitGroup
}

// newHangProxy proxies to the host and port of rawURL and returns the
// proxy and rawURL pointed at it. It closes when the test ends.
func newHangProxy(t *testing.T, rawURL string) (*hangProxy, string) {
	t.Helper()
	u, err := url.Parse(rawURL)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &hangProxy{ln: ln, target: u.Host}
	u.Host = ln.Addr().String()
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p, u.String()
}

func (p *hangProxy) setHang(h bool) {
	p.mu.Lock()
	p.hang = h
	p.mu.Unlock()
}

func (p *hangProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.conns = append(p.conns, c)
		hang := p.hang
		p.mu.Unlock()
		if hang {
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, up)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

func (p *hangProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
}

func (p *hangProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
