package supabase

import (
	"fmt"
	"os"
	"strings"

	"github.com/supapool/supapool/budget"
)

// EnvTier names the compute size for [TierFromEnv].
const EnvTier = "SUPABASE_TIER"

// Tier is a Supabase compute size and the connection limits that come
// with it. Supabase sets max_connections and the pooler's client limit
// from the compute size; upgrading is the only way to raise the pooler's
// (https://supabase.com/docs/guides/troubleshooting/how-to-change-max-database-connections-_BQ8P5).
type Tier struct {
	// Name is the size as the dashboard shows it: Nano, Micro, ..., 16XL.
	Name string
	// MaxConnections is PostgreSQL's max_connections, which every direct
	// connection and every pooler server connection counts against.
	// Supabase calls it a recommendation that can be changed; a project
	// that changed it should copy the tier and set its own value.
	MaxConnections int
	// PoolerMaxClients is how many client connections the shared pooler
	// (and, separately, the dedicated pooler) accepts.
	PoolerMaxClients int
	// DefaultPoolSize is how many server connections the pooler opens per
	// user and database unless changed in Database Settings. Supabase
	// documents it only through a Studio constant, so read the real value
	// from the dashboard when it matters.
	DefaultPoolSize int
}

// The compute sizes. max_connections and pooler max clients come from
// "Limits and constraints" on https://supabase.com/docs/guides/platform/compute-and-disk
// (the same figures are on the troubleshooting page cited on [Tier]).
// Default pool sizes come from Studio's POOLING_OPTIMIZATIONS constant,
// https://github.com/supabase/supabase/blob/10b6de9ba2044c1c4c2c64529a40060bb4aab996/apps/studio/components/interfaces/Settings/Database/ConnectionPooling/ConnectionPooling.constants.ts
var (
	TierNano   = Tier{Name: "Nano", MaxConnections: 60, PoolerMaxClients: 200, DefaultPoolSize: 15}
	TierMicro  = Tier{Name: "Micro", MaxConnections: 60, PoolerMaxClients: 200, DefaultPoolSize: 15}
	TierSmall  = Tier{Name: "Small", MaxConnections: 90, PoolerMaxClients: 400, DefaultPoolSize: 15}
	TierMedium = Tier{Name: "Medium", MaxConnections: 120, PoolerMaxClients: 600, DefaultPoolSize: 15}
	TierLarge  = Tier{Name: "Large", MaxConnections: 160, PoolerMaxClients: 800, DefaultPoolSize: 20}
	TierXL     = Tier{Name: "XL", MaxConnections: 240, PoolerMaxClients: 1000, DefaultPoolSize: 20}
	Tier2XL    = Tier{Name: "2XL", MaxConnections: 380, PoolerMaxClients: 1500, DefaultPoolSize: 25}
	Tier4XL    = Tier{Name: "4XL", MaxConnections: 480, PoolerMaxClients: 3000, DefaultPoolSize: 32}
	Tier8XL    = Tier{Name: "8XL", MaxConnections: 490, PoolerMaxClients: 6000, DefaultPoolSize: 64}
	Tier12XL   = Tier{Name: "12XL", MaxConnections: 500, PoolerMaxClients: 9000, DefaultPoolSize: 96}
	Tier16XL   = Tier{Name: "16XL", MaxConnections: 500, PoolerMaxClients: 12000, DefaultPoolSize: 128}

	// TierFree is the Free plan's compute size, Nano.
	TierFree = TierNano
)

// Tiers lists the compute sizes from smallest to largest.
func Tiers() []Tier {
	return []Tier{TierNano, TierMicro, TierSmall, TierMedium, TierLarge, TierXL, Tier2XL, Tier4XL, Tier8XL, Tier12XL, Tier16XL}
}

func (t Tier) String() string { return t.Name }

// ParseTier finds a compute size by name, ignoring case: the dashboard's
// names (Micro, 2XL), the Management API's (micro, 2xlarge, ci_2xlarge),
// and "free" for Nano.
func ParseTier(name string) (Tier, error) {
	t, err := parseTier(name)
	if err != nil {
		return Tier{}, fmt.Errorf("supabase: %w", err)
	}
	return t, nil
}

func parseTier(name string) (Tier, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	n = strings.TrimPrefix(n, "ci_")
	n = strings.Replace(n, "xlarge", "xl", 1)
	if n == "free" {
		return TierFree, nil
	}
	for _, t := range Tiers() {
		if strings.ToLower(t.Name) == n {
			return t, nil
		}
	}
	return Tier{}, fmt.Errorf("unknown compute size %q, expected one of %s or free", name, tierNames())
}

func tierNames() string {
	var names []string
	for _, t := range Tiers() {
		names = append(names, t.Name)
	}
	return strings.Join(names, ", ")
}

// TierFromEnv reads SUPABASE_TIER. ok is false when it is unset or empty,
// so callers can fall back to their own figures.
func TierFromEnv() (t Tier, ok bool, err error) {
	v := strings.TrimSpace(os.Getenv(EnvTier))
	if v == "" {
		return Tier{}, false, nil
	}
	if t, err = parseTier(v); err != nil {
		return Tier{}, false, fmt.Errorf("supabase: %s: %w", EnvTier, err)
	}
	return t, true, nil
}

// Pooler describes the pooler for a budget: its server side at the
// default pool size and its client limit. Supavisor keeps a pool per user
// and database, so a budget with several roles through the pooler should
// multiply ServerConns.
func (t Tier) Pooler() *budget.Pooler {
	return &budget.Pooler{ServerConns: t.DefaultPoolSize, MaxClients: t.PoolerMaxClients}
}

// BudgetSpec starts a budget for this tier: Limit is max_connections and
// the pooler is described by [Tier.Pooler]. reserved is what to keep off
// Limit for everything that is not an app: Supabase's own services
// (PostgREST, Auth, Storage, the health checker) hold connections even
// when nothing else runs, and PostgreSQL keeps superuser slots.
func (t Tier) BudgetSpec(reserved int, apps ...budget.App) budget.Spec {
	return budget.Spec{Limit: t.MaxConnections, Reserved: reserved, Pooler: t.Pooler(), Apps: apps}
}
