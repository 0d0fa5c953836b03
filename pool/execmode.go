package pool

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"
)

// The pooled route's exec mode, when nobody chose one (Config.ExecMode,
// default_query_exec_mode in PooledURL, or a ConfigurePooled hook), is
// detected, not guessed from a host or a version:
//
//   - pgx's cache_statement (named prepared statements, one round trip)
//     when the pooler keeps each client's statement names to itself
//     (PgBouncer 1.21+ with max_prepared_statements > 0, and other poolers
//     that virtualise names);
//   - cache_describe (the unnamed statement, which no pooler can mix up)
//     everywhere else.
//
// The probe runs on the route's first connection, and again on the first
// connection after the route had none open (so after it lost its pooler).
// Inside one transaction, so on one server connection, it prepares a
// statement under a random name that counts the server's statements of
// that name, and runs it: 1 means the server sees the client's names (a
// transaction pooler passes them through and they collide, 42P05, or
// vanish, 26000), 0 means the pooler renamed it.
//
// describe_exec is never chosen on a transaction pooler: it sends Parse
// (of a named statement) and Bind in separate round trips, which such a
// pooler may give to different server connections (26000 measured).
//
// Each connection keeps the mode it was opened with (pgx's config is per
// connection); a connection whose mode is no longer the route's is closed
// when next acquired, and new connections take the route's mode.

// probeSQL counts the server's prepared statements named $1.
const probeSQL = "select count(*) from pg_prepared_statements where name = $1"

// execModes is the pooled route's exec mode: decided by the probe (auto)
// or the user's.
type execModes struct {
	auto bool              // nobody chose: the probe decides
	user pgx.QueryExecMode // the mode configured; the probe only warns about it
	log  *zap.Logger

	mode      atomic.Int32 // pgx.QueryExecMode new connections get (auto)
	decided   atomic.Bool  // false until the probe answered, and again once no connection is open
	open      atomic.Int32 // connections open now
	reason    atomic.Pointer[string]
	fallbacks atomic.Int64
	unretried atomic.Int64
	warned    atomic.Bool
	conns     sync.Map // *pgx.Conn -> pgx.QueryExecMode it was opened with (auto)
	marker    atomic.Pointer[marker]
}

// newExecModes returns the pooled route's modes on a transaction pooler:
// auto unless the user's configuration chose a mode other than the one
// supapool would set.
func newExecModes(pc *pgxpool.Config, userChose bool, log *zap.Logger) *execModes {
	m := &execModes{user: pc.ConnConfig.DefaultQueryExecMode, log: log}
	m.auto = !userChose && m.user == pgx.QueryExecModeCacheDescribe
	m.mode.Store(int32(pgx.QueryExecModeCacheDescribe))
	r := "not probed yet"
	if !m.auto {
		r = "set by the user"
	}
	m.reason.Store(&r)
	return m
}

// current is the mode of the route's new connections.
func (m *execModes) current() pgx.QueryExecMode {
	if m == nil {
		return 0
	}
	if !m.auto {
		return m.user
	}
	return pgx.QueryExecMode(m.mode.Load())
}

// install chains the probe and the per-connection modes into a pgxpool
// config, keeping the hooks already there.
func (m *execModes) install(pc *pgxpool.Config) {
	beforeConnect, afterConnect, beforeClose, prepare := pc.BeforeConnect, pc.AfterConnect, pc.BeforeClose, pc.PrepareConn
	pc.BeforeConnect = func(ctx context.Context, cc *pgx.ConnConfig) error {
		if m.auto {
			cc.DefaultQueryExecMode = m.current()
		}
		if beforeConnect != nil {
			return beforeConnect(ctx, cc)
		}
		return nil
	}
	pc.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		opened := m.current()
		m.open.Add(1)
		if m.auto {
			m.conns.Store(c, opened)
		}
		if !m.decided.Load() {
			if err := m.probe(ctx, c); err != nil && c.IsClosed() {
				// The pooler refused the connection at its first
				// statement (a FATAL: server full, login retry):
				// the connect fails, and acquire waits as for any
				// refused connect. pgxpool closes it without
				// BeforeClose.
				m.forget(c)
				return err
			}
		}
		if afterConnect != nil {
			return afterConnect(ctx, c)
		}
		return nil
	}
	pc.BeforeClose = func(c *pgx.Conn) {
		m.forget(c)
		if beforeClose != nil {
			beforeClose(c)
		}
	}
	pc.PrepareConn = func(ctx context.Context, c *pgx.Conn) (bool, error) {
		if m.auto {
			if v, ok := m.conns.Load(c); ok && v.(pgx.QueryExecMode) != m.current() {
				return false, nil // pgxpool closes it and opens one in the route's mode
			}
		}
		if prepare != nil {
			return prepare(ctx, c)
		}
		return true, nil
	}
}

// forget drops a connection that is gone; once none is open, the next
// connection probes again, since the pooler behind it may have changed.
func (m *execModes) forget(c *pgx.Conn) {
	if _, ok := m.conns.LoadAndDelete(c); ok || !m.auto {
		if m.open.Add(-1) == 0 {
			m.decided.Store(false)
		}
	}
}

