// Package monitor watches who holds a PostgreSQL server's connections, so a
// team sees an app crowding the server out before the server answers
// "sorry, too many clients already".
//
// A [Monitor] polls pg_stat_activity with one query, on one connection,
// and keeps the latest [Snapshot]: client backends by database, user,
// application_name and state, the oldest transaction and the longest
// idle-in-transaction session in each group, lock waiters, and a [Level]
// against max_connections:
//
//	m, err := monitor.New(monitor.Config{
//		DB:       pool,                  // or URL: a direct database URL
//		Interval: 10 * time.Second,
//		Levels:   monitor.Levels{Yellow: 0.50, Red: 0.75},
//		Budget:   plan,                  // optional *budget.Allocation
//		OnChange: func(s monitor.Snapshot) { page(s.Level) },
//		Logger:   logger,
//	})
//	if err != nil { ... }
//	go m.Run(ctx)
//	http.Handle("/debug/connections", m.Handler())
//
// # Cost to the server
//
// The monitor exists to protect the server's connections, so it spends as
// few as it can: each poll is a single statement sent with the simple
// protocol (no prepared statement, so it also passes a transaction-mode
// pooler) on one connection, either borrowed from [Config.DB] or the
// monitor's own single connection ([Config.URL]). Polls never overlap: a
// poll is bounded by [Config.Timeout], and a tick of [Monitor.Run] that
// finds a poll still running is skipped. A poll that cannot get a
// connection fails after the timeout instead of waiting its turn; the
// snapshot then keeps the last good data and is marked Stale.
//
// The poll's own backend is a client backend like any other and is counted
// in [Snapshot.Total]: it holds a slot of max_connections while it runs.
//
// # Levels
//
// [Levels] sets Yellow and Red as fractions of max_connections or as
// counts; the defaults give Green below 30, Yellow for 30 to 45 and Red
// above 45 on a 60-connection server. Levels rise at once and fall only
// after usage has stayed below a margin for some polls, so OnChange and the
// log warning fire on real transitions, not on every poll near a threshold.
//
// # Alerts
//
// With a budget plan ([Config.Budget]), an app whose live connections
// (matched by application_name) exceed its plan's share raises
// [AlertOverBudget]. A session idle inside a transaction for longer than
// [Config.IdleInTxAlert] raises [AlertIdleInTransaction], and failing polls
// raise [AlertPollFailing]. Each alert is reported once when raised and
// once when cleared, through [Config.OnAlert] and the logger.
//
// # Privileges
//
// A role without pg_read_all_stats cannot see other roles' backends in
// detail. The monitor counts them anyway, under [StateHidden], so totals
// and levels stay right; grant the role pg_monitor to see their
// applications' states and ages.
//
// Prometheus metrics live in the sub-package prommonitor, so services that
// do not use Prometheus do not link its client.
package monitor
