package appname

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestRoundTrip(t *testing.T) {
	for _, n := range []Name{
		{App: "web"},
		{App: "web", Lane: LaneHeavy},
		{App: "web", Instance: "k3x9q2"},
		{App: "web", Lane: LaneReplica, Instance: "000000"},
		{App: "a/b"},
		{App: "tag#1"},
		{App: "a/heavy", Lane: LaneHeavy},
	} {
		t.Run(n.String(), func(t *testing.T) {
			if got := Parse(n.String()); got != n {
				t.Fatalf("Parse(%q) = %+v, want %+v", n.String(), got, n)
			}
		})
	}
}

func TestParseKeepsOtherNames(t *testing.T) {
	for _, s := range []string{"web", "a/b", "x#12", "x#ABCDEF", "x#abcdefg", "psql", "", "/heavy#"} {
		if got := Parse(s); got.App != s && s != "" {
			t.Errorf("Parse(%q).App = %q, want the whole name", s, got.App)
		}
	}
	if got := Parse("web/heavy"); got != (Name{App: "web", Lane: LaneHeavy}) {
		t.Errorf("Parse(web/heavy) = %+v", got)
	}
}

func TestLongNamesKeepTheirSuffix(t *testing.T) {
	n := Name{App: strings.Repeat("é", 40), Lane: LaneHeavy, Instance: Instance()}
	s := n.String()
	if len(s) > MaxLen || !utf8.ValidString(s) {
		t.Fatalf("%q: %d bytes, valid %v", s, len(s), utf8.ValidString(s))
	}
	got := Parse(s)
	if got.Lane != n.Lane || got.Instance != n.Instance || !strings.HasPrefix(n.App, got.App) {
		t.Fatalf("Parse(%q) = %+v", s, got)
	}
}

func TestInstance(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		id := Instance()
		if !isInstance(id) {
			t.Fatalf("Instance() = %q, not an instance id", id)
		}
		seen[id] = true
	}
	if len(seen) < 990 {
		t.Fatalf("only %d distinct ids in 1000", len(seen))
	}
}

func FuzzParse(f *testing.F) {
	f.Add("web/heavy#k3x9q2")
	f.Fuzz(func(t *testing.T, s string) {
		n := Parse(s)
		if n.String() != s && len(s) <= MaxLen {
			t.Fatalf("Parse(%q).String() = %q", s, n.String())
		}
	})
}
