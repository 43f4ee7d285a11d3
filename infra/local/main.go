// Command local serves the whole system on this machine, as template.yaml deploys it to AWS,
// with nothing but Go: `make run`. It listens on 127.0.0.1:3000 (PORT overrides) and stops
// cleanly on Ctrl-C. PARAMETER_OVERRIDES sets template parameters in the syntax of
// `sam deploy --parameter-overrides`; DYNAMODB_ENDPOINT runs it on another DynamoDB (moto
// server, LocalStack, AWS), whose stream it reads at DYNAMODB_STREAMS_ENDPOINT (default the same).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/opentrace/service-accounts/pkg/local"
	"github.com/opentrace/service-accounts/pkg/template"
)

func main() {
	tpl := flag.String("template", "template.yaml", "the SAM template to serve")
	flag.Parse()
	port := os.Getenv("PORT")
	if port == "" {
		port = "3000"
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	params, err := template.ParseOverrides(os.Getenv("PARAMETER_OVERRIDES"))
	if err != nil {
		log.Error("PARAMETER_OVERRIDES", slog.String("error", err.Error()))
		os.Exit(2)
	}
	opts := local.Options{
		Template: *tpl, Params: params, Logs: os.Stderr,
		DynamoDBEndpoint: os.Getenv("DYNAMODB_ENDPOINT"), DynamoDBStreamsEndpoint: os.Getenv("DYNAMODB_STREAMS_ENDPOINT"),
	}
	if err := run("127.0.0.1:"+port, opts); err != nil {
		log.Error("local stack failed", slog.String("error", err.Error()))
		os.Exit(1)
	}
}

func run(addr string, opts local.Options) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	stack, err := local.Start(ctx, ln, opts)
	if err != nil {
		ln.Close()
		return err
	}
	fmt.Printf(`OpenTrace service accounts: serving %[1]s

Try it:
  ADMIN=$(curl -s -X POST %[1]s/local/dev-token -H 'Content-Type: application/json' \
    -d '{"org":"org_acme","role":"admin","user":"user_alice"}' | jq -r .token)
  curl -s -X POST %[1]s/orgs/org_acme/service-accounts -H "Authorization: Bearer $ADMIN" \
    -H 'Content-Type: application/json' -d '{"name":"claude-code-dev-team"}'

The README's quick start walks the whole flow. Ctrl-C stops.
`, stack.URL)
	<-ctx.Done()
	fmt.Println("stopping")
	return stack.Close()
}
