package budget

import (
	"encoding/json"
	"errors"
	"math/rand"
	"reflect"
	"testing"
	"testing/quick"

	"sigs.k8s.io/yaml"
)

// randSpec is a valid Spec drawn so that about half fit; the figures are
// small enough for the one-at-a-time reference below.
type randSpec struct{ Spec }

func (randSpec) Generate(r *rand.Rand, _ int) reflect.Value {
	s := Spec{Limit: 1 + r.Intn(200)}
	s.Reserved = r.Intn(min(s.Limit, 30))
	if r.Intn(2) == 0 {
		s.Pooler = &Pooler{ServerConns: 1 + r.Intn(40), MaxClients: 1 + r.Intn(300)}
	}
	for i := range 1 + r.Intn(8) {
		a := App{
			Name:      string(rune('a' + i)),
			Instances: 1 + r.Intn(6),
			Weight:    r.Intn(6),
			Direct:    r.Intn(4) * r.Intn(2),
		}
		if r.Intn(2) == 0 {
			a.Min = r.Intn(7)
		}
		if r.Intn(2) == 0 {
			a.Max = max(a.Min, 1) + r.Intn(10)
		}
		s.Apps = append(s.Apps, a)
	}
	// Read replicas, each with its own limit, in about half the specs;
	// then most apps read from them.
	if r.Intn(2) == 0 {
		for i := range 1 + r.Intn(3) {
			rs := ReplicaServer{Name: "r" + string(rune('1'+i)), Limit: 1 + r.Intn(120)}
			rs.Reserved = r.Intn(min(rs.Limit, 10))
			s.Replicas = append(s.Replicas, rs)
		}
		for i := range s.Apps {
			s.Apps[i].Replica = r.Intn(5) * r.Intn(2)
		}
	}
	return reflect.ValueOf(randSpec{s})
}

// bigSpec stretches every figure towards maxCount, to show the planner
// stays exact and quick where a connection-at-a-time loop would not.
type bigSpec struct{ Spec }

func (bigSpec) Generate(r *rand.Rand, _ int) reflect.Value {
	s := Spec{Limit: 1 + r.Intn(maxCount)}
	s.Reserved = r.Intn(s.Limit)
	if r.Intn(2) == 0 {
		s.Pooler = &Pooler{ServerConns: 1 + r.Intn(1000), MaxClients: 1 + r.Intn(maxCount)}
	}
	for i := range 1 + r.Intn(30) {
		a := App{
			Name:      string(rune('a' + i)),
			Instances: 1 + r.Intn(1+r.Intn(maxCount/100)),
			Weight:    r.Intn(maxCount + 1),
			Direct:    r.Intn(3),
		}
		if r.Intn(3) == 0 {
			a.Max = 1 + r.Intn(maxCount)
		}
		s.Apps = append(s.Apps, a)
	}
	return reflect.ValueOf(bigSpec{s})
}

// fits decides feasibility straight from the formula, independently of Plan.
func fits(s Spec) bool {
	server, pooled := s.Reserved, 0
	if s.Pooler != nil {
		server += s.Pooler.ServerConns
	}
	for _, a := range s.Apps {
		server += a.Direct * a.Instances
		pooled += max(1, a.Min) * a.Instances
	}
	for _, r := range s.Replicas {
		need := r.Reserved
		for _, a := range s.Apps {
			need += a.Replica * a.Instances
		}
		if need > r.Limit {
			return false
		}
	}
	if s.Pooler == nil {
		return server+pooled <= s.Limit
	}
	return server <= s.Limit && pooled <= s.Pooler.MaxClients
}

// used recomputes, from the caps alone, what a plan uses of each resource.
func used(s Spec, p *Allocation) (server, clients int) {
	server = s.Reserved
	if s.Pooler != nil {
		server += s.Pooler.ServerConns
	}
	for _, a := range s.Apps {
		al := p.For(a.Name)
		server += a.Instances * int(al.MaxDirectConns)
		if s.Pooler == nil {
			server += a.Instances * int(al.MaxConns)
		} else {
			clients += a.Instances * int(al.MaxConns)
		}
	}
	return server, clients
}

// reference is the rule Plan documents, applied one connection at a time.
func reference(s Spec) []int32 {
	room := s.Limit - s.Reserved
	if s.Pooler != nil {
		room = s.Pooler.MaxClients
	}
	p := make([]int, len(s.Apps))
	for i, a := range s.Apps {
		if s.Pooler == nil {
			room -= a.Direct * a.Instances
		}
		p[i] = max(1, a.Min)
		room -= p[i] * a.Instances
	}
	for {
		best := -1
		for i, a := range s.Apps {
			if (a.Max > 0 && p[i] >= a.Max) || a.Instances > room {
				continue
			}
			// (p+1)/w smallest first; the strict < keeps the earlier app on ties.
			if best < 0 || (p[i]+1)*max(1, s.Apps[best].Weight) < (p[best]+1)*max(1, a.Weight) {
				best = i
			}
		}
		if best < 0 {
			break
		}
		p[best]++
		room -= s.Apps[best].Instances
	}
	out := make([]int32, len(p))
	for i := range p {
		out[i] = int32(p[i])
	}
	return out
}

