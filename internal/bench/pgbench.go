package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/supapool/supapool/internal/redact"
)

// PgbenchAccounts is the rows `pgbench -i` makes at scale 1.
const PgbenchAccounts = 100000

// AccountLookup is the statement of `pgbench -S` (select-only), with a
// random aid in 1..PgbenchAccounts, for Go clients to run against the
// C client.
var AccountLookup = Query{
	Name: "pgbench -S select",
	SQL:  "select abalance from pgbench_accounts where aid = $1",
	Args: func(int) []any { return []any{1 + rand.IntN(PgbenchAccounts)} },
	Dest: func() []any { var n int32; return []any{&n} },
}

// ErrNoPgbench is returned when no pgbench binary is found.
var ErrNoPgbench = errors.New("bench: pgbench not found under /usr/lib/postgresql/*/bin or in PATH; install it with: apt-get install postgresql")

// Pgbench finds the pgbench binary: Debian's versioned directory first
// (the newest version wins), then PATH.
func Pgbench() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pgbench")
	sort.Slice(dirs, func(i, j int) bool { return pgMajor(dirs[i]) > pgMajor(dirs[j]) })
	for _, d := range dirs {
		if st, err := os.Stat(d); err == nil && !st.IsDir() {
			return d, nil
		}
	}
	if p, err := exec.LookPath("pgbench"); err == nil {
		return p, nil
	}
	return "", ErrNoPgbench
}

func pgMajor(bin string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(bin))))
	return v
}

// runPgbench runs pgbench with args and the database of connURL last; the
// password goes in PGPASSWORD, never on the command line.
func runPgbench(ctx context.Context, bin, connURL string, args ...string) (string, error) {
	u, err := url.Parse(connURL)
	if err != nil {
		return "", fmt.Errorf("bench: pgbench connection URL: %s", redact.URLError(err))
	}
	pw, _ := u.User.Password()
	u.User = url.User(u.User.Username())
	cmd := exec.CommandContext(ctx, bin, append(args, u.String())...)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+pw)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("bench: pgbench %s: %w: %s", strings.Join(args, " "), err, redact.Text(strings.TrimSpace(stderr.String()), pw))
	}
	return stdout.String(), nil
}

// PgbenchInit runs `pgbench -i -s 1` on connURL (use a direct URL): it
// makes pgbench_accounts with PgbenchAccounts rows.
func PgbenchInit(ctx context.Context, bin, connURL string) error {
	_, err := runPgbench(ctx, bin, connURL, "-i", "-q", "-s", "1")
	return err
}

var tpsLine = regexp.MustCompile(`(?m)^tps = ([0-9.]+)`)

// PgbenchSelect runs `pgbench -n -S -M mode` with clients connections on
// threads threads for d and returns its transactions per second (without
// initial connection time) and its failed transactions.
func PgbenchSelect(ctx context.Context, bin, connURL, mode string, clients, threads int, d time.Duration) (tps float64, err error) {
	secs := max(1, int(d.Round(time.Second)/time.Second))
	out, err := runPgbench(ctx, bin, connURL, "-n", "-S", "-M", mode, "-c", strconv.Itoa(clients), "-j", strconv.Itoa(threads), "-T", strconv.Itoa(secs))
	if err != nil {
		return 0, err
	}
	m := tpsLine.FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("bench: pgbench -M %s printed no tps line: %q", mode, out)
	}
	if strings.Contains(out, "number of failed transactions: ") && !strings.Contains(out, "number of failed transactions: 0 ") {
		return 0, fmt.Errorf("bench: pgbench -M %s failed transactions: %q", mode, out)
	}
	return strconv.ParseFloat(m[1], 64)
}

// LoadFor runs q on p from goroutines goroutines for d and counts outcomes.
func LoadFor(ctx context.Context, p Execer, goroutines int, d time.Duration, q Query) Result {
	var total, failed atomic.Int64
	var mu sync.Mutex
	codes := map[string]int64{}
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dest := q.Dest()
			for i := 0; time.Now().Before(deadline); i++ {
				total.Add(1)
				if err := p.QueryRow(ctx, q.SQL, q.Args(i)...).Scan(dest...); err != nil {
					failed.Add(1)
					mu.Lock()
					codes[ErrCode(err)]++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return Result{Queries: total.Load(), Errors: failed.Load(), Codes: codes, Elapsed: time.Since(start)}
}
