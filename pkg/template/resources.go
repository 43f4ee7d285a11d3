package template

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Resolver gives intrinsic functions their values outside CloudFormation: parameter values
// (defaults unless overridden), what !Ref of a resource means, and resource attributes.
type Resolver struct {
	Params map[string]string // overrides; parameters not named take their Default
	Refs   map[string]string // logical id → what !Ref returns
	Attrs  map[string]string // "LogicalId.Attribute" → what !GetAtt returns
	Pseudo map[string]string // "AWS::Region" and the like
}

// Resolve turns a property value into a string: scalars as CloudFormation would stringify
// them, !Ref, !GetAtt and !Sub through r. Anything else is an error naming the construct.
func (t *Template) Resolve(v any, r Resolver) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case int:
		return strconv.Itoa(v), nil
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), nil
	case bool:
		return strconv.FormatBool(v), nil
	case map[string]any:
		if len(v) != 1 {
			break
		}
		if ref, ok := v["Ref"].(string); ok {
			if ref == "AWS::NoValue" {
				return "", ErrNoValue
			}
			return t.ref(ref, r)
		}
		if branches, ok := v["Fn::If"].([]any); ok && len(branches) == 3 {
			name, _ := branches[0].(string)
			ok, err := t.Condition(name, r)
			if err != nil {
				return "", err
			}
			if ok {
				return t.Resolve(branches[1], r)
			}
			return t.Resolve(branches[2], r)
		}
		if ga, ok := v["Fn::GetAtt"].([]any); ok && len(ga) == 2 {
			name := fmt.Sprint(ga[0]) + "." + fmt.Sprint(ga[1])
			if s, ok := r.Attrs[name]; ok {
				return s, nil
			}
			return "", fmt.Errorf("template: !GetAtt %s is not supported locally", name)
		}
		switch sub := v["Fn::Sub"].(type) {
		case string:
			return t.sub(sub, r, nil)
		case []any:
			// [template, {name: value}]: the names are resolved first and shadow the rest.
			s, ok1 := sub[0].(string)
			vars, ok2 := sub[1].(map[string]any)
			if len(sub) != 2 || !ok1 || !ok2 {
				break
			}
			resolved := map[string]string{}
			for k, raw := range vars {
				val, err := t.Resolve(raw, r)
				if err != nil {
					return "", err
				}
				resolved[k] = val
			}
			return t.sub(s, r, resolved)
		}
	}
	return "", fmt.Errorf("template: cannot resolve %v locally", v)
}

func (t *Template) ref(name string, r Resolver) (string, error) {
	if s, ok := r.Params[name]; ok {
		return s, nil
	}
	if p, ok := t.Parameters[name]; ok {
		if p.Default == nil {
			return "", fmt.Errorf("template: parameter %s has no default and no local value", name)
		}
		return t.Resolve(p.Default, r)
	}
	if s, ok := r.Refs[name]; ok {
		return s, nil
	}
	if s, ok := r.Pseudo[name]; ok {
		return s, nil
	}
	return "", fmt.Errorf("template: !Ref %s is not supported locally", name)
}

func (t *Template) sub(s string, r Resolver, vars map[string]string) (string, error) {
	var b strings.Builder
	for {
		start := strings.Index(s, "${")
		if start < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		end := strings.Index(s[start:], "}")
		if end < 0 {
			return "", fmt.Errorf("template: unterminated ${ in !Sub %q", s)
		}
		b.WriteString(s[:start])
		name := s[start+2 : start+end]
		val, isVar := vars[name]
		var err error
		switch res, attr, isAttr := strings.Cut(name, "."); {
		case isVar:
		case isAttr && !strings.Contains(name, "::"):
			val, err = t.Resolve(map[string]any{"Fn::GetAtt": []any{res, attr}}, r)
		default:
			val, err = t.ref(name, r)
		}
		if err != nil {
			return "", err
		}
		b.WriteString(val)
		s = s[start+end+1:]
	}
}

// ErrNoValue is what Resolve returns for AWS::NoValue: the property is to be left out.
var ErrNoValue = errors.New("template: AWS::NoValue")

