package monitor

import (
	"encoding/json"
	"math"
	"time"
)

// Backend states as pg_stat_activity names them, plus StateHidden.
const (
	StateActive            = "active"
	StateIdle              = "idle"
	StateIdleInTransaction = "idle in transaction"
	StateIdleInTxAborted   = "idle in transaction (aborted)"
	// StateHidden stands for backends whose state the monitor's role may
	// not see: another role's sessions, unless the role has
	// pg_read_all_stats (or pg_monitor). They are counted under this
	// state rather than dropped, so totals stay true.
	StateHidden = "<insufficient privilege>"
)

// Snapshot is what one poll saw. The monitor never changes a snapshot after
// handing it out, and copies share their maps and slices, so treat them as
// read-only.
type Snapshot struct {
	// Time is when the server took the data (its now()), in the monitor's
	// clock zone. On a stale snapshot it is the last good poll's time.
	Time time.Time `json:"time"`
	// MaxConnections is the server's max_connections.
	MaxConnections int `json:"max_connections"`
	// Reserved is superuser_reserved_connections plus, on PostgreSQL 16
	// and later, reserved_connections: the slots ordinary roles can never
	// use, so they meet "too many clients" at MaxConnections − Reserved.
	Reserved int `json:"reserved_connections"`
	// Total is every client backend, hidden ones and the monitor's own
	// included: what counts against max_connections. Levels are judged
	// on it.
	Total int `json:"total"`
	// Hidden is how many of Total the monitor's role could not look into
	// (see StateHidden). A hidden autovacuum or parallel worker cannot be
	// told from a client and is counted too, so Total errs high, the safe
	// side. Grant the role pg_monitor to see everything.
	Hidden int `json:"hidden"`
	// ByState counts Total by state (StateActive, StateIdle, ...,
	// StateHidden).
	ByState map[string]int `json:"by_state"`
	// Groups are the rows of the poll's query: backends grouped by
	// database, user, application and state, sorted by those four.
	Groups []Group `json:"groups"`
	// Apps sums Groups by app and adds each app's budget; planned apps
	// with no connections appear too. Sorted by name. An application_name
	// with supapool's lane and instance suffixes (web/heavy#k3x9q2) counts
	// for its app (web); Groups keep the names as the server has them.
	Apps []AppUsage `json:"apps"`
	// Level is the level after hysteresis.
	Level Level `json:"level"`
	// YellowAt and RedAbove are the thresholds resolved to counts for
	// this server: Yellow when Total ≥ YellowAt, Red when Total > RedAbove.
	YellowAt float64 `json:"yellow_at"`
	RedAbove float64 `json:"red_above"`
	// PollDuration is how long the poll took, connecting included.
	PollDuration time.Duration `json:"-"`
	// Stale is set when the latest poll failed: the data is the last good
	// poll's, and Err says why the newer one failed.
	Stale bool   `json:"stale"`
	Err   string `json:"error,omitempty"`
	// Failures is how many polls in a row have failed; 0 when fresh.
	Failures int `json:"failures"`
	// Polls, Failed and Skipped count since New: polls attempted, polls
	// that failed, and ticks of Run that were skipped because a poll was
	// still running.
	Polls   uint64 `json:"polls"`
	Failed  uint64 `json:"failed"`
	Skipped uint64 `json:"skipped"`
}

// Group is one row of the poll's query.
type Group struct {
	Database    string `json:"database"`
	User        string `json:"user"`
	Application string `json:"application"`
	State       string `json:"state"`
	Count       int    `json:"count"`
	// Waiting is how many are waiting for a lock (wait_event_type 'Lock').
	Waiting int `json:"waiting"`
	// LongestXact is the age of the oldest open transaction.
	LongestXact time.Duration `json:"-"`
	// LongestIdleInTx is the longest time one of them has sat idle inside
	// a transaction, holding its locks and snapshot.
	LongestIdleInTx time.Duration `json:"-"`
	// Query is the text of the group's oldest transaction's latest
	// statement, cut to Config.QueryTexts characters; empty unless
	// Config.QueryTexts is set, and for hidden groups.
	Query string `json:"query,omitempty"`
}

