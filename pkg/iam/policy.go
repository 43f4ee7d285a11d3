// Package iam holds the code to AWS's authorization rules on this machine. It expands each
// function's IAM role from template.yaml as AWS SAM does (managed policies, policy templates and
// inline statements), evaluates requests against it as IAM does (an explicit Deny wins, then an
// Allow, else the request is denied; wildcards, condition operators and condition keys such as
// dynamodb:LeadingKeys and dynamodb:Attributes), and turns every call a function makes to an
// AWS service through the SDK into the authorization requests AWS would check. A Transport
// refuses what the role does not allow, with the error AWS returns, so a missing permission
// fails here as it would in AWS.
package iam

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/opentrace/service-accounts/pkg/wildcard"
)

// Effects of a statement.
const (
	Allow = "Allow"
	Deny  = "Deny"
)

// Statement is one statement of a policy, with its intrinsic functions resolved. Action,
// Resource and their Not forms are lists (IAM takes a string or a list); Condition maps an
// operator (StringLike, ForAllValues:StringEquals, …) to condition keys and their values.
type Statement struct {
	Sid         string
	Effect      string
	Action      []string
	NotAction   []string
	Resource    []string
	NotResource []string
	Condition   map[string]map[string][]string
}

// Policy is a named policy document.
type Policy struct {
	Name       string
	Statements []Statement
}

// Role is what a principal may do: the union of its policies.
type Role struct {
	Name     string // e.g. CreateFunctionRole
	Session  string // the assumed role's session: the function's name
	Account  string
	Policies []Policy
}

// ARN is the principal a denial names: the role's session, as Lambda assumes it.
func (r *Role) ARN() string {
	return fmt.Sprintf("arn:aws:sts::%s:assumed-role/%s/%s", r.Account, r.Name, r.Session)
}

// Request is one authorization AWS makes for an API call: an action on a resource, in the
// context of the request's condition keys (lower-case names, each with its values).
type Request struct {
	Action   string
	Resource string
	Context  map[string][]string
}

// Decision is the outcome of evaluating a request.
type Decision int

// Decisions, as IAM reaches them.
const (
	ImplicitDeny Decision = iota // no statement allows it
	Allowed
	ExplicitDeny // a Deny statement matches: nothing can allow it
)

// Evaluate decides a request as IAM's policy evaluation does for identity-based policies: an
// explicit Deny in any policy wins; otherwise an Allow grants; otherwise the request is denied.
func (r *Role) Evaluate(req Request) Decision {
	d := ImplicitDeny
	for _, p := range r.Policies {
		for _, st := range p.Statements {
			if !st.matches(req) {
				continue
			}
			if st.Effect == Deny {
				return ExplicitDeny
			}
			d = Allowed
		}
	}
	return d
}

func (st Statement) matches(req Request) bool {
	switch {
	case st.Action != nil && !anyMatch(st.Action, req.Action, true):
		return false
	case st.NotAction != nil && anyMatch(st.NotAction, req.Action, true):
		return false
	case st.Resource != nil && !anyMatch(st.Resource, req.Resource, false):
		return false
	case st.NotResource != nil && anyMatch(st.NotResource, req.Resource, false):
		return false
	}
	for op, keys := range st.Condition {
		for k, values := range keys {
			if !condition(op, req.Context[strings.ToLower(k)], values) {
				return false
			}
		}
	}
	return true
}

// anyMatch reports whether s matches one of the patterns. Actions match ignoring case, as IAM
// matches them; resources (ARNs) are case-sensitive.
func anyMatch(patterns []string, s string, foldCase bool) bool {
	if foldCase {
		s = strings.ToLower(s)
	}
	for _, p := range patterns {
		if foldCase {
			p = strings.ToLower(p)
		}
		if wildcard.Match(p, s) {
			return true
		}
	}
	return false
}

// condition evaluates one condition operator on a key: have holds the request's values (nil
// when the key is absent), want the policy's. The set operators ForAllValues and ForAnyValue
// and the IfExists suffix behave as IAM documents: ForAllValues holds for an absent key, and
// IfExists makes an absent key hold.
func condition(op string, have, want []string) bool {
	set, base, _ := strings.Cut(op, ":")
	if base == "" {
		set, base = "", op
	}
	base, ifExists := strings.CutSuffix(base, "IfExists")
	if base == "Null" {
		absent := have == nil
		return slices.Contains(want, strconv.FormatBool(absent))
	}
	if have == nil {
		switch {
		case ifExists, set == "ForAllValues":
			return true
		case set == "ForAnyValue":
			return false
		default:
			return negated(base) // "not equal" holds for a key that is absent
		}
	}
	one := func(v string) bool { return compare(base, v, want) }
	switch set {
	case "ForAllValues":
		for _, v := range have {
			if !one(v) {
				return false
			}
		}
		return true
	case "ForAnyValue":
		return slices.ContainsFunc(have, one)
	default:
		if negated(base) {
			for _, v := range have {
				if !one(v) {
					return false
				}
			}
			return true
		}
		return slices.ContainsFunc(have, one)
	}
}

func negated(op string) bool { return strings.Contains(op, "Not") }

