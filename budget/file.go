package budget

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// EnvVar names the environment variable that holds the path of a spec file;
// see [FromEnv].
const EnvVar = "SUPAPOOL_BUDGET"

// ParseSpec reads a spec written in JSON or YAML (JSON is YAML, so one
// parser serves both). Field names are those of the json tags on [Spec],
// [Pooler] and [App], matched exactly; an unknown or misspelt field is an
// error naming it, because a silently ignored "wieght" would plan something
// the author did not mean. Duplicate keys are errors too.
//
// An app that leaves direct out (or sets it to null) gets [defaultDirect]
// direct connections; direct: 0 gives it none. Every other count left out
// reads as 0.
//
// ParseSpec checks shape and types only. [Plan] checks the values, so a spec
// may be completed in code (say, Limit from the hosting tier) before planning.
func ParseSpec(data []byte) (Spec, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return Spec{}, errors.New("budget: spec is empty")
	}
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return Spec{}, fmt.Errorf("budget: parse spec: %w", err)
	}
	// Decoding into a generic tree rather than straight into Spec lets
	// errors say which app and field is wrong; encoding/json would say
	// "App.instances" for every app and match keys case-insensitively.
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return Spec{}, fmt.Errorf("budget: parse spec: %w", err)
	}
	var s Spec
	if err := decodeSpec(tree, &s); err != nil {
		return Spec{}, fmt.Errorf("budget: %w", err)
	}
	return s, nil
}

// LoadFile reads and parses the spec file at path (see [ParseSpec]). Errors
// name the file.
func LoadFile(path string) (Spec, error) {
	s, err := readSpec(path)
	if err != nil {
		return Spec{}, &prefixError{prefix: "spec " + path, err: err}
	}
	return s, nil
}

// FromEnv plans the spec file named by the SUPAPOOL_BUDGET environment
// variable. ok is false, with no error, when the variable is unset or empty,
// so a service runs without a budget until one is configured. Errors name the
// variable and the file; an infeasible spec still unwraps to
// [*InfeasibleError].
func FromEnv() (plan *Allocation, ok bool, err error) {
	path := os.Getenv(EnvVar)
	if path == "" {
		return nil, false, nil
	}
	s, err := readSpec(path)
	if err == nil {
		plan, err = Plan(s)
	}
	if err != nil {
		return nil, false, &prefixError{prefix: EnvVar + "=" + path, err: err}
	}
	return plan, true, nil
}

func readSpec(path string) (Spec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			// The caller names the file; keep the reason, which still
			// matches fs.ErrNotExist and friends.
			err = fmt.Errorf("%s: %w", pe.Op, pe.Err)
		}
		return Spec{}, err
	}
	return ParseSpec(data)
}

// prefixError puts context after the package prefix rather than before it,
// so a wrapped error reads "budget: FILE: REASON" and not
// "budget: FILE: budget: REASON".
type prefixError struct {
	prefix string
	err    error
}

func (e *prefixError) Error() string {
	lines := strings.Split(e.err.Error(), "\n")
	for i, l := range lines {
		lines[i] = "budget: " + e.prefix + ": " + strings.TrimPrefix(l, "budget: ")
	}
	return strings.Join(lines, "\n")
}

func (e *prefixError) Unwrap() error { return e.err }

// decodeSpec fills s from a tree produced by encoding/json with UseNumber.
// Errors have no package prefix.
func decodeSpec(tree any, s *Spec) error {
	m, err := object(tree, "spec")
	if err != nil {
		return err
	}
	if err := knownFields(m, "", "limit", "reserved", "pooler", "apps", "replicas"); err != nil {
		return err
	}
	if s.Limit, err = intField(m, "", "limit"); err != nil {
		return err
	}
	if s.Reserved, err = intField(m, "", "reserved"); err != nil {
		return err
	}
	if v := m["pooler"]; v != nil {
		pm, err := object(v, "pooler")
		if err != nil {
			return err
		}
		if err := knownFields(pm, "pooler: ", "server_conns", "max_clients"); err != nil {
			return err
		}
		s.Pooler = &Pooler{}
		if s.Pooler.ServerConns, err = intField(pm, "pooler.", "server_conns"); err != nil {
			return err
		}
		if s.Pooler.MaxClients, err = intField(pm, "pooler.", "max_clients"); err != nil {
			return err
		}
	}
	if v := m["replicas"]; v != nil {
		list, ok := v.([]any)
		if !ok {
			return fmt.Errorf("replicas: want a list, got %s", describe(v))
		}
		s.Replicas = make([]ReplicaServer, len(list))
		for i, item := range list {
			if err := decodeReplica(item, i, &s.Replicas[i]); err != nil {
				return err
			}
		}
	}
	if v := m["apps"]; v != nil {
		list, ok := v.([]any)
		if !ok {
			return fmt.Errorf("apps: want a list, got %s", describe(v))
		}
		s.Apps = make([]App, len(list))
		for i, item := range list {
			if err := decodeApp(item, i, &s.Apps[i]); err != nil {
				return err
			}
		}
	}
	return nil
}

