// Command budget prints the connection plan for a spec file, or explains why
// the spec does not fit.
//
//	go run ./examples/budget -f examples/budget/seed-free.yaml
//	go run ./examples/budget -f examples/budget/seed-free.yaml -naive 4
//	go run ./examples/budget -f spec.yaml -tier small
//
// The table shows each app's caps per instance: pooled connections and
// direct ones (an app whose spec leaves direct out gets 1; direct: 0 gives
// it none, which turns its pool's direct route off).
//
// With -tier SIZE, or SUPABASE_TIER=SIZE when -tier is not given, it takes
// the Supabase compute size's figures for what the spec leaves out: limit
// (max_connections), and within a pooler section, server_conns (the default
// pool size) and max_clients (the pooler's client limit). A figure the spec
// sets wins over the tier's; each line says which source won. A spec with no
// pooler section plans no pooler; write pooler: {} to take both of the
// tier's figures.
//
// With -naive N it first tries the same apps the way services size their
// pools by default, N connections per instance straight to the server with
// no pooler, and shows why that does not fit, then prints the plan.
//
// It exits 0 when the plan fits, 1 when it does not or the file is bad, and
// 2 on bad usage, an unknown tier included.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"

	"github.com/supapool/supapool/budget"
	"github.com/supapool/supapool/supabase"
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

const usage = "usage: budget -f spec.yaml [-tier size] [-naive N]"

