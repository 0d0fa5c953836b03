package pool_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/supapool/supapool/internal/testbed"
)

// elasticReport mirrors internal/elasticproc's Report.
type elasticReport struct {
	Queries, Errors            int64
	Codes                      map[string]int64
	FirstMillis, ElapsedMillis int64
	Closed, Views              int64
}

// The storm as 28 separate processes (internal/elasticproc, built once),
// so that nothing shared inside one test binary can make sharing work:
// 27 instances (7 apps, caps 4, 10 goroutines of pg_sleep(0.001)) fill
// the server for 12 s; once they hold it, a 28th starts and runs 100
// queries. Every process must see 0 errors.
func TestElasticProcesses(t *testing.T) {
	bed := testbed.NewT(t, testbed.Options{MaxConnections: 60, NoPooler: true})
	ctx := testCtx(t)
	bin := filepath.Join(t.TempDir(), "elasticproc")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/supapool/supapool/internal/elasticproc")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)

	// The processes' environment: this one's, without any database or
	// budget setting, plus the instance's own.
	var base []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DATABASE_") && !strings.HasPrefix(kv, "SUPAPOOL_") && !strings.HasPrefix(kv, "PG") {
			base = append(base, kv)
		}
	}
	type proc struct {
		cmd         *exec.Cmd
		out, errOut bytes.Buffer
	}
	start := func(app string, args ...string) *proc {
		p := &proc{cmd: exec.CommandContext(ctx, bin, args...)}
		p.cmd.Env = append(append([]string(nil), base...), "DATABASE_URL="+bed.DirectURL, "DATABASE_APP_NAME="+app, "DATABASE_MAX_CONNS=4")
		p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.errOut
		require.NoError(t, p.cmd.Start())
		return p
	}
	var crowd []*proc
	for i := 0; i < 27; i++ {
		crowd = append(crowd, start(fmt.Sprintf("proc_app%d", i/4), "-for", "12s"))
	}
	// The late joiner starts once the crowd holds the server (or after a
	// generous bound; the count is then only reported).
	admin, err := pgx.Connect(ctx, bed.AdminURL)
	require.NoError(t, err)
	var held int
	for wait := time.Now(); time.Since(wait) < 8*time.Second; time.Sleep(100 * time.Millisecond) {
		if err := admin.QueryRow(ctx, "select count(*) from pg_stat_activity where application_name like 'proc\\_app%'").Scan(&held); err == nil && held >= 50 {
			break
		}
	}
	admin.Close(context.Background())
	late := start("proc_app6", "-queries", "10")
	wait := func(p *proc) elasticReport {
		require.NoError(t, p.cmd.Wait(), "stderr: %s", p.errOut.String())
		var r elasticReport
		require.NoError(t, json.Unmarshal(p.out.Bytes(), &r), "stdout: %q", p.out.String())
		return r
	}
	lr := wait(late)
	var total, failed, closed int64
	for _, p := range crowd {
		r := wait(p)
		total, failed, closed = total+r.Queries, failed+r.Errors, closed+r.Closed
		assert.Zero(t, r.Errors, "a crowd process's errors: %v", r.Codes)
	}
	t.Logf("the crowd held %d backends when the late joiner started; crowd: %d queries, %d failed, %d closed by sharing; late joiner: %d queries, %d failed, first after %d ms, all after %d ms",
		held, total, failed, closed, lr.Queries, lr.Errors, lr.FirstMillis, lr.ElapsedMillis)
	assert.Zero(t, lr.Errors, "the late joiner's errors: %v", lr.Codes)
	assert.EqualValues(t, 100, lr.Queries)
	assert.Positive(t, total)
}
