package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// The quickstart is the first thing a user runs: it must finish cleanly on
// the embedded servers and show each result.
func TestQuickstartEmbedded(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers")
	}
	var out bytes.Buffer
	empty := func(string) string { return "" }
	if code := run(context.Background(), empty, &out); code != 0 {
		t.Fatalf("exit %d:\n%s", code, out.String())
	}
	for _, want := range []string{
		"53300 too many clients",
		"supapool with the same too-high caps...\n       0 of 14000 queries failed",
		"42P05 prepared statement already exists",
		"supapool's pooled route:         0 of 4000 failed",
		"LISTEN needs a session",
		`received "job 42 is ready"`,
		"quickstart_worker    2 connections",
		"Done.",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestQuickstartReportsBadURL(t *testing.T) {
	var out bytes.Buffer
	env := map[string]string{"DATABASE_URL": "postgres://u:hunter2secret@127.0.0.1:1/db?connect_timeout=2"}
	code := run(context.Background(), func(k string) string { return env[k] }, &out)
	if code == 0 {
		t.Fatalf("exit 0 with an unreachable server:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "DATABASE_URL") || strings.Contains(out.String(), "hunter2secret") {
		t.Errorf("want an error naming DATABASE_URL without the password, got:\n%s", out.String())
	}
}

// TestServe proves -serve prints export lines whose URLs answer, and stops
// the servers when its context ends.
func TestServe(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers")
	}
	ctx, cancel := context.WithCancel(context.Background())
	r, w := io.Pipe()
	done := make(chan int, 1)
	go func() { done <- serve(ctx, w); _ = w.Close() }()
	urls := map[string]string{}
	sc := bufio.NewScanner(r)
	for len(urls) < 2 && sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "export ")
		if !ok {
			continue
		}
		name, val, _ := strings.Cut(line, "=")
		urls[name] = strings.Trim(val, "'")
	}
	go func() { _, _ = io.Copy(io.Discard, r) }()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("serve exit %d", code)
		}
	}()
	for _, name := range []string{"DATABASE_URL", "DATABASE_POOLED_URL"} {
		if urls[name] == "" {
			t.Fatalf("no export line for %s", name)
		}
		conn, err := pgx.Connect(ctx, urls[name])
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var one int
		err = conn.QueryRow(ctx, "select 1").Scan(&one)
		_ = conn.Close(ctx)
		if err != nil || one != 1 {
			t.Fatalf("%s: select 1 = %d, %v", name, one, err)
		}
	}
}
