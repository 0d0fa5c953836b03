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
//	go m.Run(ctx) // polls until ctx ends
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
// # Callbacks and closing
//
// OnChange, OnAlert and the log lines run after the poll that caused them
// has ended, with no lock held: a callback may call [Monitor.Poll],
// [Monitor.Snapshot] or [Monitor.Close]. They run one at a time, in the
// order of the polls that caused them, on the goroutine of Run or Poll;
// the monitor starts no goroutine of its own.
//
// [Monitor.Close] does not wait for a slow poll: it cancels the poll in
// progress (which returns [ErrClosed] and is not counted as failed) and
// closes the monitor's own connection.
//
// # Privileges
//
// A role without pg_read_all_stats cannot see other roles' backends in
// detail. The monitor counts them anyway, under [StateHidden], so totals
// and levels stay right; grant the role pg_monitor to see their
// applications' states and ages. Client backends and reserved slots are
// counted exactly as supapool's pool counts them when it decides that the
// server is full, from one shared definition.
//
// # Dashboard and history
//
// [Monitor.Dashboard] serves a self-contained web page (embedded, no
// external resources) of the level, a chart of connections per app over
// the last hour, a table per app, the alert log and a stale banner, and
// the JSON it reads. [Monitor.History] keeps every poll of the last hour
// (at most 3600 points), one point per minute (the busiest poll) for the
// day before, and the newest 200 events: under 3 MB with 10 apps. Query
// texts are read only with [Config.QueryTexts]. The alert rules in
// monitor/prometheus and the Grafana board in monitor/grafana work on
// prommonitor's metrics.
//
// Prometheus metrics live in the sub-package prommonitor, so services that
// do not use Prometheus do not link its client.
package monitor
