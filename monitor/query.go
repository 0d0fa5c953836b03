package monitor

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/supapool/supapool/internal/appname"
	"github.com/supapool/supapool/internal/pgstat"
)

// pollSQL is the whole poll: one statement, one round trip, so the monitor
// holds a backend for as little time as possible.
//
// It counts client backends and reserved slots as package pgstat defines
// them, the definitions supapool's pool uses to decide that a server is
// full, so the two never disagree. A role without pg_read_all_stats sees
// NULL in backend_type (and in state, xact_start, ...) for other roles'
// backends; those with a database are counted as hidden clients rather
// than dropped, because they hold slots all the same. The outer join
// returns the settings even if no row matched, which cannot happen in
// practice (the poll's own backend always matches) but keeps the scan
// simple.
//
// The query text of each group's oldest transaction is fetched only when
// Config.QueryTexts asks for it, cut to that many characters on the
// server; otherwise the poll reads no query text at all.
func pollSQL(queryChars int) string {
	query := `''::text`
	if queryChars > 0 {
		query = fmt.Sprintf(`coalesce((array_agg(left(query, %d) order by xact_start nulls last))[1], '')`, queryChars)
	}
	return `with b as (
	select datname, usename, application_name, state, xact_start, state_change, wait_event_type, query,
		` + pgstat.Hidden + ` as hidden
	from pg_stat_activity
	where ` + pgstat.ClientBackend + `
), g as (
	select coalesce(datname, '') as datname,
		coalesce(usename, '') as usename,
		coalesce(application_name, '') as app,
		case when hidden then '<insufficient privilege>' else coalesce(state, '') end as state,
		count(*)::int as n,
		(count(*) filter (where wait_event_type = 'Lock'))::int as waiting,
		coalesce(extract(epoch from max(greatest(now() - xact_start, interval '0'))), 0)::float8 as xact,
		coalesce(extract(epoch from max(greatest(now() - state_change, interval '0'))
			filter (where state like 'idle in transaction%')), 0)::float8 as idle_tx,
		case when bool_or(hidden) then '' else ` + query + ` end as query
	from b
	group by 1, 2, 3, 4
)
select s.now, s.max_conns, s.reserved, g.datname, g.usename, g.app, g.state, g.n, g.waiting, g.xact, g.idle_tx, g.query
from (select now() as now,
		` + pgstat.MaxConnections + ` as max_conns,
		` + pgstat.Reserved + ` as reserved) s
	left join g on true
order by 4, 5, 6, 7`
}

// raw is what pollSQL's query returned, before levels and budgets.
type raw struct {
	now      time.Time
	maxConns int
	reserved int
	groups   []Group
}

func scanPoll(rows pgx.Rows) (raw, error) {
	defer rows.Close()
	var r raw
	for rows.Next() {
		var (
			db, user, app, state *string
			query                *string
			n, waiting           *int32
			xact, idle           *float64
			maxConns, reserved   int32
		)
		if err := rows.Scan(&r.now, &maxConns, &reserved, &db, &user, &app, &state, &n, &waiting, &xact, &idle, &query); err != nil {
			return raw{}, fmt.Errorf("monitor: read pg_stat_activity: %w", err)
		}
		r.maxConns, r.reserved = int(maxConns), int(reserved)
		if n == nil {
			continue // the outer join's empty row
		}
		r.groups = append(r.groups, Group{
			Database:        *db,
			User:            *user,
			Application:     *app,
			State:           *state,
			Count:           int(*n),
			Waiting:         int(*waiting),
			LongestXact:     seconds(*xact),
			LongestIdleInTx: seconds(*idle),
			Query:           *query,
		})
	}
	if err := rows.Err(); err != nil {
		return raw{}, fmt.Errorf("monitor: read pg_stat_activity: %w", err)
	}
	if r.maxConns == 0 {
		return raw{}, fmt.Errorf("monitor: read pg_stat_activity: no rows")
	}
	return r, nil
}

// build turns a query result into a snapshot, without level or budget.
func build(r raw) Snapshot {
	s := Snapshot{
		Time:           r.now.Local(),
		MaxConnections: r.maxConns,
		Reserved:       r.reserved,
		ByState:        map[string]int{},
		Groups:         r.groups,
	}
	apps := map[string]*AppUsage{}
	for _, g := range r.groups {
		s.Total += g.Count
		s.ByState[g.State] += g.Count
		if g.State == StateHidden {
			s.Hidden += g.Count
		}
		// Lanes and instances (web/heavy#k3x9q2) fold into their app.
		name := appname.App(g.Application)
		a := apps[name]
		if a == nil {
			a = &AppUsage{Application: name, ByState: map[string]int{}}
			apps[name] = a
		}
		a.Total += g.Count
		a.ByState[g.State] += g.Count
		a.Waiting += g.Waiting
		a.LongestXact = max(a.LongestXact, g.LongestXact)
		a.LongestIdleInTx = max(a.LongestIdleInTx, g.LongestIdleInTx)
	}
	for _, a := range apps {
		s.Apps = append(s.Apps, *a)
	}
	sortApps(s.Apps)
	return s
}

func sortApps(apps []AppUsage) {
	sort.Slice(apps, func(i, j int) bool { return apps[i].Application < apps[j].Application })
}

// query sends the poll's query through the DB or the monitor's own
// connection. The caller holds the turn.
func (m *Monitor) query(ctx context.Context) (raw, error) {
	// The simple protocol needs no prepared statement, so the query also
	// works through a transaction-mode pooler and leaves no statement
	// cached on the caller's connections.
	if m.db != nil {
		rows, err := m.db.Query(ctx, m.sql, pgx.QueryExecModeSimpleProtocol)
		if err != nil {
			return raw{}, fmt.Errorf("monitor: query pg_stat_activity: %w", err)
		}
		return scanPoll(rows)
	}
	if m.conn == nil || m.conn.IsClosed() {
		m.closeConn()
		c, err := pgx.ConnectConfig(ctx, m.connCfg.Copy())
		if err != nil {
			return raw{}, fmt.Errorf("monitor: connect: %w", err)
		}
		m.conn = c
	}
	rows, err := m.conn.Query(ctx, m.sql, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		m.closeConn()
		return raw{}, fmt.Errorf("monitor: query pg_stat_activity: %w", err)
	}
	r, err := scanPoll(rows)
	if err != nil {
		// Whatever broke, a fresh connection next poll is the cheap fix.
		m.closeConn()
	}
	return r, err
}

// closeConn closes the monitor's own connection, if any, waiting at most a
// second for the server to hear it. The caller holds the turn.
func (m *Monitor) closeConn() {
	if m.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = m.conn.Close(ctx)
	m.conn = nil
}
