package template

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ParseOverrides reads parameter values in the syntax of `sam deploy --parameter-overrides`:
// `Key=Value Key2=Value2`, or `ParameterKey=Key,ParameterValue=Value …`. A value holding spaces
// is quoted ('Key="a b"'), or its spaces escaped (a\ b). Anything else is an error, where SAM
// would silently drop what it cannot read.
func ParseOverrides(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, word := range splitWords(s) {
		key, value, ok := strings.Cut(word, "=")
		if k, rest, long := strings.Cut(word, ","); long && strings.HasPrefix(k, "ParameterKey=") {
			key = strings.TrimPrefix(k, "ParameterKey=")
			value, ok = strings.CutPrefix(rest, "ParameterValue=")
		}
		if !ok || !paramName.MatchString(key) {
			return nil, fmt.Errorf("parameter overrides: %q is not Key=Value or ParameterKey=Key,ParameterValue=Value", word)
		}
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("parameter overrides: %s is given twice", key)
		}
		out[key] = value
	}
	return out, nil
}

var paramName = regexp.MustCompile(`^[A-Za-z0-9]+$`)

// splitWords splits on unquoted, unescaped spaces and removes the quotes and escapes.
func splitWords(s string) []string {
	var words []string
	var cur strings.Builder
	quote, escaped, inWord := rune(0), false, false
	for _, r := range s {
		switch {
		case escaped:
			cur.WriteRune(r)
			escaped = false
		case r == '\\':
			escaped, inWord = true, true
		case quote != 0 && r == quote:
			quote = 0
		case quote == 0 && (r == '"' || r == '\''):
			quote, inWord = r, true
		case quote == 0 && (r == ' ' || r == '\t' || r == '\n'):
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// CheckParams validates parameter values as CloudFormation does before it deploys: each must
// be declared, and meet its parameter's AllowedValues, Number type, MinValue and MaxValue,
// MinLength and MaxLength, and AllowedPattern. The error names the parameter and the rule in
// CloudFormation's words, after the package's prefix.
func (t *Template) CheckParams(values map[string]string) error {
	var undeclared []string
	for _, name := range slices.Sorted(maps.Keys(values)) {
		if _, ok := t.Parameters[name]; !ok {
			undeclared = append(undeclared, name)
		}
	}
	if len(undeclared) > 0 {
		return fmt.Errorf("template: Parameters: [%s] do not exist in the template", strings.Join(undeclared, ", "))
	}
	for _, name := range slices.Sorted(maps.Keys(values)) {
		if err := t.Parameters[name].check(name, values[name]); err != nil {
			return err
		}
	}
	return nil
}

var number = regexp.MustCompile(`^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$`)

func (p Parameter) check(name, v string) error {
	fail := func(format string, args ...any) error {
		if p.ConstraintDescription != "" {
			return fmt.Errorf("template: Parameter %s failed to satisfy constraint: %s", name, p.ConstraintDescription)
		}
		return fmt.Errorf("template: Parameter '%s' "+format, append([]any{name}, args...)...)
	}
	if len(p.AllowedValues) > 0 && !slices.ContainsFunc(p.AllowedValues, func(a any) bool { return fmt.Sprint(a) == v }) {
		return fail("must be one of AllowedValues (%s)", strings.Trim(fmt.Sprint(p.AllowedValues), "[]"))
	}
	if p.Type == "Number" {
		if !number.MatchString(v) {
			return fail("must be a number.")
		}
		f, _ := strconv.ParseFloat(v, 64)
		if min, ok := bound(p.MinValue); ok && f < min {
			return fail("must be a number not less than %v", p.MinValue)
		}
		if max, ok := bound(p.MaxValue); ok && f > max {
			return fail("must be a number not greater than %v", p.MaxValue)
		}
		return nil
	}
	n := utf8.RuneCountInString(v)
	if min, ok := bound(p.MinLength); ok && float64(n) < min {
		return fail("must contain at least %v characters", p.MinLength)
	}
	if max, ok := bound(p.MaxLength); ok && float64(n) > max {
		return fail("must contain at most %v characters", p.MaxLength)
	}
	if p.AllowedPattern != "" {
		re, err := regexp.Compile("^(?:" + p.AllowedPattern + ")$")
		if err != nil {
			return fmt.Errorf("parameter %s: AllowedPattern %q: %w", name, p.AllowedPattern, err)
		}
		if !re.MatchString(v) {
			return fail("must match pattern %s", p.AllowedPattern)
		}
	}
	return nil
}

func bound(v any) (float64, bool) {
	switch v := v.(type) {
	case int:
		return float64(v), true
	case float64:
		return v, true
	case string:
		f, err := strconv.ParseFloat(v, 64)
		return f, err == nil
	}
	return 0, false
}
