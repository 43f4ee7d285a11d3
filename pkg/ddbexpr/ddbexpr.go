// Package ddbexpr reads DynamoDB expressions (condition, filter, key condition, update and
// projection expressions) as far as AWS's rules need them read on this machine: which
// attributes an expression names (for IAM's dynamodb:Attributes), which placeholders it uses,
// how many operators it holds, and which top-level attributes an update expression removes.
// It evaluates nothing.
package ddbexpr

import (
	"slices"
	"strings"
)

// Tokens splits an expression into names (with their leading # or :), numbers, and operators
// and punctuation of one or two characters.
func Tokens(expr string) []string {
	var out []string
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case isNameChar(c) || c == '#' || c == ':':
			j := i + 1
			for j < len(expr) && isNameChar(expr[j]) {
				j++
			}
			out = append(out, expr[i:j])
			i = j
		case strings.HasPrefix(expr[i:], "<=") || strings.HasPrefix(expr[i:], ">=") || strings.HasPrefix(expr[i:], "<>"):
			out = append(out, expr[i:i+2])
			i += 2
		default:
			out = append(out, expr[i:i+1])
			i++
		}
	}
	return out
}

func isNameStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isNameChar(c byte) bool { return isNameStart(c) || (c >= '0' && c <= '9') }

var keywords = map[string]bool{
	"AND": true, "OR": true, "NOT": true, "BETWEEN": true, "IN": true,
	"SET": true, "REMOVE": true, "ADD": true, "DELETE": true,
}

// path reports whether toks[i] starts a document path: a name or a #placeholder that is not
// a nested element (after a dot), a function (before a parenthesis) or a keyword.
func path(toks []string, i int) bool {
	t := toks[i]
	switch {
	case t == "" || !(isNameStart(t[0]) || t[0] == '#'):
		return false
	case i > 0 && toks[i-1] == ".":
		return false
	case i+1 < len(toks) && toks[i+1] == "(":
		return false
	}
	return !keywords[strings.ToUpper(t)]
}

// TopLevelNames returns the top-level attributes an expression refers to, once each, with
// #placeholders resolved through names: the first element of each document path.
func TopLevelNames(expr string, names map[string]string) []string {
	var out []string
	toks := Tokens(expr)
	for i, t := range toks {
		if !path(toks, i) {
			continue
		}
		if t[0] == '#' {
			t = names[t]
		}
		if t != "" && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

// Placeholders returns the #names and :values an expression uses, once each.
func Placeholders(expr string) (names, values []string) {
	for _, t := range Tokens(expr) {
		switch {
		case strings.HasPrefix(t, "#") && !slices.Contains(names, t):
			names = append(names, t)
		case strings.HasPrefix(t, ":") && !slices.Contains(values, t):
			values = append(values, t)
		}
	}
	return names, values
}

var comparators = map[string]bool{"=": true, "<>": true, "<": true, "<=": true, ">": true, ">=": true, "+": true, "-": true}

// Operators counts what DynamoDB counts against its limit of operators or functions in one
// expression: comparators and arithmetic, AND, OR, NOT, BETWEEN, IN and function calls.
func Operators(expr string) int {
	n := 0
	toks := Tokens(expr)
	for i, t := range toks {
		switch u := strings.ToUpper(t); {
		case comparators[t], u == "AND", u == "OR", u == "NOT", u == "BETWEEN", u == "IN":
			n++
		case i+1 < len(toks) && toks[i+1] == "(" && isNameStart(t[0]):
			n++
		}
	}
	return n
}

// MaxInOperands is the largest number of operands of any IN in expr.
func MaxInOperands(expr string) int {
	most := 0
	toks := Tokens(expr)
	for i, t := range toks {
		if !strings.EqualFold(t, "IN") || i+1 >= len(toks) || toks[i+1] != "(" {
			continue
		}
		n, depth := 1, 0
		for _, u := range toks[i+2:] {
			if u == "(" {
				depth++
			} else if u == ")" {
				if depth == 0 {
					break
				}
				depth--
			} else if u == "," && depth == 0 {
				n++
			}
		}
		most = max(most, n)
	}
	return most
}

var clauses = map[string]bool{"SET": true, "REMOVE": true, "ADD": true, "DELETE": true}

// Removed returns the top-level attributes an update expression's REMOVE clause removes
// outright (a path such as a.b or a[0] removes part of an attribute, not the attribute).
func Removed(expr string, names map[string]string) []string {
	var out []string
	for _, a := range actions(expr, names) {
		if a.clause == "REMOVE" && a.whole {
			out = append(out, a.name)
		}
	}
	return out
}

// UpdatedNames returns the top-level attributes an update expression writes in any of its
// clauses (SET, REMOVE, ADD, DELETE): the target of each action, not its operands.
func UpdatedNames(expr string, names map[string]string) []string {
	var out []string
	for _, a := range actions(expr, names) {
		if !slices.Contains(out, a.name) {
			out = append(out, a.name)
		}
	}
	return out
}

// action is the target of one action of an update expression.
type action struct {
	clause string
	name   string // its top-level attribute
	whole  bool   // the target is the attribute itself, not a part of it
}

// actions lists the targets of an update expression's actions: the first path of each
// comma-separated action of each clause.
func actions(expr string, names map[string]string) []action {
	var out []action
	toks := Tokens(expr)
	clause, target, depth := "", false, 0
	for i, t := range toks {
		switch u := strings.ToUpper(t); {
		case depth == 0 && clauses[u]:
			clause, target = u, true
			continue
		case t == "(":
			depth++
			continue
		case t == ")":
			depth--
			continue
		case t == "," && depth == 0:
			target = true
			continue
		}
		if !target || !path(toks, i) {
			continue
		}
		target = false
		if t[0] == '#' {
			t = names[t]
		}
		whole := i+1 >= len(toks) || (toks[i+1] != "." && toks[i+1] != "[")
		if t != "" {
			out = append(out, action{clause: clause, name: t, whole: whole})
		}
	}
	return out
}
