// Package budget plans how one PostgreSQL server's connections are shared
// among the apps and instances that use it, so that together they never
// exceed max_connections.
//
// Each service sizing its own pool works until services scale out: seven
// apps with a few instances each and pgx's default pool size run a 60
// connection Supabase Free project out of connections. The arithmetic is easy
// to get wrong by hand and goes stale whenever an instance count changes, so
// this package does it from one spec and hands every instance its caps.
//
// The package is pure arithmetic and parsing: it opens no connections and
// logs nothing.
//
// # Planning
//
// Describe the server, the pooler in front of it (if any) and the apps, then
// ask each app's caps by name:
//
//	plan, err := budget.Plan(budget.Spec{
//		Limit:    60, // max_connections
//		Reserved: 10, // superuser slots, dashboards, migrations, the monitor
//		Pooler:   &budget.Pooler{ServerConns: 15, MaxClients: 200},
//		Apps: []budget.App{
//			{Name: "web", Instances: 4, Weight: 2, Max: 10, Direct: 1},
//			{Name: "worker", Instances: 2, Direct: 2},
//		},
//	})
//	if err != nil {
//		return err // says what does not fit and by how much
//	}
//	caps := plan.For("web") // per instance: MaxConns (pooled), MaxDirectConns
//
// Server connections used are Reserved, plus the pooler's ServerConns, plus
// every app's Direct × Instances, plus, when there is no pooler, every app's
// pooled connections × Instances; they must fit in Limit. With a pooler,
// pooled connections × Instances must instead fit in its MaxClients.
//
// Every instance gets at least max(1, Min) pooled connections. What is left
// of the resource pooled connections consume is shared by Weight, which like
// every figure in an [App] is per instance: an instance of weight 2 gets
// about twice the pooled connections of an instance of weight 1, within each
// app's Min and Max. An app with more instances therefore takes more in
// total, which matches why instances are added. Direct connections are
// granted as asked: in Go, [App.Direct] is taken as is; in a spec file, an
// app that leaves direct out gets 1 per instance, counted
// like any other, and direct: 0 gives it none, which turns its pool's
// direct route off. When the minimums do not fit, [Plan] returns an
// [*InfeasibleError] listing the figures and the apps that take the most.
//
// Read replicas are servers of their own. [Spec.Replicas] names each with
// its own Limit and Reserved, and [App.Replica] is the replica lane's
// connections per instance on each of them (default 0). Every replica is
// checked on its own: Reserved + Σ Replica × Instances ≤ Limit; replica
// connections are granted as asked and never count on the primary. An
// [*InfeasibleError] for a replica names it in [InfeasibleError.Replica]
// and in its text ("budget: replica "r1": needs ...").
//
// The plan hands out everything that is left. With a pooler that can mean
// pooled caps well above the pooler's ServerConns, which is the point of a
// pooler: it queues clients onto its few server connections. To keep
// headroom (for a console, a one-off script, the provider's own services),
// count it in Reserved, or cap apps with Max.
//
// # Spec files and the environment
//
// A spec can live in a YAML or JSON file, read with [LoadFile] or
// [ParseSpec]:
//
//	limit: 60
//	reserved: 10
//	pooler: {server_conns: 15, max_clients: 200}
//	apps:
//	  - {name: web, instances: 4, weight: 2, max: 10} # direct: 1, the default
//	  - {name: worker, instances: 2, direct: 2, max: 20}
//	  - {name: reports, instances: 1, direct: 0, replica: 4} # pooled only, no direct route; 4 per replica
//	replicas: # read replicas, each its own server
//	  - {name: r1, limit: 60, reserved: 5}
//
// Services find it through the SUPAPOOL_BUDGET environment variable
// ([EnvVar]), which [FromEnv] reads and plans; a service then takes its caps
// by its app name. The resulting [Allocation] also gives per-app totals
// ([Allocation.Apps]) to compare live usage against.
//
// # The example
//
// examples/budget prints a plan as a table, each app's pooled and direct
// caps per instance, and shows that naive pool sizes do not fit where the
// plan does. Given a Supabase compute size (-tier or SUPABASE_TIER), it
// fills in the limit and the pooler's figures a spec leaves out, and says
// which source each came from:
//
//	go run ./examples/budget -f examples/budget/seed-free.yaml
//	go run ./examples/budget -f examples/budget/seed-free.yaml -naive 4
//	go run ./examples/budget -f spec.yaml -tier small
package budget
