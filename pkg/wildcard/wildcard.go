// Package wildcard matches IAM's wildcard patterns, as IAM policies (and API Gateway's
// execute-api policies, which are IAM policies) write actions and resources: `*` is any run of
// characters, `?` any one character, everything else itself.
package wildcard

// Match reports whether s matches pattern: two pointers, backtracking only to the last star,
// so no pattern makes it exponential (at worst the product of the two lengths).
func Match(pattern, s string) bool {
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == s[i]):
			p++
			i++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}