func decodeApp(v any, i int, a *App) error {
	m, err := object(v, fmt.Sprintf("apps[%d]", i))
	if err != nil {
		return err
	}
	switch name := m["name"].(type) {
	case nil:
	case string:
		a.Name = name
	case json.Number:
		// YAML reads `name: 2024` as a number; the author meant a name.
		a.Name = name.String()
	default:
		return fmt.Errorf("apps[%d]: name: want a string, got %s", i, describe(name))
	}
	prefix := appLabel(i, a.Name) + ": "
	if err := knownFields(m, prefix, "name", "instances", "weight", "min", "max", "direct", "heavy", "replica"); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		dst  *int
	}{
		{"instances", &a.Instances},
		{"weight", &a.Weight},
		{"min", &a.Min},
		{"max", &a.Max},
		{"direct", &a.Direct},
		{"heavy", &a.Heavy},
		{"replica", &a.Replica},
	} {
		if *f.dst, err = intField(m, prefix, f.name); err != nil {
			return err
		}
	}
	// Left out is not "none": an app that never mentioned direct
	// connections still calls Begin and Listen, which need them.
	if m["direct"] == nil {
		a.Direct = defaultDirect
	}
	return nil
}

func decodeReplica(v any, i int, r *ReplicaServer) error {
	m, err := object(v, fmt.Sprintf("replicas[%d]", i))
	if err != nil {
		return err
	}
	switch name := m["name"].(type) {
	case nil:
	case string:
		r.Name = name
	case json.Number:
		r.Name = name.String()
	default:
		return fmt.Errorf("replicas[%d]: name: want a string, got %s", i, describe(name))
	}
	prefix := replicaLabel(i, r.Name) + ": "
	if err := knownFields(m, prefix, "name", "limit", "reserved"); err != nil {
		return err
	}
	if r.Limit, err = intField(m, prefix, "limit"); err != nil {
		return err
	}
	r.Reserved, err = intField(m, prefix, "reserved")
	return err
}

func object(v any, what string) (map[string]any, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s: want a mapping of fields, got %s", what, describe(v))
	}
	return m, nil
}

func knownFields(m map[string]any, prefix string, known ...string) error {
	var unknown []string
	for k := range m {
		found := false
		for _, want := range known {
			found = found || k == want
		}
		if !found {
			unknown = append(unknown, strconv.Quote(k))
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	noun := "field"
	if len(unknown) > 1 {
		noun = "fields"
	}
	return fmt.Errorf("%sunknown %s %s (known: %s)", prefix, noun, strings.Join(unknown, ", "), strings.Join(known, ", "))
}

// intField reads a whole number; absent and null read as 0, like
// encoding/json, so optional fields can be left out.
func intField(m map[string]any, prefix, name string) (int, error) {
	v, ok := m[name]
	if !ok || v == nil {
		return 0, nil
	}
	num, ok := v.(json.Number)
	if !ok {
		return 0, fmt.Errorf("%s%s: want a whole number, got %s", prefix, name, describe(v))
	}
	n, err := strconv.ParseInt(num.String(), 10, 64)
	if err != nil {
		// 4.0 is a whole number written oddly; accept it.
		f, ferr := strconv.ParseFloat(num.String(), 64)
		if ferr != nil || f != math.Trunc(f) || math.Abs(f) > maxCount*10 {
			return 0, fmt.Errorf("%s%s: want a whole number, got %s", prefix, name, num)
		}
		n = int64(f)
	}
	if n > math.MaxInt32 || n < math.MinInt32 {
		return 0, fmt.Errorf("%s%s: %s is out of range", prefix, name, num)
	}
	return int(n), nil
}

func describe(v any) string {
	switch v := v.(type) {
	case string:
		return strconv.Quote(v)
	case json.Number:
		return v.String()
	case bool:
		return strconv.FormatBool(v)
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%v", v)
}
