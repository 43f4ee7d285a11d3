package local_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/opentrace/service-accounts/pkg/dynamo/dynamotest"
	"github.com/opentrace/service-accounts/pkg/local"
	"github.com/opentrace/service-accounts/pkg/testkit"
	"github.com/opentrace/service-accounts/pkg/testworld"
	"github.com/opentrace/service-accounts/pkg/token"
)

// onMoto points a stack at the moto server at MOTO_URL, on a table of its own, when the tests
// run with DYNAMODB_BACKEND=moto (`make test` runs the end-to-end seed flow that way too).
func onMoto(t testing.TB, o *local.Options) {
	t.Helper()
	if os.Getenv("DYNAMODB_BACKEND") != "moto" {
		return
	}
	o.DynamoDBEndpoint = os.Getenv("MOTO_URL")
	if o.DynamoDBEndpoint == "" {
		t.Fatal("DYNAMODB_BACKEND=moto needs MOTO_URL, the moto server's endpoint")
	}
	o.TableName = "service-accounts-" + strings.ToLower(rand.Text()[:10])
	o.Transport = dynamotest.SerialWrites
	// moto copies every table it holds for each transaction: tables left behind slow down
	// every test after them.
	table := o.TableName
	t.Cleanup(func() {
		db := dynamotest.NewClient(o.DynamoDBEndpoint, nil)
		_, _ = db.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(table)})
	})
}

// startStack serves template.yaml on a free loopback port until the test ends, with the
// options set as opts says.
func startStack(t testing.TB, opts ...func(*local.Options)) (*local.Stack, *testkit.Buffer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := &testkit.Buffer{}
	o := local.Options{Template: "../../template.yaml", Logs: logs, RetryBackoff: time.Millisecond}
	onMoto(t, &o)
	for _, set := range opts {
		set(&o)
	}
	s, err := local.Start(context.Background(), ln, o)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, logs
}

type response struct {
	status int
	header http.Header
	raw    string
	body   map[string]any
}

// call makes one plain net/http request, as any client of the API would.
func call(t testing.TB, method, url, bearer string, body any) response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, _ := json.Marshal(b)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	req.Header.Set("Content-Type", "application/json")
	return do(t, req)
}

// exchange makes one request with exactly the headers given, for callers that need more
// control than call gives (another scheme, a raw Authorization value, Accept).
func exchange(t testing.TB, method, u string, h http.Header, body string) response {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = h
	return do(t, req)
}

// do sends req and reads the whole response.
func do(t testing.TB, req *http.Request) response {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := response{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

func (r response) want(t testing.TB, status int) response {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.raw)
	}
	return r
}

// exchangeText is everything a client sees of a response, for leak and equality checks:
// status, headers a client can read (Date aside, which differs between any two responses)
// and body.
func exchangeText(r response) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d\n", r.status)
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range r.header {
			if !yield(k) {
				return
			}
		}
	}) {
		if k == "Date" {
			continue
		}
		fmt.Fprintf(&b, "%s: %s\n", k, strings.Join(r.header[k], ", "))
	}
	b.WriteString(r.raw)
	return b.String()
}

// rpcWhoami calls the whoami tool of the MCP endpoint in one request, as the README's curl
// does: the server is stateless, so a tools/call needs no initialize before it.
func rpcWhoami(t testing.TB, u, bearer string) response {
	t.Helper()
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("Accept", "application/json, text/event-stream")
	if bearer != "" {
		h.Set("Authorization", "Bearer "+bearer)
	}
	return exchange(t, "POST", u, h,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","arguments":{}}}`)
}

func devToken(t testing.TB, s *local.Stack, org, role, user string) string {
	t.Helper()
	return devTokenAt(t, s.URL, org, role, user)
}

// devTokenAt mints a dashboard user's JWT from the local stack serving at url.
func devTokenAt(t testing.TB, url, org, role, user string) string {
	t.Helper()
	r := call(t, "POST", url+"/local/dev-token", "", map[string]string{"org": org, "role": role, "user": user}).want(t, 200)
	return r.body["token"].(string)
}

// unknownToken returns a well-formed token with a valid checksum that no stack ever issued.
func unknownToken(t testing.TB) string {
	t.Helper()
	tok, err := token.Generate(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// withTypo changes the last character of a token, as a mistyped paste would; the checksum
// catches every single-character change.
func withTypo(tok string) string {
	last := tok[len(tok)-1]
	repl := byte('A')
	if last == 'A' {
		repl = 'B'
	}
	return tok[:len(tok)-1] + string(repl)
}

// headerTransport adds configured headers to every request, as an MCP client does with the
// "headers" of its server configuration.
type headerTransport struct {
	headers map[string]string
	next    http.RoundTripper
}

func (h headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range h.headers {
		r.Header.Set(k, v)
	}
	return h.next.RoundTrip(r)
}

// mcpConnect connects the official MCP Go SDK client to url with headers, as an MCP client
// configured with {"type":"http","url":…,"headers":…} does.
func mcpConnect(ctx context.Context, url string, headers map[string]string) (*mcp.ClientSession, error) {
	client := mcp.NewClient(&mcp.Implementation{Name: "claude-code", Version: "1.0.0"}, nil)
	return client.Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint:   url,
		HTTPClient: &http.Client{Transport: headerTransport{headers: headers, next: http.DefaultTransport}},
		MaxRetries: -1,
	}, nil)
}

// listAll pages through an org's accounts.
func listAll(t *testing.T, s *local.Stack, org, admin string) []map[string]any {
	t.Helper()
	var all []map[string]any
	cursor := ""
	for {
		u := s.URL + "/orgs/" + org + "/service-accounts?limit=100"
		if cursor != "" {
			u += "&cursor=" + url.QueryEscape(cursor)
		}
		page := call(t, "GET", u, admin, nil).want(t, 200)
		for _, it := range page.body["items"].([]any) {
			all = append(all, it.(map[string]any))
		}
		next, _ := page.body["nextCursor"].(string)
		if next == "" {
			return all
		}
		cursor = next
	}
}

// apiRoutes are the routes template.yaml gives API Gateway, as "METHOD /path", sorted.
func apiRoutes(t testing.TB) []string {
	t.Helper()
	var routes []string
	for _, e := range testworld.Events(t, "Api") {
		method, _ := e.Properties["Method"].(string)
		path, _ := e.Properties["Path"].(string)
		routes = append(routes, strings.ToUpper(method)+" "+path)
	}
	slices.Sort(routes)
	return routes
}
