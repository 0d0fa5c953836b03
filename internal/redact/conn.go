package redact

import (
	"net/url"
	"strings"
)

// Spaces are the bytes that separate keyword/value pairs, as libpq reads
// them.
const Spaces = " \t\n\r\v\f"

// schemeLen returns the length of the "scheme://" s starts with, or 0.
func schemeLen(s string) int {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		case i > 0 && c == ':' && strings.HasPrefix(s[i:], "://"):
			return i + 3
		default:
			return 0
		}
	}
	return 0
}

// urlStart returns where the part of a URL after "scheme://" begins, or 0
// for a string that is not a URL. A string is a URL when it starts with a
// scheme, or when "://" comes before its first = (a malformed scheme still
// makes a URL, not a keyword/value string).
func urlStart(s string) int {
	if n := schemeLen(s); n > 0 {
		return n
	}
	i := strings.Index(s, "://")
	if eq := strings.IndexByte(s, '='); i < 0 || (eq >= 0 && eq < i) {
		return 0
	}
	return i + 3
}

func isKeywordValue(s string) bool { return urlStart(s) == 0 && strings.Contains(s, "=") }

func isSecretKey(k string) bool {
	k = strings.ToLower(strings.TrimSpace(k))
	return k == "password" || k == "sslpassword"
}

// urlSplit is how the part of a URL after "scheme://" divides.
type urlSplit struct {
	// userEnd is the index of the @ that ends the user information as
	// libpq and pgx read it (the first @ before any /), or -1.
	userEnd int
	// exact says that reading is unambiguous: net/url reads the same user
	// information and no @ is left in the host; without user information,
	// also every port is a number and no @ is in the database name, where a
	// password with an unencoded / would strand its parts.
	exact bool
}

