package dynamo

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
)

// conditionFailures returns the positions of the transaction items whose condition failed, or
// none if err is not a cancelled transaction. Callers name the positions (txn.write).
func conditionFailures(err error) []int {
	tce, ok := errors.AsType[*types.TransactionCanceledException](err)
	if !ok {
		return nil
	}
	var failed []int
	for i, r := range tce.CancellationReasons {
		if aws.ToString(r.Code) == "ConditionalCheckFailed" {
			failed = append(failed, i)
		}
	}
	return failed
}

func isConditionFailed(err error) bool {
	_, ok := errors.AsType[*types.ConditionalCheckFailedException](err)
	return ok
}

// classify turns a DynamoDB failure into an application error: throttling, server faults,
// transaction conflicts, timeouts and network failures are EUNAVAILABLE (worth a retry, and
// never an allow); a request DynamoDB refuses as malformed, or one IAM does not allow, is a
// bug or a misconfiguration, EINTERNAL.
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := errors.AsType[*sa.Error](err); ok {
		return err
	}
	err = fmt.Errorf("%s: %w", op, err)
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return sa.Unavailable(err)
	}
	if tce, ok := errors.AsType[*types.TransactionCanceledException](err); ok {
		for _, r := range tce.CancellationReasons {
			switch aws.ToString(r.Code) {
			case "TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded":
				return sa.Unavailable(err)
			}
		}
		return sa.Internal(err)
	}
	if apiErr, ok := errors.AsType[smithy.APIError](err); ok {
		switch apiErr.ErrorCode() {
		case "ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded",
			"TransactionInProgressException", "TransactionConflictException", "LimitExceededException":
			return sa.Unavailable(err)
		}
		// DynamoDB answers 400 for everything else it refuses: a malformed request, a missing
		// table, IAM's AccessDeniedException. Retrying cannot fix those.
		if re, ok := errors.AsType[*awshttp.ResponseError](err); ok && re.HTTPStatusCode() < 500 {
			return sa.Internal(err)
		}
		if apiErr.ErrorFault() == smithy.FaultClient {
			return sa.Internal(err)
		}
	}
	return sa.Unavailable(err)
}

// isConflict reports whether a transaction was cancelled because another one was writing the
// same items at the same moment: worth another attempt.
func isConflict(err error) bool {
	tce, ok := errors.AsType[*types.TransactionCanceledException](err)
	if !ok {
		return false
	}
	for _, r := range tce.CancellationReasons {
		if aws.ToString(r.Code) == "TransactionConflict" {
			return true
		}
	}
	return false
}
