// Command monitor is a terminal dashboard of who holds a PostgreSQL
// server's connections, built on package monitor.
//
//	DATABASE_URL=postgres://... go run ./examples/monitor
//	go run ./examples/monitor -budget examples/budget/seed-free.yaml
//	go run ./examples/monitor -once -json | jq .total
//	go run ./examples/monitor -http 127.0.0.1:8080   # and open http://127.0.0.1:8080/
//
// It refreshes a table of connections per application_name every
// -interval, with the level (green, yellow, red) against max_connections,
// each app's budget when a spec file is given, and the longest open
// transactions. Colours are used only on a terminal, and never when
// NO_COLOR is set. -once prints one snapshot and exits: 0 when the poll
// succeeded, 1 when it failed, 2 on bad usage. -json prints snapshots as
// JSON, one per line, for scripts and cron. -http also serves the web
// dashboard (monitor.Dashboard) at / on that address, beside the terminal
// view; it has no authentication, so bind it to 127.0.0.1.
//
// Use a direct URL rather than a pooler's, and a role with pg_monitor to
// see every backend's state; without it other roles' backends are counted
// as hidden.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/supapool/supapool/budget"
	"github.com/supapool/supapool/monitor"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout)
	stop()
	os.Exit(code)
}

// stderr receives usage and errors, so stdout stays clean JSON with -json.
var stderr io.Writer = os.Stderr