// Condition evaluates a named condition of the template's Conditions.
func (t *Template) Condition(name string, r Resolver) (bool, error) {
	expr, ok := t.Conditions[name]
	if !ok {
		return false, fmt.Errorf("template: no condition %q", name)
	}
	return t.evalCondition(expr, r)
}

// evalCondition evaluates a condition function: Fn::Equals, Fn::Not, Fn::And, Fn::Or and a
// reference to another condition.
func (t *Template) evalCondition(expr any, r Resolver) (bool, error) {
	m, ok := expr.(map[string]any)
	if !ok || len(m) != 1 {
		return false, fmt.Errorf("template: %v is not a condition", expr)
	}
	for fn, arg := range m {
		args, _ := arg.([]any)
		switch fn {
		case "Condition":
			name, _ := arg.(string)
			return t.Condition(name, r)
		case "Fn::Equals":
			if len(args) != 2 {
				break
			}
			a, err := t.Resolve(args[0], r)
			if err != nil {
				return false, err
			}
			b, err := t.Resolve(args[1], r)
			return a == b, err
		case "Fn::Not":
			if len(args) != 1 {
				break
			}
			v, err := t.evalCondition(args[0], r)
			return !v, err
		case "Fn::And", "Fn::Or":
			for _, a := range args {
				v, err := t.evalCondition(a, r)
				if err != nil {
					return false, err
				}
				if v == (fn == "Fn::Or") {
					return v, nil
				}
			}
			return fn == "Fn::And", nil
		}
		return false, fmt.Errorf("template: condition %s %v is not supported locally", fn, arg)
	}
	panic("unreachable")
}

// CheckRules evaluates the template's Rules as CloudFormation does before it deploys: a rule
// whose RuleCondition holds (or that has none) fails the deploy at its first false assertion,
// with that assertion's description.
func (t *Template) CheckRules(r Resolver) error {
	for _, name := range slices.Sorted(maps.Keys(t.Rules)) {
		rule, _ := t.Rules[name].(map[string]any)
		if cond, ok := rule["RuleCondition"]; ok {
			applies, err := t.evalCondition(cond, r)
			if err != nil {
				return fmt.Errorf("template: rule %s: %w", name, err)
			}
			if !applies {
				continue
			}
		}
		asserts, _ := rule["Assertions"].([]any)
		for _, raw := range asserts {
			a, _ := raw.(map[string]any)
			ok, err := t.evalCondition(a["Assert"], r)
			if err != nil {
				return fmt.Errorf("template: rule %s: %w", name, err)
			}
			if !ok {
				return fmt.Errorf("template: rule %s failed: %v", name, a["AssertDescription"])
			}
		}
	}
	return nil
}

// ResolveDeep resolves every intrinsic function inside v (a document of maps, lists and
// scalars) to its string, leaving the rest as it is.
func (t *Template) ResolveDeep(v any, r Resolver) (any, error) {
	switch v := v.(type) {
	case map[string]any:
		if len(v) == 1 {
			for k := range v {
				if k == "Ref" || strings.HasPrefix(k, "Fn::") {
					return t.Resolve(v, r)
				}
			}
		}
		out := make(map[string]any, len(v))
		for k, e := range v {
			res, err := t.ResolveDeep(e, r)
			if err != nil {
				return nil, err
			}
			out[k] = res
		}
		return out, nil
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			res, err := t.ResolveDeep(e, r)
			if err != nil {
				return nil, err
			}
			out[i] = res
		}
		return out, nil
	}
	return v, nil
}

// Function is an AWS::Serverless::Function with Globals applied.
type Function struct {
	LogicalID   string
	Environment map[string]any // unresolved values
	Events      map[string]Event
	Timeout     int
	Tracing     any   // unresolved; nil when tracing is not configured
	Policies    []any // as the template writes them: names, policy templates, documents
}

// Event is one entry of a function's Events.
type Event struct {
	Name       string
	Type       string
	Properties map[string]any
}

