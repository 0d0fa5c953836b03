package redact

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"strings"
	"testing"
)

const pw = "s3cr3t-PW"

func TestRedactConnString(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"empty", "", ""},
		{"url", "postgres://u:" + pw + "@h:5432/db?sslmode=require", "postgres://u:xxxxx@h:5432/db?sslmode=require"},
		{"url without password", "postgres://u@h/db", "postgres://u@h/db"},
		{"query password", "postgres://h/db?password=" + pw, "postgres://h/db?password=xxxxx"},
		{"encoded query keys", "postgresql://h/db?pass%77ord=" + pw + "&sslpassword=" + pw + "&sslmode=disable", "postgresql://h/db?pass%77ord=xxxxx&sslpassword=xxxxx&sslmode=disable"},
		{"at in a query value", "postgres://u:" + pw + "@h/db?application_name=a@b", "postgres://u:xxxxx@h/db?application_name=a@b"},
		{"socket in query", "postgres://u:" + pw + "@/db?host=/run/postgresql", "postgres://u:xxxxx@/db?host=/run/postgresql"},
		{"socket in host", "postgres://u:" + pw + "@%2Frun%2Fpostgresql/db", "postgres://u:xxxxx@%2Frun%2Fpostgresql/db"},
		{"unencoded @", "postgres://u:p@ss" + pw + "@h/db", "postgres://u:xxxxx@h/db"},
		{"unencoded /", "postgres://u:pa/ss" + pw + "@h/db", "postgres://u:xxxxx@h/db"},
		{"unencoded ?", "postgres://u:pa?ss" + pw + "@h/db", "postgres://u:xxxxx@h/db"},
		{"unencoded #", "postgres://u:pa#ss" + pw + "@h/db", "postgres://u:xxxxx@h/db"},
		{"unencoded space", "postgres://u:pa ss" + pw + "@h/db", "postgres://u:xxxxx@h/db"},
		{"digits then /", "postgres://u:1234/" + pw + "@h/db", "postgres://u:xxxxx@h/db"},
		{"other scheme", "mysql://u:" + pw + "@h/db", "mysql://u:xxxxx@h/db"},
		{"keyword", "host=h password=" + pw + " dbname=d", "host=h password=xxxxx dbname=d"},
		{"keyword spaced", "host=h password = " + pw + " dbname=d", "host=h password = xxxxx dbname=d"},
		{"keyword quoted", `host=h password='se cr\'et` + pw + `' dbname=d`, "host=h password=xxxxx dbname=d"},
		{"keyword escaped", `host=h password=se\ cret` + pw + ` dbname=d`, "host=h password=xxxxx dbname=d"},
		{"keyword sslpassword", "sslpassword=" + pw + " host=h", "sslpassword=xxxxx host=h"},
		{"keyword space in bare password", "host=h password=se " + pw + " dbname=d", "host=h password=xxxxx xxxxx"},
		{"keyword unterminated quote", "host=h password='" + pw, "host=h password=xxxxx"},
		{"keyword unterminated quote elsewhere", "host='h password=" + pw, "host=xxxxx"},
		{"neither", "just " + pw, Unparseable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ConnString(tt.in)
			if got != tt.want {
				t.Errorf("ConnString(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if strings.Contains(got, pw) {
				t.Errorf("password left in %q", got)
			}
		})
	}
}