// width is the terminal width the table is laid out for.
const width = 80

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) int {
	fs := flag.NewFlagSet("monitor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	once := fs.Bool("once", false, "poll once, print, and exit")
	asJSON := fs.Bool("json", false, "print snapshots as JSON, one per line")
	interval := fs.Duration("interval", 2*time.Second, "time between refreshes")
	specFile := fs.String("budget", "", "budget spec `file` (YAML or JSON) to compare apps against")
	colour := fs.String("color", "auto", "colours: auto (terminal and no NO_COLOR), always or never")
	top := fs.Int("top", 5, "how many of the longest transactions to list")
	addr := fs.String("http", "", "also serve the web dashboard on this `address` (e.g. 127.0.0.1:8080)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: DATABASE_URL=postgres://... monitor [-once] [-json] [-interval 2s] [-budget spec.yaml]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	url := getenv("DATABASE_URL")
	if url == "" || fs.NArg() > 0 || *interval <= 0 || *top < 0 {
		if url == "" {
			fmt.Fprintln(stderr, "monitor: DATABASE_URL is not set")
		}
		fs.Usage()
		return 2
	}
	var useColour bool
	switch *colour {
	case "auto":
		useColour = isTerminal(stdout) && getenv("NO_COLOR") == "" && getenv("TERM") != "dumb"
	case "always":
		useColour = true
	case "never":
	default:
		fs.Usage()
		return 2
	}

	cfg := monitor.Config{URL: url, Interval: *interval}
	if *specFile != "" {
		spec, err := budget.LoadFile(*specFile)
		if err == nil {
			cfg.Budget, err = budget.Plan(spec)
		}
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
	}
	m, err := monitor.New(cfg)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	defer m.Close()

	show := func(s monitor.Snapshot) error {
		if *asJSON {
			b, err := json.Marshal(s)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(stdout, "%s\n", b)
			return err
		}
		var b strings.Builder
		if !*once && useColour {
			b.WriteString("\x1b[H\x1b[2J") // home and clear: redraw in place
		}
		render(&b, s, *top, useColour)
		if !*once && !useColour {
			b.WriteString("\n")
		}
		_, err := io.WriteString(stdout, b.String())
		return err
	}

	if *addr != "" && !*once {
		ln, err := net.Listen("tcp", *addr)
		if err != nil {
			fmt.Fprintln(stderr, "monitor: -http:", err)
			return 2
		}
		srv := &http.Server{Handler: m.Dashboard(), ReadHeaderTimeout: 10 * time.Second}
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = srv.Serve(ln)
		}()
		defer func() {
			_ = srv.Close()
			<-done
		}()
		fmt.Fprintf(stderr, "monitor: dashboard on http://%s/\n", ln.Addr())
	}

	if *once {
		s, err := m.Poll(ctx)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		if err := show(s); err != nil {
			fmt.Fprintln(stderr, "monitor:", err)
			return 1
		}
		return 0
	}

	t := time.NewTicker(*interval)
	defer t.Stop()
	for {
		s, err := m.Poll(ctx)
		if ctx.Err() != nil {
			return 0
		}
		if err != nil && *asJSON {
			// The JSON line says stale too; this is for the script's log.
			fmt.Fprintln(stderr, err)
		}
		if err := show(s); err != nil {
			fmt.Fprintln(stderr, "monitor:", err)
			return 1
		}
		select {
		case <-ctx.Done():
			return 0
		case <-t.C:
		}
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// ANSI colours, applied only when paint is on.
const (
	reset  = "\x1b[0m"
	bold   = "\x1b[1m"
	red    = "\x1b[31m"
	green  = "\x1b[32m"
	yellow = "\x1b[33m"
	dim    = "\x1b[2m"
)

func levelColour(l monitor.Level) string {
	switch l {
	case monitor.Red:
		return red
	case monitor.Yellow:
		return yellow
	}
	return green
}

// render writes one frame, no line wider than width columns.
func render(w *strings.Builder, s monitor.Snapshot, top int, colour bool) {
	paint := func(code, text string) string {
		if !colour {
			return text
		}
		return code + text + reset
	}

	// Header: level on the right.
	left := "supapool monitor"
	if !s.Time.IsZero() {
		left += "  " + s.Time.Format("2006-01-02 15:04:05")
		left += fmt.Sprintf("  poll %s", s.PollDuration.Round(100*time.Microsecond))
	}
	lvl := "[" + strings.ToUpper(s.Level.String()) + "]"
	fmt.Fprintf(w, "%s%s%s\n", paint(bold, left), strings.Repeat(" ", max(1, width-utf8.RuneCountInString(left)-len(lvl))), paint(bold+levelColour(s.Level), lvl))
	if s.Stale {
		msg := "STALE: " + s.Err
		if s.Failures > 0 {
			msg = fmt.Sprintf("STALE (%d failed polls): %s", s.Failures, s.Err)
		}
		fmt.Fprintln(w, paint(red, clip(msg, width)))
		if s.Time.IsZero() {
			return
		}
	}

	// Totals against max_connections, with a bar.
	used := fmt.Sprintf("connections %d/%d", s.Total, s.MaxConnections)
	if s.Reserved > 0 {
		used += fmt.Sprintf(" (%d reserved)", s.Reserved)
	}
	const barWidth = 20
	filled := 0
	if s.MaxConnections > 0 {
		filled = min(barWidth, s.Total*barWidth/s.MaxConnections)
	}
	bar := strings.Repeat("#", filled) + strings.Repeat(".", barWidth-filled)
	limits := fmt.Sprintf("yellow >=%g red >%g", s.YellowAt, s.RedAbove)
	if len(used)+len(bar)+len(limits)+4 > width {
		bar = "" // huge servers: the numbers matter more than the bar
	}
	fmt.Fprintf(w, "%s  %s  %s\n", used, paint(levelColour(s.Level), bar), limits)

	var states []string
	for _, st := range []string{monitor.StateActive, monitor.StateIdle, monitor.StateIdleInTransaction, monitor.StateIdleInTxAborted} {
		if n := s.ByState[st]; n > 0 || st != monitor.StateIdleInTxAborted {
			states = append(states, fmt.Sprintf("%s %d", st, n))
		}
	}
	if s.Hidden > 0 {
		states = append(states, fmt.Sprintf("hidden %d", s.Hidden))
	}
	fmt.Fprintln(w, clip(strings.Join(states, "  "), width))
	fmt.Fprintln(w)

	// Per app, biggest first.
	apps := append([]monitor.AppUsage(nil), s.Apps...)
	sort.SliceStable(apps, func(i, j int) bool { return apps[i].Total > apps[j].Total })
	fmt.Fprintf(w, "%-24s %5s %6s %5s %5s %4s %9s %9s\n", "APPLICATION", "TOTAL", "ACTIVE", "IDLE", "IN TX", "WAIT", "OLDEST TX", "BUDGET")
	for _, a := range apps {
		inTx := a.ByState[monitor.StateIdleInTransaction] + a.ByState[monitor.StateIdleInTxAborted]
		b := "-"
		if a.Planned {
			b = fmt.Sprintf("%d/%d", a.Total, a.Budget)
		}
		line := fmt.Sprintf("%-24s %5d %6d %5d %5d %4d %9s %9s", clip(orDash(a.Application), 24), a.Total,
			a.ByState[monitor.StateActive], a.ByState[monitor.StateIdle], inTx, a.Waiting, age(a.LongestXact), b)
		switch {
		case a.Over:
			line = paint(red, line+" OVER")
		case a.Total == 0:
			line = paint(dim, line)
		}
		fmt.Fprintln(w, line)
	}

	// Longest transactions.
	groups := make([]monitor.Group, 0, len(s.Groups))
	for _, g := range s.Groups {
		if g.LongestXact > 0 {
			groups = append(groups, g)
		}
	}
	sort.SliceStable(groups, func(i, j int) bool { return groups[i].LongestXact > groups[j].LongestXact })
	if len(groups) > top {
		groups = groups[:top]
	}
	if len(groups) == 0 {
		return
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "%-22s %-12s %-12s %-21s %9s\n", "LONGEST TRANSACTIONS", "DATABASE", "USER", "STATE", "AGE")
	for _, g := range groups {
		line := fmt.Sprintf("%-22s %-12s %-12s %-21s %9s", clip(orDash(g.Application), 22), clip(g.Database, 12),
			clip(g.User, 12), clip(g.State, 21), age(g.LongestXact))
		if g.LongestIdleInTx > 0 {
			line = paint(yellow, line)
		}
		fmt.Fprintln(w, line)
	}
}

// age prints a duration short enough for a 9-column cell.
func age(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Hour:
		return d.Round(time.Second).String()
	case d < 100*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// clip shortens s to n runes, marking the cut.
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "~"
}
