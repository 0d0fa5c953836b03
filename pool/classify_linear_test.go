package pool

import (
	"strings"
	"testing"
)

// adversarialInputs build SQL texts of about n bytes that a scanner which
// rescans would take quadratic time on: openers that never close,
// near-miss dollar tags, deep nesting, long continuations.
var adversarialInputs = []struct {
	name string
	make func(n int) string
}{
	{"dollar-near-misses", func(n int) string { return "select $aaaaaaaa$" + fill(n, "$aaaaaaab$ ") }},
	{"dollar-openers", func(n int) string { return fill(n, "$a $b$ $c ") }},
	{"unclosed-tags", func(n int) string { return "select " + fill(n, "$x1$ $x2$ ") }},
	{"comment-openers", func(n int) string { return "select 1 " + fill(n, "/*") }},
	{"comment-stars", func(n int) string { return "select 1 /* " + fill(n, "*/* ") }},
	{"line-comments-cr", func(n int) string { return fill(n, "select 1 --\r") }},
	{"e-escapes", func(n int) string { return "select E'" + fill(n, `\'`) }},
	{"continuations", func(n int) string { return "select 'a'" + fill(n, "\n'b'") }},
	{"e-continuation-misses", func(n int) string { return "select " + fill(n, "E'a' -- c\n, ") }},
	{"quoted-idents", func(n int) string { return "select " + fill(n, `"a""b", `) }},
	{"statements", func(n int) string { return fill(n, "select 1; ") }},
	{"parens", func(n int) string { return "select " + fill(n, "pg_advisory_lockx(") }},
	{"set-config-true", func(n int) string { return fill(n, "select set_config('a.b', 'c', true);") }},
	{"do-body", func(n int) string { return "do $$ begin " + fill(n, "perform 1; ") + " end $$" }},
	{"do-quoted-body", func(n int) string { return "do 'begin " + fill(n, "raise notice ''x''; ") + " end'" }},
}

// fill repeats unit to about n bytes.
func fill(n int, unit string) string { return strings.Repeat(unit, n/len(unit)+1)[:n] }

// BenchmarkClassifyAdversarial runs classify on each adversarial input at
// 1 KiB and 1 MiB. A linear scanner shows the same ns/byte at both sizes;
// a quadratic one a thousand times more at 1 MiB.
func BenchmarkClassifyAdversarial(b *testing.B) {
	for _, in := range adversarialInputs {
		for _, size := range []struct {
			name string
			n    int
		}{{"1KiB", 1 << 10}, {"1MiB", 1 << 20}} {
			sql := in.make(size.n)
			b.Run(in.name+"/"+size.name, func(b *testing.B) {
				b.SetBytes(int64(len(sql)))
				b.ReportAllocs()
				for b.Loop() {
					classify(sql)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(sql)), "ns/byte")
			})
		}
	}
}
