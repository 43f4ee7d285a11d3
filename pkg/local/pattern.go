package local

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Pattern is a Lambda event-filtering pattern: a JSON object whose leaves are arrays of
// allowed values. Supported matchers: exact strings, numbers and booleans, {"prefix": s},
// {"exists": bool} and {"anything-but": value or [values]}; anything else is refused when the
// pattern is parsed, so a filter is never silently ignored.
type Pattern struct{ root map[string]any }

// ParsePattern parses a filter pattern.
func ParsePattern(s string) (Pattern, error) {
	var root map[string]any
	if err := json.Unmarshal([]byte(s), &root); err != nil {
		return Pattern{}, fmt.Errorf("filter pattern: %w", err)
	}
	if err := checkPattern(root); err != nil {
		return Pattern{}, err
	}
	return Pattern{root}, nil
}

func checkPattern(node map[string]any) error {
	for k, v := range node {
		switch v := v.(type) {
		case map[string]any:
			if err := checkPattern(v); err != nil {
				return err
			}
		case []any:
			for _, m := range v {
				if obj, ok := m.(map[string]any); ok {
					if len(obj) != 1 {
						return fmt.Errorf("filter pattern: matcher %v under %q", obj, k)
					}
					for op := range obj {
						switch op {
						case "prefix", "exists", "anything-but":
						default:
							return fmt.Errorf("filter pattern: matcher %q under %q is not supported locally", op, k)
						}
					}
				}
			}
		default:
			return fmt.Errorf("filter pattern: %q must be an object or an array", k)
		}
	}
	return nil
}

// Match reports whether doc, an event as JSON, matches the pattern.
func (p Pattern) Match(doc map[string]any) bool { return matchNode(p.root, doc) }

func matchNode(pattern, doc map[string]any) bool {
	for k, want := range pattern {
		v, present := doc[k]
		switch want := want.(type) {
		case map[string]any:
			sub, ok := v.(map[string]any)
			if !ok || !matchNode(want, sub) {
				return false
			}
		case []any:
			if !matchLeaf(want, v, present) {
				return false
			}
		}
	}
	return true
}

func matchLeaf(matchers []any, v any, present bool) bool {
	for _, m := range matchers {
		switch m := m.(type) {
		case map[string]any:
			if e, ok := m["exists"].(bool); ok && e == present {
				return true
			}
			if pre, ok := m["prefix"].(string); ok && present {
				if s, ok := v.(string); ok && strings.HasPrefix(s, pre) {
					return true
				}
			}
			if ab, ok := m["anything-but"]; ok && present && !equalsAny(ab, v) {
				return true
			}
		default:
			if present && equal(m, v) {
				return true
			}
		}
	}
	return false
}

func equalsAny(list, v any) bool {
	if l, ok := list.([]any); ok {
		for _, x := range l {
			if equal(x, v) {
				return true
			}
		}
		return false
	}
	return equal(list, v)
}

// equal compares a pattern value with an event value; DynamoDB numbers arrive as strings.
func equal(want, got any) bool {
	if w, ok := want.(float64); ok {
		if s, ok := got.(string); ok {
			return fmt.Sprint(w) == s
		}
	}
	return want == got
}
