// Package appname is the one place that says how supapool writes an
// application_name and how it reads one back.
//
// A pool sends application_name on every connection so that the server
// (pg_stat_activity, the monitor, the budget) can tell apps apart. Some
// connections carry more than the app: the lane they serve (the heavy
// lane, a replica read) and the instance that opened them (so instances of
// one app can see each other). Those are written as suffixes that Parse
// folds back, so per-app views do not change:
//
//	web                 app web
//	web/heavy           app web, lane heavy
//	web#k3x9q2          app web, instance k3x9q2
//	web/heavy#k3x9q2    app web, lane heavy, instance k3x9q2
//
// Only the lanes this package knows are read as lanes and only instance
// ids of the shape Instance makes are read as instances, so an app that
// happens to be called "a/b" or "tag#1" keeps its whole name.
package appname

import (
	"crypto/rand"
	"strings"
)

// MaxLen is the longest application_name PostgreSQL keeps
// (NAMEDATALEN-1 bytes); it cuts longer ones silently.
const MaxLen = 63

// Lanes supapool writes after an app name. Lane "" is the app's ordinary
// routes.
const (
	LaneHeavy   = "heavy"
	LaneReplica = "replica"
)

var lanes = map[string]bool{LaneHeavy: true, LaneReplica: true}

// instanceLen is the length of the ids Instance makes.
const instanceLen = 6

const instanceAlphabet = "0123456789abcdefghijklmnopqrstuvwxyz"

// Name is an application_name taken apart.
type Name struct {
	App      string // the app, as configured
	Lane     string // "" or one of the Lane constants
	Instance string // "" or an id made by Instance
}

// Instance returns a fresh random instance id: 6 characters of [0-9a-z],
// about 2 billion values, enough that two live instances of one app do not
// share one in practice.
func Instance() string {
	var b [instanceLen]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read does not fail (Go 1.24+)
	for i := range b {
		b[i] = instanceAlphabet[int(b[i])%len(instanceAlphabet)]
	}
	return string(b[:])
}

// String writes n as an application_name. The suffixes survive
// PostgreSQL's 63-byte limit: a long app name is cut, never the suffixes.
func (n Name) String() string {
	var suffix string
	if n.Lane != "" {
		suffix += "/" + n.Lane
	}
	if n.Instance != "" {
		suffix += "#" + n.Instance
	}
	app := n.App
	if len(app)+len(suffix) > MaxLen {
		app = cutUTF8(app, MaxLen-len(suffix))
	}
	return app + suffix
}

// Parse takes an application_name apart. A name without supapool's
// suffixes is all App.
func Parse(s string) Name {
	var n Name
	if i := strings.LastIndexByte(s, '#'); i >= 0 && isInstance(s[i+1:]) {
		n.Instance = s[i+1:]
		s = s[:i]
	}
	if i := strings.LastIndexByte(s, '/'); i >= 0 && lanes[s[i+1:]] {
		n.Lane = s[i+1:]
		s = s[:i]
	}
	n.App = s
	return n
}

// App is Parse(s).App: the app an application_name belongs to.
func App(s string) string { return Parse(s).App }

func isInstance(s string) bool {
	if len(s) != instanceLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(instanceAlphabet, s[i]) < 0 {
			return false
		}
	}
	return true
}

// cutUTF8 cuts s to at most n bytes without splitting a character.
func cutUTF8(s string, n int) string {
	if n <= 0 {
		return ""
	}
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