func TestRedactPasswords(t *testing.T) {
	got := Passwords("postgres://u:a%2Fb@h/db?password=c%20d")
	for _, want := range []string{"a%2Fb", "a/b", "c%20d", "c d"} {
		if !contains(got, want) {
			t.Errorf("Passwords = %q, missing %q", got, want)
		}
	}
	got = Passwords(`host=h password='se cr\'et'`)
	for _, want := range []string{`'se cr\'et'`, "se cr'et"} {
		if !contains(got, want) {
			t.Errorf("Passwords = %q, missing %q", got, want)
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func TestRedactValue(t *testing.T) {
	tests := []struct{ in, want string }{
		{"many", `"many"`},
		{"-1", `"-1"`},
		{"/etc/supapool/budget.yaml", `"/etc/supapool/budget.yaml"`},
		{"postgres://u:" + pw + "@h/db", "a value that looks like a connection string"},
		{"host=h password=" + pw, "a value that looks like a connection string"},
		{"u:" + pw + "@h", "a value that looks like a connection string"},
		{"eyJhbGciOiJIUzI1NiJ9." + strings.Repeat("x", 80), "a value that is not shown because it may hold a secret"},
		{"a\"b", "a value that is not shown because it may hold a secret"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := Value(tt.in); got != tt.want {
				t.Errorf("Value(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestRedactText(t *testing.T) {
	tests := []struct {
		name, msg string
		secrets   []string
		want      string
	}{
		{"plain", "bad " + pw + " here", []string{pw}, "bad xxxxx here"},
		{"encoded", "bad " + url.QueryEscape("a b/c") + " here", []string{"a b/c"}, "bad xxxxx here"},
		{"go-quoted", fmt.Sprintf("bad %q here", "a\"b\x01c"), []string{"a\"b\x01c"}, `bad "xxxxx" here`},
		{"embedded url", "cannot parse `postgres://u:" + pw + "@h/db`: invalid port", nil, "cannot parse `postgres://u:xxxxx@h/db`: invalid port"},
		{"embedded keyword", "got host=h password='" + pw + "' dbname=d", nil, "got host=h password=xxxxx dbname=d"},
		{"no secrets", "password authentication failed", []string{""}, "password authentication failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Text(tt.msg, tt.secrets...); got != tt.want {
				t.Errorf("Text = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRedactWrap(t *testing.T) {
	base := fmt.Errorf("open postgres://u:%s@h: %w", pw, fs.ErrNotExist)
	err := Wrap(base, pw)
	if strings.Contains(err.Error(), pw) {
		t.Fatalf("password in %q", err)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("errors.Is lost")
	}
	if Wrap(nil) != nil {
		t.Fatal("Wrap(nil) != nil")
	}
}

func TestRedactURLError(t *testing.T) {
	tests := []struct{ raw, want string }{
		{"postgres://u:" + pw + "@h:port/db", "invalid port"},
		{"postgres://u:pa" + pw + "%zz@h/db", "invalid URL escape"},
		{"postgres://u:pa " + pw + "@h/db", "invalid userinfo"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			_, err := url.Parse(tt.raw)
			if err == nil {
				t.Fatal("url.Parse accepted it")
			}
			if got := URLError(err); got != tt.want {
				t.Errorf("URLError = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRedactUnencoded(t *testing.T) {
	tests := []struct {
		raw  string
		want bool
	}{
		{"postgres://u:pw@h:5432/db", false},
		{"postgres://u:p%40ss@h/db", false},
		{"postgres://h/db?application_name=a@b", false},
		{"postgres://u:pw@h/db?application_name=a@b", false},
		{"postgres://u:pw@/db?host=/run/postgresql", false},
		{"postgres://u:pw@%2Frun%2Fpostgresql/db", false},
		{"postgres://h:5432/db", false},
		{"host=h password=a@b", false},
		{"postgres://u:p@ss@h/db", true},
		{"postgres://u:pa/ss@h/db", true},
		{"postgres://u:12/34@h/db", true},
		{"postgres://u:pa?ss@h/db", true},
		{"postgres://u:pa#ss@h/db", true},
		{"postgres://u:pa ss@h/db", true},
		{"postgres://u:pa%ss@h/db", true},
		{"postgres://u:pa\"ss@h/db", true},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			if got := Unencoded(tt.raw); got != tt.want {
				t.Errorf("Unencoded(%q) = %v, want %v", tt.raw, got, tt.want)
			}
		})
	}
}

// Whatever the password, ConnString and Text with Passwords never show it.
func FuzzRedactConnString(f *testing.F) {
	for _, s := range []string{"p@ss:w/rd#?", "se cr'et\\", "x", "%zz", "a=b c"} {
		f.Add(s, "h:5432/db?sslmode=disable")
	}
	f.Fuzz(func(t *testing.T, password, rest string) {
		if len(password) < 4 || strings.Contains(Mask, password) {
			return
		}
		kv := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
		builds := []func(string) string{
			func(pw string) string { return "postgres://user:" + url.QueryEscape(pw) + "@" + rest },
			func(pw string) string { return "postgres://user:" + url.PathEscape(pw) + "@" + rest },
			func(pw string) string { return "postgres://h/db?password=" + url.QueryEscape(pw) + "&" + rest },
			func(pw string) string { return "host=h password='" + kv.Replace(pw) + "' " + rest },
		}
		outputs := func(s string) string {
			return ConnString(s) + "\n" + Text("cannot parse `"+s+"`", Passwords(s)...)
		}
		for _, build := range builds {
			// What the same string shows with another password tells a
			// leak from a password that happens to match other text.
			other := outputs(build("\x01other\x01"))
			if out := outputs(build(password)); strings.Contains(out, password) && !strings.Contains(other, password) {
				t.Fatalf("password %q left in %q", password, out)
			}
		}
	})
}

func TestRedactBadPortIsNotAPasswordProblem(t *testing.T) {
	if Unencoded("postgres://u:" + pw + "@h:port/db") {
		t.Error("a bad port after a clean user information is reported as an encoding problem")
	}
	if got := ConnString("postgres://u:" + pw + "@h:port/db"); got != "postgres://u:xxxxx@h:port/db" {
		t.Errorf("ConnString = %q", got)
	}
}
