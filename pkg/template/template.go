// Package template reads the SAM template (template.yaml) that deploys the system, so that
// tests and the local stack take their wiring from the same file AWS does: the table's
// definition, the functions and their environment, the routes and the authorizer.
package template

import (
	"fmt"
	"os"
	"strings"

	"gopkg.in/yaml.v3"
)

// Template is a parsed SAM template. Intrinsic functions written in short form (!Ref, !GetAtt,
// !Sub, ...) are turned into their long form ({"Ref": ...}, {"Fn::GetAtt": [...]}, ...), so
// callers see one shape.
type Template struct {
	Parameters map[string]Parameter
	Globals    map[string]any
	Resources  map[string]Resource
	Conditions map[string]any // condition name → its expression
	Rules      map[string]any // rule name → {RuleCondition?, Assertions}
}

// Parameter is a template parameter and its constraints.
type Parameter struct {
	Type                  string
	Default               any
	AllowedValues         []any
	AllowedPattern        string
	MinValue, MaxValue    any
	MinLength, MaxLength  any
	ConstraintDescription string
}

// Resource is one resource of the template.
type Resource struct {
	Type       string
	Properties map[string]any
	Metadata   map[string]any
	Condition  string // the condition the resource is created under; "" for always
	DependsOn  any    // a logical id or a list of them, as written
}

// Load reads and parses the template at path.
func Load(path string) (*Template, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(b)
}

// Parse parses a template.
func Parse(b []byte) (*Template, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, fmt.Errorf("template: %w", err)
	}
	if len(root.Content) != 1 {
		return nil, fmt.Errorf("template: empty document")
	}
	doc, err := value(root.Content[0])
	if err != nil {
		return nil, err
	}
	top, ok := doc.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("template: top level is not a mapping")
	}
	t := &Template{Parameters: map[string]Parameter{}, Resources: map[string]Resource{}}
	t.Globals, _ = top["Globals"].(map[string]any)
	t.Conditions, _ = top["Conditions"].(map[string]any)
	t.Rules, _ = top["Rules"].(map[string]any)
	params, _ := top["Parameters"].(map[string]any)
	for name, raw := range params {
		p, _ := raw.(map[string]any)
		typ, _ := p["Type"].(string)
		allowed, _ := p["AllowedValues"].([]any)
		pattern, _ := p["AllowedPattern"].(string)
		desc, _ := p["ConstraintDescription"].(string)
		t.Parameters[name] = Parameter{Type: typ, Default: p["Default"], AllowedValues: allowed, AllowedPattern: pattern,
			MinValue: p["MinValue"], MaxValue: p["MaxValue"], MinLength: p["MinLength"], MaxLength: p["MaxLength"],
			ConstraintDescription: desc}
	}
	resources, _ := top["Resources"].(map[string]any)
	for name, raw := range resources {
		r, ok := raw.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("template: resource %s is not a mapping", name)
		}
		typ, _ := r["Type"].(string)
		props, _ := r["Properties"].(map[string]any)
		meta, _ := r["Metadata"].(map[string]any)
		cond, _ := r["Condition"].(string)
		t.Resources[name] = Resource{Type: typ, Properties: props, Metadata: meta, Condition: cond, DependsOn: r["DependsOn"]}
	}
	return t, nil
}

// value converts a YAML node into maps, slices and scalars, expanding short-form intrinsics.
func value(n *yaml.Node) (any, error) {
	var v any
	switch n.Kind {
	case yaml.AliasNode:
		return value(n.Alias)
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			val, err := value(n.Content[i+1])
			if err != nil {
				return nil, err
			}
			m[n.Content[i].Value] = val
		}
		v = m
	case yaml.SequenceNode:
		s := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			val, err := value(c)
			if err != nil {
				return nil, err
			}
			s = append(s, val)
		}
		v = s
	case yaml.ScalarNode:
		if intrinsic(n.Tag) {
			v = n.Value // a short-form intrinsic's argument is a plain string
		} else if err := n.Decode(&v); err != nil {
			return nil, fmt.Errorf("template: line %d: %w", n.Line, err)
		}
	default:
		return nil, fmt.Errorf("template: line %d: unexpected YAML node", n.Line)
	}
	if !intrinsic(n.Tag) {
		return v, nil
	}
	name := strings.TrimPrefix(n.Tag, "!")
	switch name {
	case "Ref", "Condition":
		return map[string]any{name: v}, nil
	case "GetAtt":
		if s, ok := v.(string); ok {
			resource, attr, _ := strings.Cut(s, ".")
			v = []any{resource, attr}
		}
	}
	return map[string]any{"Fn::" + name: v}, nil
}

// intrinsic reports whether a node's tag is a CloudFormation short form (!Ref), not one of
// YAML's own (!!str, !!map, ...).
func intrinsic(tag string) bool {
	return strings.HasPrefix(tag, "!") && !strings.HasPrefix(tag, "!!")
}
