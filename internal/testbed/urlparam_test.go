package testbed

import "testing"

func TestWithParams(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"postgres://h/db", "postgres://h/db?a=1&b=2"},
		{"postgres://h/db?sslmode=disable", "postgres://h/db?sslmode=disable&a=1&b=2"},
	} {
		if got := WithParams(c.in, "a=1", "b=2"); got != c.want {
			t.Errorf("WithParams(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
