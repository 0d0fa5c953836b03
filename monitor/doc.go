// Package monitor polls pg_stat_activity and reports who holds a server's
// connections, with green, yellow and red levels against max_connections.
//
// The monitor is being built (issue 7); this package holds no API yet.
package monitor