// probe asks the pooler behind c whether it keeps client statement names
// to itself, and sets the route's mode from the answer. A probe that fails
// leaves the mode as it was (cache_describe at first) and is tried again
// on the next connection; its error is returned.
func (m *execModes) probe(ctx context.Context, c *pgx.Conn) error {
	seen, err := probeNames(ctx, c.PgConn())
	if err != nil {
		if !c.IsClosed() {
			m.log.Warn("supapool: exec mode probe failed; keeping "+modeName(m.current())+" and probing again on the next connection", zap.Error(err))
		}
		return err
	}
	if !m.decided.CompareAndSwap(false, true) {
		return nil
	}
	safe := !seen
	var reason string
	switch {
	case safe:
		reason = "probe: the pooler renames prepared statements, so named statements are safe"
	default:
		reason = "probe: the server sees each client's statement names, so named statements would collide through a transaction pooler"
	}
	if m.auto {
		mode := pgx.QueryExecModeCacheDescribe
		if safe {
			mode = pgx.QueryExecModeCacheStatement
		}
		m.reason.Store(&reason)
		was := pgx.QueryExecMode(m.mode.Swap(int32(mode)))
		if first := !m.warned.Swap(true); was != mode || first {
			m.log.Info("supapool: pooled exec mode chosen", zap.String("exec_mode", modeName(mode)), zap.String("was", modeName(was)), zap.String("reason", reason))
		}
		return nil
	}
	if !safe && (m.user == pgx.QueryExecModeCacheStatement || m.user == pgx.QueryExecModeDescribeExec) && !m.warned.Swap(true) {
		m.log.Warn("supapool: the pooled route's exec mode "+modeName(m.user)+" was set by the user, but the pooler passes statement names through: expect 42P05/26000 errors; unset ExecMode (or default_query_exec_mode) to let supapool choose",
			zap.String("reason", reason))
	}
	return nil
}

// probeNames reports whether the server behind c sees a statement under
// the name the client gave it.
func probeNames(ctx context.Context, c *pgconn.PgConn) (seen bool, err error) {
	var b [8]byte
	_, _ = rand.Read(b[:])
	name := "supapool_probe_" + hex.EncodeToString(b[:])
	if _, err := c.Exec(ctx, "begin").ReadAll(); err != nil {
		return false, fmt.Errorf("pool: exec mode probe: begin: %w", err)
	}
	defer func() {
		if _, cerr := c.Exec(ctx, "commit").ReadAll(); cerr != nil && err == nil {
			err = fmt.Errorf("pool: exec mode probe: commit: %w", cerr)
		}
	}()
	if _, err := c.Prepare(ctx, name, probeSQL, nil); err != nil {
		return false, fmt.Errorf("pool: exec mode probe: prepare: %w", err)
	}
	res := c.ExecPrepared(ctx, name, [][]byte{[]byte(name)}, nil, nil).Read()
	if derr := c.Deallocate(ctx, name); derr != nil && res.Err == nil {
		res.Err = derr
	}
	if res.Err != nil {
		return false, fmt.Errorf("pool: exec mode probe: %w", res.Err)
	}
	if len(res.Rows) != 1 || len(res.Rows[0]) != 1 {
		return false, errors.New("pool: exec mode probe: expected one row")
	}
	n, err := strconv.Atoi(string(res.Rows[0][0]))
	if err != nil {
		return false, fmt.Errorf("pool: exec mode probe: count: %w", err)
	}
	return n > 0, nil
}

