// Package budget plans how one PostgreSQL server's connections are shared
// among the apps and instances that use it, so that together they never
// exceed max_connections.
//
// The planner is being built (issue 6); this package holds no API yet.
package budget