func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("budget", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("f", "", "spec file, YAML or JSON (required)")
	tierFlag := fs.String("tier", "", "Supabase compute `size` (nano, micro, small, ..., 16xl, free) for the limit and\n"+
		"pooler figures the spec leaves out (default $"+supabase.EnvTier+")")
	naive := fs.Int("naive", 0, "first show the apps with `N` connections per instance, no pooler")
	fs.Usage = func() {
		fmt.Fprintln(stderr, usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *file == "" || fs.NArg() > 0 || *naive < 0 {
		fs.Usage()
		return 2
	}
	tier, tierFrom, err := pickTier(*tierFlag, getenv)
	if err != nil {
		fmt.Fprintln(stderr, wrap(err.Error(), 78))
		return 2
	}
	spec, err := budget.LoadFile(*file)
	if err != nil {
		fmt.Fprintln(stderr, wrap(err.Error(), 78))
		return 1
	}
	if tier != nil {
		for _, line := range fillFromTier(&spec, *tier, tierFrom) {
			fmt.Fprintln(stdout, wrap(line, 78))
		}
		fmt.Fprintln(stdout)
	} else if spec.Limit == 0 {
		fmt.Fprintln(stderr, wrap(fmt.Sprintf("budget: spec %s: limit is not set; set it, or name a compute size with -tier or %s",
			*file, supabase.EnvTier), 78))
		return 1
	}

	if *naive > 0 {
		fmt.Fprintf(stdout, "naive: %d connections per instance for every app, no pooler\n", *naive)
		if plan, err := budget.Plan(naiveSpec(spec, *naive)); err != nil {
			fmt.Fprintln(stdout, wrap(err.Error(), 78))
		} else {
			printPlan(stdout, plan)
		}
		fmt.Fprintln(stdout)
		fmt.Fprintln(stdout, "planned:")
	}

	plan, err := budget.Plan(spec)
	if err != nil {
		fmt.Fprintln(stderr, wrap(err.Error(), 78))
		return 1
	}
	printPlan(stdout, plan)
	return 0
}

// pickTier reads the compute size from -tier, or else SUPABASE_TIER. It
// returns nil when neither names one, and otherwise says where it came from.
func pickTier(flagValue string, getenv func(string) string) (*supabase.Tier, string, error) {
	name, from := strings.TrimSpace(flagValue), "-tier"
	env := strings.TrimSpace(getenv(supabase.EnvTier))
	switch {
	case name == "" && env == "":
		return nil, "", nil
	case name == "":
		name, from = env, supabase.EnvTier
	case env != "":
		from += fmt.Sprintf(", over %s=%s", supabase.EnvTier, env)
	}
	t, err := supabase.ParseTier(name)
	if err != nil {
		// Name the flag or variable, not the package that parsed it.
		what, _, _ := strings.Cut(from, ",")
		return nil, "", fmt.Errorf("budget: %s: %s", what, strings.TrimPrefix(err.Error(), "supabase: "))
	}
	return &t, from, nil
}

// fillFromTier sets the figures s leaves out (zero) from t, and returns one
// line per figure saying whose value the plan uses.
func fillFromTier(s *budget.Spec, t supabase.Tier, from string) []string {
	lines := []string{fmt.Sprintf("tier %s, from %s", t.Name, from)}
	fill := func(field string, dst *int, tierValue int) {
		if *dst == 0 {
			*dst = tierValue
			lines = append(lines, fmt.Sprintf("%s %d: from the tier", field, *dst))
			return
		}
		lines = append(lines, fmt.Sprintf("%s %d: from the spec (the tier's is %d)", field, *dst, tierValue))
	}
	fill("limit", &s.Limit, t.MaxConnections)
	if s.Pooler == nil {
		lines = append(lines, "pooler: none in the spec, so none planned (pooler: {} takes the tier's)")
		return lines
	}
	fill("pooler.server_conns", &s.Pooler.ServerConns, t.DefaultPoolSize)
	fill("pooler.max_clients", &s.Pooler.MaxClients, t.PoolerMaxClients)
	return lines
}

// naiveSpec is what happens without a plan: every instance opens n
// connections of its own straight to the server.
func naiveSpec(s budget.Spec, n int) budget.Spec {
	out := budget.Spec{Limit: s.Limit, Reserved: s.Reserved}
	for _, a := range s.Apps {
		// Direct 0: a naive pool has no separate direct route.
		out.Apps = append(out.Apps, budget.App{Name: a.Name, Instances: a.Instances, Min: n, Max: n})
	}
	return out
}

func printPlan(w io.Writer, plan *budget.Allocation) {
	spec := plan.Spec()
	// The other columns take 62; names get the rest of 80 at most.
	const maxName = 18
	nameWidth := len("reserved")
	for _, a := range spec.Apps {
		nameWidth = max(nameWidth, min(utf8.RuneCountInString(a.Name), maxName))
	}
	row := func(name, inst, pooled, direct, server, clients, share string) {
		if r := []rune(name); len(r) > nameWidth {
			name = string(r[:nameWidth-1]) + "…"
		}
		fmt.Fprintf(w, "%-*s %9s %12s %12s %7s %7s %9s\n", nameWidth, name, inst, pooled, direct, server, clients, share)
	}
	pct := func(n, of int) string { return fmt.Sprintf("%.1f%%", 100*float64(n)/float64(of)) }
	clients := func(n int) string {
		if spec.Pooler == nil {
			return "-"
		}
		return fmt.Sprint(n)
	}

	row("app", "instances", "pooled/inst", "direct/inst", "server", "pooler", "of limit")
	instances := 0
	for _, a := range plan.Apps() {
		instances += a.Instances
		row(a.Name, fmt.Sprint(a.Instances), fmt.Sprint(a.Alloc.MaxConns), fmt.Sprint(a.Alloc.MaxDirectConns),
			fmt.Sprint(a.ServerConns), clients(a.PoolerClients), pct(a.ServerConns, spec.Limit))
	}
	if spec.Reserved > 0 {
		row("reserved", "", "", "", fmt.Sprint(spec.Reserved), "", pct(spec.Reserved, spec.Limit))
	}
	if spec.Pooler != nil {
		row("pooler", "", "", "", fmt.Sprint(spec.Pooler.ServerConns), "", pct(spec.Pooler.ServerConns, spec.Limit))
	}
	row("total", fmt.Sprint(instances), "", "", fmt.Sprint(plan.ServerConns()), clients(plan.PoolerClients()),
		pct(plan.ServerConns(), spec.Limit))

	summary := fmt.Sprintf("server conns %d of %d", plan.ServerConns(), spec.Limit)
	if spec.Pooler != nil {
		summary += fmt.Sprintf(", pooler clients %d of %d", plan.PoolerClients(), spec.Pooler.MaxClients)
	}
	fmt.Fprintln(w, summary)
	// Each replica is a server of its own: its line, and who reads there.
	for _, r := range plan.Replicas() {
		var readers []string
		for _, a := range plan.Apps() {
			if a.Alloc.MaxReplicaConns > 0 {
				readers = append(readers, fmt.Sprintf("%s %d×%d", a.Name, a.Instances, a.Alloc.MaxReplicaConns))
			}
		}
		fmt.Fprintf(w, "replica %s: server conns %d of %d (reserved %d; %s)\n", r.Name, r.ServerConns, r.Limit, r.Reserved, strings.Join(readers, ", "))
	}
}

// wrap breaks an explanation into lines of at most width columns, indenting
// continuations, so a long infeasibility message stays readable in a
// terminal. Existing line breaks (joined errors) are kept.
func wrap(s string, width int) string {
	var out []string
	for _, para := range strings.Split(s, "\n") {
		line := ""
		for _, word := range strings.Fields(para) {
			switch {
			case line == "":
				line = word
			case len([]rune(line))+1+len([]rune(word)) > width:
				out = append(out, line)
				line = "    " + word
			default:
				line += " " + word
			}
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}