// AppUsage is one application_name's connections, all databases and users
// together, against its budget.
type AppUsage struct {
	Application string `json:"application"`
	// Total is the app's client backends; ByState splits it.
	Total   int            `json:"total"`
	ByState map[string]int `json:"by_state"`
	Waiting int            `json:"waiting"`
	// LongestXact and LongestIdleInTx are the maxima over the app's groups.
	LongestXact     time.Duration `json:"-"`
	LongestIdleInTx time.Duration `json:"-"`
	// Planned says the budget plan has an app by this name; Budget is then
	// its Conns (instances × (MaxConns + MaxDirectConns)) and Over is
	// Total > Budget.
	Planned bool `json:"planned"`
	Budget  int  `json:"budget,omitempty"`
	Over    bool `json:"over_budget"`
}

// JSON writes durations as seconds (a float), which scripts and jq read
// without knowing Go's nanoseconds.

// xactSeconds is how Group and AppUsage write their two durations.
type xactSeconds struct {
	Xact float64 `json:"longest_xact_seconds"`
	Idle float64 `json:"longest_idle_in_tx_seconds"`
}

func toXactSeconds(xact, idle time.Duration) xactSeconds {
	return xactSeconds{xact.Seconds(), idle.Seconds()}
}

func (x xactSeconds) durations() (xact, idle time.Duration) {
	return seconds(x.Xact), seconds(x.Idle)
}

type groupJSON Group

// MarshalJSON writes durations as longest_xact_seconds and
// longest_idle_in_tx_seconds.
func (g Group) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		groupJSON
		xactSeconds
	}{groupJSON(g), toXactSeconds(g.LongestXact, g.LongestIdleInTx)})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (g *Group) UnmarshalJSON(b []byte) error {
	var v struct {
		groupJSON
		xactSeconds
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*g = Group(v.groupJSON)
	g.LongestXact, g.LongestIdleInTx = v.durations()
	return nil
}

type appJSON AppUsage

// MarshalJSON writes durations as longest_xact_seconds and
// longest_idle_in_tx_seconds.
func (a AppUsage) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		appJSON
		xactSeconds
	}{appJSON(a), toXactSeconds(a.LongestXact, a.LongestIdleInTx)})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (a *AppUsage) UnmarshalJSON(b []byte) error {
	var v struct {
		appJSON
		xactSeconds
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*a = AppUsage(v.appJSON)
	a.LongestXact, a.LongestIdleInTx = v.durations()
	return nil
}

type snapshotJSON Snapshot

// MarshalJSON writes PollDuration as poll_seconds.
func (s Snapshot) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		snapshotJSON
		Poll float64 `json:"poll_seconds"`
	}{snapshotJSON(s), s.PollDuration.Seconds()})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (s *Snapshot) UnmarshalJSON(b []byte) error {
	var v struct {
		snapshotJSON
		Poll float64 `json:"poll_seconds"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*s = Snapshot(v.snapshotJSON)
	s.PollDuration = seconds(v.Poll)
	return nil
}

func seconds(f float64) time.Duration { return time.Duration(math.Round(f * float64(time.Second))) }

// App returns the usage of the named application and whether the snapshot
// has it.
func (s Snapshot) App(name string) (AppUsage, bool) {
	for _, a := range s.Apps {
		if a.Application == name {
			return a, true
		}
	}
	return AppUsage{}, false
}

// OverBudget returns the apps using more connections than their budget.
func (s Snapshot) OverBudget() []AppUsage {
	var out []AppUsage
	for _, a := range s.Apps {
		if a.Over {
			out = append(out, a)
		}
	}
	return out
}