// compare applies an operator to one request value against the policy's values: a positive
// operator holds when the value matches any of them, a negated one when it matches none.
func compare(op, v string, want []string) bool {
	var eq func(pattern string) bool
	switch strings.Replace(op, "Not", "", 1) {
	case "StringEquals", "ArnEquals":
		eq = func(p string) bool { return p == v }
	case "StringEqualsIgnoreCase":
		eq = func(p string) bool { return strings.EqualFold(p, v) }
	case "StringLike", "ArnLike":
		eq = func(p string) bool { return wildcard.Match(p, v) }
	case "Bool":
		eq = func(p string) bool { return strings.EqualFold(p, v) }
	case "NumericEquals":
		eq = func(p string) bool { return numeric(v, p, func(a, b float64) bool { return a == b }) }
	case "NumericLessThan":
		eq = func(p string) bool { return numeric(v, p, func(a, b float64) bool { return a < b }) }
	case "NumericLessThanEquals":
		eq = func(p string) bool { return numeric(v, p, func(a, b float64) bool { return a <= b }) }
	case "NumericGreaterThan":
		eq = func(p string) bool { return numeric(v, p, func(a, b float64) bool { return a > b }) }
	case "NumericGreaterThanEquals":
		eq = func(p string) bool { return numeric(v, p, func(a, b float64) bool { return a >= b }) }
	default:
		return false // an operator IAM does not know matches nothing
	}
	hit := slices.ContainsFunc(want, eq)
	if negated(op) {
		return !hit
	}
	return hit
}

func numeric(a, b string, f func(float64, float64) bool) bool {
	x, err1 := strconv.ParseFloat(a, 64)
	y, err2 := strconv.ParseFloat(b, 64)
	return err1 == nil && err2 == nil && f(x, y)
}

// ParseDocument reads a policy document in IAM's JSON grammar: Statement is an object or a
// list; Action, NotAction, Resource, NotResource and condition values are strings or lists.
// Every string must already be resolved (no intrinsic functions).
func ParseDocument(name string, doc any) (Policy, error) {
	m, ok := doc.(map[string]any)
	if !ok {
		return Policy{}, fmt.Errorf("iam: policy %s is not an object", name)
	}
	raw := m["Statement"]
	list, ok := raw.([]any)
	if !ok {
		list = []any{raw}
	}
	p := Policy{Name: name}
	for i, r := range list {
		sm, ok := r.(map[string]any)
		if !ok {
			return Policy{}, fmt.Errorf("iam: policy %s statement %d is not an object", name, i)
		}
		var st Statement
		var err error
		for k, v := range sm {
			switch k {
			case "Sid":
				st.Sid, _ = v.(string)
			case "Effect":
				st.Effect, _ = v.(string)
			case "Action":
				st.Action, err = strings1(v)
			case "NotAction":
				st.NotAction, err = strings1(v)
			case "Resource":
				st.Resource, err = strings1(v)
			case "NotResource":
				st.NotResource, err = strings1(v)
			case "Condition":
				st.Condition, err = conditions(v)
			default:
				err = fmt.Errorf("element %s is not supported", k)
			}
			if err != nil {
				return Policy{}, fmt.Errorf("iam: policy %s statement %d: %s: %w", name, i, k, err)
			}
		}
		if st.Effect != Allow && st.Effect != Deny {
			return Policy{}, fmt.Errorf("iam: policy %s statement %d: Effect %q", name, i, st.Effect)
		}
		if (st.Action == nil) == (st.NotAction == nil) || (st.Resource == nil) == (st.NotResource == nil) {
			return Policy{}, fmt.Errorf("iam: policy %s statement %d needs exactly one of Action/NotAction and of Resource/NotResource", name, i)
		}
		p.Statements = append(p.Statements, st)
	}
	return p, nil
}

func strings1(v any) ([]string, error) {
	switch v := v.(type) {
	case string:
		return []string{v}, nil
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("%v is not a string", e)
			}
			out = append(out, s)
		}
		return out, nil
	case []string:
		return v, nil
	}
	return nil, fmt.Errorf("%v is neither a string nor a list of strings", v)
}

func conditions(v any) (map[string]map[string][]string, error) {
	ops, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("not an object")
	}
	out := map[string]map[string][]string{}
	for op, keys := range ops {
		km, ok := keys.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s is not an object", op)
		}
		out[op] = map[string][]string{}
		for k, vals := range km {
			var s []string
			switch vals := vals.(type) {
			case bool:
				s = []string{strconv.FormatBool(vals)}
			case int:
				s = []string{strconv.Itoa(vals)}
			default:
				var err error
				if s, err = strings1(vals); err != nil {
					return nil, fmt.Errorf("%s %s: %w", op, k, err)
				}
			}
			out[op][k] = s
		}
	}
	return out, nil
}

// MarshalJSON renders a statement in IAM's grammar, for logs and tests.
func (st Statement) MarshalJSON() ([]byte, error) {
	m := map[string]any{"Effect": st.Effect}
	for k, v := range map[string][]string{"Action": st.Action, "NotAction": st.NotAction, "Resource": st.Resource, "NotResource": st.NotResource} {
		if v != nil {
			m[k] = v
		}
	}
	if st.Sid != "" {
		m["Sid"] = st.Sid
	}
	if st.Condition != nil {
		m["Condition"] = st.Condition
	}
	return json.Marshal(m)
}
