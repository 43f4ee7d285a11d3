package testkit

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/aws/aws-lambda-go/events"
)

// LoadEvent reads the API Gateway proxy event at path, one of the events/ fixtures that
// `sam local invoke` takes too.
func LoadEvent(tb testing.TB, path string) events.APIGatewayProxyRequest {
	tb.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	var ev events.APIGatewayProxyRequest
	if err := json.Unmarshal(raw, &ev); err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	return ev
}