// namesLost reports an error saying that a named prepared statement
// collided (42P05) or was not found (26000): both come before the
// statement ran, so the call can run again.
func namesLost(err error) bool {
	if err == nil {
		return false // before pgErr, which escapes: no allocation per call
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	return pgErr.Code == "42P05" || pgErr.Code == "26000"
}

// fallBack flips an auto route back to cache_describe after err, when err
// says its named statements are not safe any more (the pooler was replaced
// or reconfigured); it reports whether the call should run again.
func (m *execModes) fallBack(err error) bool {
	if m == nil || !m.auto || !namesLost(err) {
		return false
	}
	m.fallbacks.Add(1)
	m.flip(err)
	return true
}

// lost is fallBack for a call that cannot run again (a statement inside a
// transaction, a batch's later result): the route falls back all the same,
// so that the next calls are safe, and err goes to the caller.
func (m *execModes) lost(err error) {
	if m == nil || !m.auto || !namesLost(err) {
		return
	}
	m.unretried.Add(1)
	m.flip(err)
}

// flip sets the route's mode to cache_describe and says so once.
func (m *execModes) flip(err error) {
	if pgx.QueryExecMode(m.mode.Swap(int32(pgx.QueryExecModeCacheDescribe))) != pgx.QueryExecModeCacheDescribe {
		reason := "fallback: a named statement failed (" + err.Error() + ")"
		m.reason.Store(&reason)
		m.log.Warn("supapool: pooled route falls back to exec mode cache_describe", zap.Error(err))
	}
}

// ExecModeStat is the pooled route's exec mode.
type ExecModeStat struct {
	// Mode is the mode the route's new connections use; 0 on a route
	// that is not behind a transaction pooler (pgx's default applies).
	Mode pgx.QueryExecMode
	// Auto is true when supapool chose Mode (by the probe), false when
	// the user did.
	Auto bool
	// Reason says why, in words.
	Reason string
	// Fallbacks counts calls that failed with 42P05 or 26000 under named
	// statements and ran again after the route fell back to
	// cache_describe.
	Fallbacks int64
	// Unretried counts calls that failed that way where running again was
	// not safe, so the error reached the caller: a statement inside a
	// transaction, or a batch's result after the batch's first (see
	// README, "Exec mode"). The route fell back all the same.
	Unretried int64
}

func (m *execModes) stat() ExecModeStat {
	if m == nil {
		return ExecModeStat{}
	}
	return ExecModeStat{Mode: m.current(), Auto: m.auto, Reason: *m.reason.Load(), Fallbacks: m.fallbacks.Load(), Unretried: m.unretried.Load()}
}

// execModeLog is what the "pool ready" line says of the pooled route's
// exec mode: the mode its connections use now, and who chose it. New opens
// no connection, so a mode the probe decides is not known yet: the line
// says the route uses cache_describe until then, and the decision is
// logged on its own line ("supapool: pooled exec mode chosen", with the
// mode and the probe's reason) once the first connection answered.
func (r *route) execModeLog() []zap.Field {
	switch {
	case r.exec == nil:
		return []zap.Field{zap.String("exec_mode", modeName(r.pool.Config().ConnConfig.DefaultQueryExecMode)), zap.String("exec_mode_by", "pgx's default (not a transaction pooler)")}
	case !r.exec.auto:
		return []zap.Field{zap.String("exec_mode", modeName(r.exec.user)), zap.String("exec_mode_by", "the user (Config.ExecMode, default_query_exec_mode or ConfigurePooled)")}
	case r.exec.decided.Load():
		return []zap.Field{zap.String("exec_mode", modeName(r.exec.current())), zap.String("exec_mode_by", *r.exec.reason.Load())}
	}
	return []zap.Field{zap.String("exec_mode", modeName(r.exec.current())), zap.String("exec_mode_by", execModePending)}
}

// execModePending is the "pool ready" line's exec_mode_by before the probe.
const execModePending = "probe pending: the first pooled connection decides, logged as \"supapool: pooled exec mode chosen\""

// text is the SQL a call on r sends. Behind a transaction pooler that
// shares server-side statements by their text (PgBouncer 1.21+), a
// statement prepared before a schema change stays on the pooler's server
// connections, and every later preparation of the same text is mapped to
// it and fails with 0A000 ("cached plan must not change result type")
// until those connections are recycled. So once the route has seen a
// schema change (stale.go), its SQL carries a comment naming the
// generation: a new text, so a new server-side statement.
func (r *route) text(sql string) string {
	if r.exec == nil {
		return sql
	}
	g := r.gens.current.Load()
	if g == 0 {
		return sql
	}
	m := r.exec.marker.Load()
	if m == nil || m.gen != g {
		m = &marker{gen: g, suffix: "\n/* supapool generation " + strconv.FormatInt(g, 10) + " */"}
		r.exec.marker.Store(m)
	}
	return sql + m.suffix
}

// marker is the comment text adds in one generation.
type marker struct {
	gen    int64
	suffix string
}

// batch is the batch a call on r sends: b itself, or a copy whose SQL
// carries the generation's marker (see text). fresh asks for a copy in
// any case, for a batch sent before: pgx keeps each query's statement
// description in the batch, which would name the old connection's
// statement (or the old generation's) when it is sent again. The copy
// keeps BeginTx's options, the arguments and the callbacks.
func (r *route) batch(b *pgx.Batch, fresh bool) *pgx.Batch {
	if !fresh && (r.exec == nil || r.gens.current.Load() == 0) {
		return b
	}
	nb := *b
	nb.QueuedQueries = make([]*pgx.QueuedQuery, len(b.QueuedQueries))
	for i, q := range b.QueuedQueries {
		nb.QueuedQueries[i] = &pgx.QueuedQuery{SQL: r.text(q.SQL), Arguments: q.Arguments, Fn: q.Fn}
	}
	return &nb
}

// noteFailed tells the route what a call that cannot run again learned from
// its error: a stale description retires the route's connections and
// starts a new generation (stale.go), lost statement names flip an auto
// route to cache_describe. Only a route behind a transaction pooler
// (r.exec) needs it: there the pooler's shared statements keep failing
// every later call until one of these happens.
func (r *route) noteFailed(err error) {
	if err == nil || r.exec == nil {
		return
	}
	if isStale(err) {
		r.gens.current.Add(1) // as staleSeen, without counting a retry
		return
	}
	r.exec.lost(err)
}

// modeName is a mode as default_query_exec_mode spells it in a URL
// (cache_statement), the way the logs name it.
func modeName(m pgx.QueryExecMode) string { return strings.ReplaceAll(m.String(), " ", "_") }
