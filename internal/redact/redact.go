package redact

import (
	"errors"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// Mask replaces every password.
const Mask = "xxxxx"

// Unparseable is what [ConnString] returns for a string that is neither a
// URL nor a keyword/value connection string, where a password cannot be
// found.
const Unparseable = "(unparseable connection string)"

// EncodeHint says how to write a password into a URL.
const EncodeHint = "the password must be percent-encoded (write @ / ? # % and spaces in it as %40 %2F %3F %23 %25 %20)"

// ConnString returns s with every password masked, for logs and errors:
// the userinfo password and password= or sslpassword= query values of a URL
// (of any scheme), and password= and sslpassword= values of a keyword/value
// string, quoted or not. In a malformed URL everything from the user name's
// colon to the last @ is masked. A string that is neither form is replaced
// by [Unparseable].
func ConnString(s string) string {
	s = strings.TrimSpace(s)
	switch n := urlStart(s); {
	case s == "":
		return ""
	case n > 0:
		masked, _ := maskURL(s[n:])
		return s[:n] + masked
	case isKeywordValue(s):
		masked, _ := maskKeywordValue(s)
		return masked
	}
	return Unparseable
}

// Passwords returns the secrets a connection string holds, as written and
// decoded, for [Text] and [Wrap] to mask in messages that quote them. For a
// malformed URL it returns whatever [ConnString] would mask.
func Passwords(s string) []string {
	s = strings.TrimSpace(s)
	var found []string
	switch n := urlStart(s); {
	case n > 0:
		_, found = maskURL(s[n:])
	case isKeywordValue(s):
		_, found = maskKeywordValue(s)
	}
	return found
}

// Value returns s quoted when it cannot hold a secret (a short word, number
// or path), and otherwise a description of it that says what it looks like,
// so an error can mention a value set in the wrong variable without
// printing the password inside it.
func Value(s string) string {
	if safe(s) {
		return strconv.Quote(s)
	}
	if LooksLikeConnString(s) {
		return "a value that looks like a connection string"
	}
	return "a value that is not shown because it may hold a secret"
}

// LooksLikeConnString reports whether s looks like a connection string or
// a credential: a URL, a user:password@host pair or a keyword/value string.
func LooksLikeConnString(s string) bool {
	s = strings.TrimSpace(strings.Trim(strings.TrimSpace(s), `"'`+"`"))
	lower := strings.ToLower(s)
	return strings.Contains(s, "://") || strings.Contains(s, "@") ||
		strings.Contains(lower, "password") || (strings.Contains(s, "=") && strings.ContainsAny(s, " \t"))
}

func safe(s string) bool {
	if len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte(" _.,/~+-", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// Text returns msg with every occurrence of each secret masked, in the
// forms a message quotes it (as is, percent-encoded, Go-quoted), and with
// the credentials of any connection string inside msg masked as by
// [ConnString]. Empty secrets are ignored.
func Text(msg string, secrets ...string) string {
	var forms []string
	seen := map[string]bool{}
	for _, s := range secrets {
		if s == "" {
			continue
		}
		q := strconv.Quote(s)
		for _, f := range []string{s, url.QueryEscape(s), url.PathEscape(s), q[1 : len(q)-1]} {
			if f != "" && !seen[f] {
				seen[f] = true
				forms = append(forms, f)
			}
		}
	}
	if len(forms) > 0 {
		// One pass, longer forms first, so a form containing another is
		// masked whole and masks are never masked again.
		sort.SliceStable(forms, func(i, j int) bool { return len(forms[i]) > len(forms[j]) })
		args := make([]string, 0, 2*len(forms))
		for _, f := range forms {
			args = append(args, f, Mask)
		}
		msg = strings.NewReplacer(args...).Replace(msg)
	}
	return maskEmbedded(msg)
}

// Wrap returns err with its message passed through [Text]; errors.Is and
// errors.As still see err. It returns nil for a nil err.
func Wrap(err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	return &scrubbed{msg: Text(err.Error(), secrets...), err: err}
}

type scrubbed struct {
	msg string
	err error
}

func (e *scrubbed) Error() string { return e.msg }
func (e *scrubbed) Unwrap() error { return e.err }

// URLError returns the reason of a net/url error without the text it
// quotes, which can be the whole URL or the password itself: "invalid
// port", "invalid userinfo", "invalid URL escape".
func URLError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	msg := strings.TrimPrefix(err.Error(), "net/url: ")
	if i := strings.IndexAny(msg, "\"'`"); i >= 0 {
		msg = msg[:i]
	}
	msg = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(msg), ":"))
	if msg == "" {
		return "malformed URL"
	}
	return msg
}

// Unencoded reports whether the URL s (of any scheme) has a user name or
// password that must be percent-encoded before the URL means what its
// author meant: an @, /, ?, # or space, a % that starts no escape, or any
// other character URLs do not allow there. Such a URL is read differently by
// libpq and pgx (which end the user information at the first @) and by
// net/url (which ends it at the last @ before the first / ? or #), so
// neither reading can be trusted.
func Unencoded(s string) bool {
	n := schemeLen(strings.TrimSpace(s))
	if n == 0 {
		return false
	}
	p := strings.TrimSpace(s)[n:]
	sp := splitURL(p)
	if !strings.Contains(p, "@") {
		return false
	}
	if !sp.exact {
		return true
	}
	if sp.userEnd < 0 {
		return false
	}
	ui := p[:sp.userEnd]
	for i := 0; i < len(ui); i++ {
		c := ui[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-._:~!$&'()*+,;=", c) >= 0:
		case c == '%':
			if i+2 >= len(ui) || !isHex(ui[i+1]) || !isHex(ui[i+2]) {
				return true
			}
		default:
			return true
		}
	}
	return false
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