// checkPlan holds for every plan: within every limit, within Min and Max,
// direct conns as asked, totals that add up, and nothing left that any app
// could still take.
func checkPlan(t *testing.T, s Spec, p *Allocation) bool {
	t.Helper()
	server, clients := used(s, p)
	ok := server <= s.Limit && server == p.ServerConns() && clients == p.PoolerClients()
	room := s.Limit - server
	if s.Pooler != nil {
		ok = ok && clients <= s.Pooler.MaxClients
		room = s.Pooler.MaxClients - clients
	}
	// Every replica server: its own limit, Reserved plus each app's
	// replica conns as asked.
	shares := p.Replicas()
	ok = ok && len(shares) == len(s.Replicas)
	for i, r := range s.Replicas {
		used := r.Reserved
		for _, a := range s.Apps {
			used += a.Instances * int(p.For(a.Name).MaxReplicaConns)
		}
		ok = ok && i < len(shares) && shares[i].Name == r.Name && shares[i].ServerConns == used && used <= r.Limit
	}
	for _, a := range s.Apps {
		al := p.For(a.Name)
		ok = ok && int(al.MaxReplicaConns) == a.Replica
		ok = ok && int(al.MaxConns) >= max(1, a.Min) && int(al.MaxDirectConns) == a.Direct
		if a.Max > 0 {
			ok = ok && int(al.MaxConns) <= a.Max
		}
		if a.Max == 0 || int(al.MaxConns) < a.Max {
			ok = ok && a.Instances > room
		}
	}
	if !ok {
		t.Logf("spec %+v pooler %+v: plan %+v, server %d clients %d", s, s.Pooler, p.Apps(), server, clients)
	}
	return ok
}

func TestPlanProperties(t *testing.T) {
	t.Parallel()
	cfg := &quick.Config{MaxCount: 3000}

	t.Run("an error exactly when the mins do not fit, and it explains by how much", func(t *testing.T) {
		t.Parallel()
		f := func(rs randSpec) bool {
			p, err := Plan(rs.Spec)
			if fits(rs.Spec) {
				return err == nil && p != nil
			}
			var ie *InfeasibleError
			return p == nil && errors.As(err, &ie) && ie.Need > ie.Limit
		}
		if err := quick.Check(f, cfg); err != nil {
			t.Error(err)
		}
	})
	t.Run("a plan stays within every limit, Min and Max, and leaves nothing usable", func(t *testing.T) {
		t.Parallel()
		f := func(rs randSpec) bool {
			p, err := Plan(rs.Spec)
			return err != nil || checkPlan(t, rs.Spec, p)
		}
		if err := quick.Check(f, cfg); err != nil {
			t.Error(err)
		}
	})
	t.Run("a plan matches the one-connection-at-a-time rule", func(t *testing.T) {
		t.Parallel()
		f := func(rs randSpec) bool {
			p, err := Plan(rs.Spec)
			if err != nil {
				return true
			}
			want := reference(rs.Spec)
			for i, a := range rs.Spec.Apps {
				if p.For(a.Name).MaxConns != want[i] {
					t.Logf("spec %+v pooler %+v: got %+v, want pooled %v", rs.Spec, rs.Spec.Pooler, p.Apps(), want)
					return false
				}
			}
			return true
		}
		if err := quick.Check(f, cfg); err != nil {
			t.Error(err)
		}
	})
	t.Run("replicas change nothing on the primary, and a replica's error names it", func(t *testing.T) {
		t.Parallel()
		f := func(rs randSpec) bool {
			bare := rs.Spec.clone()
			bare.Replicas = nil
			for i := range bare.Apps {
				bare.Apps[i].Replica = 0
			}
			p, err := Plan(rs.Spec)
			pb, errb := Plan(bare)
			if err == nil {
				if errb != nil {
					return false
				}
				for _, a := range bare.Apps {
					got, want := p.For(a.Name), pb.For(a.Name)
					got.MaxReplicaConns = 0
					if got != want {
						t.Logf("spec %+v: with replicas %+v, without %+v", rs.Spec, got, want)
						return false
					}
				}
				return p.ServerConns() == pb.ServerConns() && p.PoolerClients() == pb.PoolerClients()
			}
			if errb != nil {
				return true // the primary's own shortfall
			}
			// Only replicas ran short: every error names one, and
			// is over its limit.
			var ie *InfeasibleError
			if !errors.As(err, &ie) || ie.Replica == "" || ie.Need <= ie.Limit {
				t.Logf("spec %+v: %v", rs.Spec, err)
				return false
			}
			return true
		}
		if err := quick.Check(f, cfg); err != nil {
			t.Error(err)
		}
	})
	t.Run("planning is deterministic", func(t *testing.T) {
		t.Parallel()
		f := func(rs randSpec) bool {
			p1, err1 := Plan(rs.Spec)
			p2, err2 := Plan(rs.Spec)
			if err1 != nil || err2 != nil {
				return err1 != nil && err2 != nil && err1.Error() == err2.Error()
			}
			return reflect.DeepEqual(p1, p2)
		}
		if err := quick.Check(f, cfg); err != nil {
			t.Error(err)
		}
	})
	t.Run("large figures plan exactly", func(t *testing.T) {
		t.Parallel()
		f := func(bs bigSpec) bool {
			p, err := Plan(bs.Spec)
			if !fits(bs.Spec) {
				return err != nil
			}
			return err == nil && checkPlan(t, bs.Spec, p)
		}
		if err := quick.Check(f, &quick.Config{MaxCount: 200}); err != nil {
			t.Error(err)
		}
	})
	t.Run("a spec survives JSON and YAML", func(t *testing.T) {
		t.Parallel()
		f := func(rs randSpec) bool {
			js, err := json.Marshal(rs.Spec)
			if err != nil {
				return false
			}
			ys, err := yaml.Marshal(rs.Spec)
			if err != nil {
				return false
			}
			fromJSON, err1 := ParseSpec(js)
			fromYAML, err2 := ParseSpec(ys)
			return err1 == nil && err2 == nil &&
				reflect.DeepEqual(rs.Spec, fromJSON) && reflect.DeepEqual(rs.Spec, fromYAML)
		}
		if err := quick.Check(f, &quick.Config{MaxCount: 500}); err != nil {
			t.Error(err)
		}
	})
}