func splitURL(p string) urlSplit {
	sp := urlSplit{userEnd: -1, exact: true}
	rest := p
	if i := strings.IndexAny(p, "@/"); i >= 0 && p[i] == '@' {
		sp.userEnd = i
		rest = p[i+1:]
		// net/url ends the authority at the first ? or # too.
		if j := strings.IndexAny(p, "?#"); j >= 0 && j < i {
			sp.exact = false
		}
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	if strings.Contains(rest[:end], "@") {
		sp.exact = false
	}
	if sp.userEnd >= 0 {
		return sp
	}
	// No user information as pgx reads it: a password with an unencoded /
	// puts its start in the port and its @ in the database name.
	if !portsNumeric(rest[:end]) {
		sp.exact = false
	}
	if path, ok := strings.CutPrefix(rest[end:], "/"); ok {
		if q := strings.IndexAny(path, "?#"); q >= 0 {
			path = path[:q]
		}
		if strings.Contains(path, "@") {
			sp.exact = false
		}
	}
	return sp
}

// portsNumeric reports whether every host[:port] of a host list has a
// port of digits or none.
func portsNumeric(hostport string) bool {
	for _, h := range strings.Split(hostport, ",") {
		if strings.HasPrefix(h, "[") {
			end := strings.IndexByte(h, ']')
			if end < 0 {
				return false
			}
			h = h[end+1:]
			if h != "" && h[0] != ':' {
				return false
			}
		}
		_, port, ok := strings.Cut(h, ":")
		if !ok {
			continue
		}
		for i := 0; i < len(port); i++ {
			if port[i] < '0' || port[i] > '9' {
				return false
			}
		}
	}
	return true
}

// maskURL masks the passwords of p, a URL after its "scheme://", and
// returns the secrets it masked.
func maskURL(p string) (string, []string) {
	var b strings.Builder
	var found []string
	sp := splitURL(p)
	rest := p
	userEnd := sp.userEnd
	if !sp.exact {
		// Where the password ends cannot be known: mask up to the last @.
		userEnd = strings.LastIndexByte(p, '@')
	}
	if userEnd >= 0 {
		user, pw, hasPW := strings.Cut(p[:userEnd], ":")
		b.WriteString(user)
		if hasPW {
			b.WriteString(":" + Mask)
			found = appendForms(found, pw)
		}
		b.WriteByte('@')
		rest = p[userEnd+1:]
	}
	qi := strings.IndexByte(rest, '?')
	if qi < 0 {
		b.WriteString(rest)
		return b.String(), found
	}
	b.WriteString(rest[:qi+1])
	for i, pair := range strings.Split(rest[qi+1:], "&") {
		if i > 0 {
			b.WriteByte('&')
		}
		key, val, ok := strings.Cut(pair, "=")
		if ok && isSecretKey(decodeLenient(key)) {
			b.WriteString(key + "=" + Mask)
			found = appendForms(found, val)
			continue
		}
		b.WriteString(pair)
	}
	return b.String(), found
}

// appendForms adds a secret as written and as decoded.
func appendForms(found []string, raw string) []string {
	if raw == "" {
		return found
	}
	found = append(found, raw)
	if d := decodeLenient(raw); d != raw && d != "" {
		found = append(found, d)
	}
	if d, err := url.QueryUnescape(raw); err == nil && d != raw && d != "" {
		found = append(found, d)
	}
	return found
}

// decodeLenient decodes valid percent escapes and keeps anything else.
func decodeLenient(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}

// maskKeywordValue masks the password values of a keyword/value string,
// reading it as libpq and pgx do: key = value pairs separated by spaces,
// values in single quotes or bare, with backslash escapes in both. Where
// the string stops making sense (a bare word, an unterminated quote), the
// rest is masked, because it may be what is left of a password.
func maskKeywordValue(s string) (string, []string) {
	var b strings.Builder
	var found []string
	for {
		t := strings.TrimLeft(s, Spaces)
		b.WriteString(s[:len(s)-len(t)])
		if s = t; s == "" {
			break
		}
		eq := strings.IndexByte(s, '=')
		if eq < 0 || strings.TrimSpace(s[:eq]) == "" || strings.ContainsAny(strings.TrimSpace(s[:eq]), Spaces) {
			b.WriteString(Mask)
			found = appendWords(found, s)
			break
		}
		secret := isSecretKey(s[:eq])
		b.WriteString(s[:eq+1])
		s = s[eq+1:]
		t = strings.TrimLeft(s, Spaces)
		b.WriteString(s[:len(s)-len(t)])
		s = t
		raw, val, rest, ok := KeywordValue(s)
		if !ok {
			b.WriteString(Mask)
			found = appendWords(found, s)
			break
		}
		s = rest
		if secret {
			b.WriteString(Mask)
			found = append(found, raw)
			if val != raw && val != "" {
				found = append(found, val)
			}
			continue
		}
		if i := strings.Index(raw, "://"); i >= 0 {
			// A URL as a value still hides its password.
			masked, more := maskURL(raw[i+3:])
			raw = raw[:i+3] + masked
			found = append(found, more...)
		}
		b.WriteString(raw)
	}
	return b.String(), found
}

// appendWords adds a masked remainder whole and word by word, since a
// message may quote any one of its words.
func appendWords(found []string, rest string) []string {
	found = append(found, rest)
	for _, w := range strings.Fields(rest) {
		found = append(found, w, strings.Trim(w, `'`))
	}
	return found
}

// KeywordValue reads the value at the start of s, which follows a key's =
// in a keyword/value connection string, as libpq and pgx read it: in
// single quotes or bare up to the next space, a backslash escaping the
// next byte in both. It returns the value as written (quotes included),
// unescaped, and what follows; ok is false for a quote that is never
// closed.
func KeywordValue(s string) (raw, val, rest string, ok bool) {
	if strings.HasPrefix(s, "'") {
		i := 1
		for ; i < len(s) && s[i] != '\''; i++ {
			if s[i] == '\\' {
				i++
			}
		}
		if i >= len(s) {
			return "", "", s, false
		}
		return s[:i+1], unescape(s[1:i]), s[i+1:], true
	}
	i := 0
	for ; i < len(s) && strings.IndexByte(Spaces, s[i]) < 0; i++ {
		if s[i] == '\\' {
			i++
		}
	}
	i = min(i, len(s))
	return s[:i], unescape(s[:i]), s[i:], true
}

// unescape applies libpq's rule: a backslash is dropped and the next byte
// taken literally.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' {
			i++
			if i == len(s) {
				break
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// maskEmbedded masks the credentials of connection strings quoted inside
// a message: URLs (up to the next space or quote) and password= pairs.
func maskEmbedded(msg string) string {
	if !strings.Contains(msg, "://") && !strings.Contains(strings.ToLower(msg), "password") {
		return msg
	}
	var b strings.Builder
	for i := 0; i < len(msg); {
		n := 0
		if i == 0 || !isSchemeByte(msg[i-1]) {
			// Only where a word starts, so a long word is scanned once.
			n = schemeLen(msg[i:])
		}
		if n > 0 {
			end := i + n
			for end < len(msg) && strings.IndexByte(Spaces+"\"'`<>", msg[end]) < 0 {
				end++
			}
			masked, _ := maskURL(msg[i+n : end])
			b.WriteString(msg[i:i+n] + masked)
			i = end
			continue
		}
		if len(msg)-i >= 8 && strings.EqualFold(msg[i:i+8], "password") {
			j := i + 8
			for j < len(msg) && (msg[j] == ' ' || msg[j] == '\t') {
				j++
			}
			if j < len(msg) && msg[j] == '=' {
				j++
				for j < len(msg) && (msg[j] == ' ' || msg[j] == '\t') {
					j++
				}
				k := j
				if k < len(msg) && msg[k] == '\'' {
					for k++; k < len(msg) && msg[k] != '\''; k++ {
						if msg[k] == '\\' {
							k++
						}
					}
					k = min(k+1, len(msg))
				} else {
					for ; k < len(msg) && strings.IndexByte(Spaces+"`\"", msg[k]) < 0; k++ {
						if msg[k] == '\\' {
							k++
						}
					}
					k = min(k, len(msg))
				}
				b.WriteString(msg[i:j] + Mask)
				i = k
				continue
			}
		}
		b.WriteByte(msg[i])
		i++
	}
	return b.String()
}

func isSchemeByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'
}