// Supported describes what the local stack understands; anything else in the template makes
// Functions and Check fail, so a feature is never silently missing locally.
var (
	supportedResources = []string{
		"AWS::Serverless::Function", "AWS::Serverless::Api", "AWS::DynamoDB::Table",
		"AWS::SecretsManager::Secret", "AWS::Logs::LogGroup", "AWS::SQS::Queue",
		// Monitoring and account settings, which act outside what the local stack serves: it
		// reads past them (pkg/template's tests hold their shape to AWS's).
		"AWS::CloudWatch::Alarm", "AWS::Logs::MetricFilter", "AWS::IAM::Role",
		"AWS::ApiGateway::Account", "AWS::CloudFormation::WaitConditionHandle",
	}
	supportedFunctionProperties = []string{
		"CodeUri", "Description", "Environment", "Events", "LoggingConfig", "Policies",
		"Timeout", "MemorySize", "Runtime", "Architectures", "Handler", "Tracing", "ReservedConcurrentExecutions",
	}
	supportedEvents = []string{"Api", "DynamoDB", "Schedule", "ScheduleV2"}
)

// Check reports every resource type, function property and event type the local stack does
// not understand.
func (t *Template) Check() error {
	var problems []string
	for _, id := range slices.Sorted(maps.Keys(t.Resources)) {
		r := t.Resources[id]
		if !slices.Contains(supportedResources, r.Type) {
			problems = append(problems, fmt.Sprintf("resource %s: type %s", id, r.Type))
			continue
		}
		if r.Type != "AWS::Serverless::Function" {
			continue
		}
		if bm, _ := r.Metadata["BuildMethod"].(string); bm != "makefile" {
			problems = append(problems, fmt.Sprintf("function %s: BuildMethod %q (want makefile)", id, bm))
		}
		for _, k := range slices.Sorted(maps.Keys(r.Properties)) {
			if !slices.Contains(supportedFunctionProperties, k) {
				problems = append(problems, fmt.Sprintf("function %s: property %s", id, k))
			}
		}
		events, _ := r.Properties["Events"].(map[string]any)
		for _, name := range slices.Sorted(maps.Keys(events)) {
			e, _ := events[name].(map[string]any)
			if typ, _ := e["Type"].(string); !slices.Contains(supportedEvents, typ) {
				problems = append(problems, fmt.Sprintf("function %s: event %s of type %q", id, name, typ))
			}
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("template: not supported by the local stack: %s", strings.Join(problems, "; "))
	}
	return nil
}

// Functions returns every function with the template's Globals merged in. The local stack
// runs Check first; what a function's IAM role is does not depend on it.
func (t *Template) Functions() (map[string]Function, error) {
	globals := mapping(mapping(t.Globals)["Function"])
	out := map[string]Function{}
	for id, r := range t.Resources {
		if r.Type != "AWS::Serverless::Function" {
			continue
		}
		f := Function{LogicalID: id, Environment: map[string]any{}, Events: map[string]Event{}}
		maps.Copy(f.Environment, mapping(mapping(globals["Environment"])["Variables"]))
		maps.Copy(f.Environment, mapping(mapping(r.Properties["Environment"])["Variables"]))
		timeout := r.Properties["Timeout"]
		if timeout == nil {
			timeout = globals["Timeout"]
		}
		f.Timeout, _ = timeout.(int)
		f.Tracing = r.Properties["Tracing"]
		if f.Tracing == nil {
			f.Tracing = globals["Tracing"]
		}
		switch p := r.Properties["Policies"].(type) {
		case []any:
			f.Policies = p
		case nil:
		default:
			f.Policies = []any{p} // SAM takes a single name, template or document too
		}
		for name, raw := range mapping(r.Properties["Events"]) {
			e := mapping(raw)
			f.Events[name] = Event{Name: name, Type: str(e["Type"]), Properties: mapping(e["Properties"])}
		}
		out[id] = f
	}
	return out, nil
}

// Env resolves a function's environment variables to strings.
func (t *Template) Env(f Function, r Resolver) (map[string]string, error) {
	env := map[string]string{}
	keys := slices.Collect(maps.Keys(f.Environment))
	sort.Strings(keys)
	for _, k := range keys {
		v, err := t.Resolve(f.Environment[k], r)
		if errors.Is(err, ErrNoValue) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("function %s: environment %s: %w", f.LogicalID, k, err)
		}
		env[k] = v
	}
	return env, nil
}
