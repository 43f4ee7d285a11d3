// Package local runs the whole system on one machine, as it runs in AWS, with nothing but Go:
// it reads template.yaml for the routes, the authorizer, each function's environment, the
// table, the stream subscription and the schedule; serves the REST API with API Gateway's
// semantics (TOKEN authorizer, policy evaluation, Gateway Responses, proxy events); embeds
// minidyn as DynamoDB with a stand-in for its stream; and acts as the identity provider for
// dashboard users. Functions run in process, invoked with the events AWS would send them.
package local

// The account, region and API id the local stack pretends to be in; they appear in ARNs.
const (
	Region    = "us-east-1"
	AccountID = "123456789012"
	APIID     = "local"
)
