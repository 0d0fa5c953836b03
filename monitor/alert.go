package monitor

import (
	"fmt"
	"sort"
	"time"
)

// AlertKind says what an [Alert] is about.
type AlertKind string

// The alerts a monitor raises. Each is raised once when its condition
// starts and cleared once when it ends; polls in between are silent.
const (
	// AlertOverBudget: an app holds more connections than its budget
	// plan allows (Config.Budget).
	AlertOverBudget AlertKind = "over_budget"
	// AlertIdleInTransaction: an app has a session idle inside a
	// transaction for longer than Config.IdleInTxAlert. Such a session
	// holds its connection, locks and snapshot while doing nothing.
	AlertIdleInTransaction AlertKind = "idle_in_transaction"
	// AlertPollFailing: polls are failing; the snapshot is stale.
	AlertPollFailing AlertKind = "poll_failing"
)

// Alert is one raise or clear of an alert.
type Alert struct {
	Kind AlertKind
	// Application is the app concerned; empty for AlertPollFailing.
	Application string
	// Raised is true when the condition starts, false when it ends.
	Raised bool
	// Time is the poll's time.
	Time time.Time
	// Message is a one-line description for people.
	Message string
	// Count and Limit are the app's connections and budget for
	// AlertOverBudget.
	Count int
	Limit int
	// Age is the longest idle-in-transaction time for
	// AlertIdleInTransaction.
	Age time.Duration
}

type alertKey struct {
	kind AlertKind
	app  string
}

// alerts computes the raises and clears a fresh snapshot causes, given the
// set of raised alerts, which it updates.
func alerts(s Snapshot, idleLimit time.Duration, raised map[alertKey]bool) []Alert {
	now := map[alertKey]Alert{}
	for _, a := range s.Apps {
		if a.Over {
			k := alertKey{AlertOverBudget, a.Application}
			now[k] = Alert{Kind: k.kind, Application: a.Application, Count: a.Total, Limit: a.Budget,
				Message: fmt.Sprintf("app %q holds %d connections, over its budget of %d", a.Application, a.Total, a.Budget)}
		}
		if idleLimit > 0 && a.LongestIdleInTx > idleLimit {
			k := alertKey{AlertIdleInTransaction, a.Application}
			now[k] = Alert{Kind: k.kind, Application: a.Application, Age: a.LongestIdleInTx,
				Message: fmt.Sprintf("app %q has a session idle in transaction for %s", a.Application, a.LongestIdleInTx.Round(time.Second))}
		}
	}
	var out []Alert
	for k, a := range now {
		if !raised[k] {
			raised[k] = true
			a.Raised, a.Time = true, s.Time
			out = append(out, a)
		}
	}
	for k := range raised {
		if k.kind == AlertPollFailing {
			continue
		}
		if _, ok := now[k]; !ok {
			delete(raised, k)
			out = append(out, Alert{Kind: k.kind, Application: k.app, Time: s.Time, Message: clearMessage(k)})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		return out[i].Application < out[j].Application
	})
	return out
}

func clearMessage(k alertKey) string {
	switch k.kind {
	case AlertOverBudget:
		return fmt.Sprintf("app %q is back within its budget", k.app)
	case AlertIdleInTransaction:
		return fmt.Sprintf("app %q has no long idle-in-transaction session", k.app)
	}
	return "polls succeed again"
}

// event makes a an entry of the alert log; level is the level of its
// poll.
func (a Alert) event(level Level) Event {
	return Event{Time: a.Time, Kind: string(a.Kind), Application: a.Application, Raised: a.Raised, Level: level, Message: a.Message}
}
