package dynamolocal

// NumberSize exposes numberSize to the tests.
func NumberSize(s string) int {
	n, _ := numberSize(s)
	return n
}
