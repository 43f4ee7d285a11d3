package dynamo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/opentrace/service-accounts/pkg/audit"
	sa "github.com/opentrace/service-accounts/pkg/serviceaccount"
)

// Key layout of the audit, beside the one in items.go:
//
//	ORG#<org>              AUDIT#LATEST       the org's latest report (type audit_report)
//	ORG#<org>              SA#…, TOKEN#…      findings and auditedAt on the items themselves
//	AUDIT                  RUN                the checkpoint of a run in progress
//	AUDITRUN#<runAt ms>    ORG#<org>          an org the run found (type audit_org; TTL)
//
// The per-run org list lives in the table rather than in the checkpoint, so neither the
// checkpoint item (400 KB) nor the function's memory limits how many organisations there are.
const (
	auditReportSK      = "AUDIT#LATEST"
	auditCheckpointPK  = "AUDIT"
	auditCheckpointSK  = "RUN"
	auditRunPrefix     = "AUDITRUN#"
	itemAuditReport    = "audit_report"
	itemAuditRun       = "audit_checkpoint"
	itemAuditOrg       = "audit_org"
	auditScanFilter    = "#type IN (:token, :sa, :tombstone) OR sk = :org"
	auditScanProjected = "pk, sk, #type, saId, tokenId, orgId, createdAt, expiresAt, lastUsedAt, revokedAt, revokedBy, closedAt, findings, purgeAt, purgedAt"
)

var _ audit.Store = (*Store)(nil)

// auditFinding is a finding as items store it. On a token or an account item the ids are the
// item's own and are left out; on a report they say whose finding it is.
type auditFinding struct {
	SAID    string `dynamodbav:"saId,omitempty"`
	TokenID string `dynamodbav:"tokenId,omitempty"`
	Kind    string `dynamodbav:"kind"`
	Since   int64  `dynamodbav:"since"`
	Detail  string `dynamodbav:"detail"`
}

func auditFindings(fs []sa.Finding, withIDs bool) []auditFinding {
	out := make([]auditFinding, len(fs))
	for i, f := range fs {
		out[i] = auditFinding{Kind: f.Kind, Since: ms(f.Since), Detail: f.Detail}
		if withIDs {
			out[i].SAID, out[i].TokenID = f.ServiceAccountID, f.TokenID
		}
	}
	return out
}

func (f auditFinding) domain(saID, tokenID string) sa.Finding {
	if f.SAID != "" {
		saID, tokenID = f.SAID, f.TokenID
	}
	return sa.Finding{ServiceAccountID: saID, TokenID: tokenID, Kind: f.Kind, Since: fromMS(f.Since), Detail: f.Detail}
}

func auditDomainFindings(fs []auditFinding, saID, tokenID string) []sa.Finding {
	if len(fs) == 0 {
		return nil
	}
	out := make([]sa.Finding, len(fs))
	for i, f := range fs {
		out[i] = f.domain(saID, tokenID)
	}
	return out
}

// auditScanItem is the projection of a scanned item: what the rules read.
type auditScanItem struct {
	PK         string         `dynamodbav:"pk"`
	SK         string         `dynamodbav:"sk"`
	Type       string         `dynamodbav:"type"`
	SAID       string         `dynamodbav:"saId"`
	TokenID    string         `dynamodbav:"tokenId"`
	CreatedAt  int64          `dynamodbav:"createdAt"`
	ExpiresAt  *int64         `dynamodbav:"expiresAt"`
	LastUsedAt *int64         `dynamodbav:"lastUsedAt"`
	RevokedAt  *int64         `dynamodbav:"revokedAt"`
	RevokedBy  string         `dynamodbav:"revokedBy"`
	ClosedAt   *int64         `dynamodbav:"closedAt"`
	Findings   []auditFinding `dynamodbav:"findings"`
	OrgID      string         `dynamodbav:"orgId"`    // tombstones
	PurgeAt    int64          `dynamodbav:"purgeAt"`  // tombstones
	PurgedAt   *int64         `dynamodbav:"purgedAt"` // tombstones
}

// ScanAudit reads one page of the table for the audit: token, account and org-counter items,
// projected to what the rules read. Limit bounds the items DynamoDB evaluates, so a response
// never holds more than limit items, and the filter only saves transfer, not read capacity.
// The scan is eventually consistent: a day-old audit does not need the last second's writes,
// and it costs half. Errors: EINVALID (a cursor this method did not issue), EUNAVAILABLE,
// EINTERNAL.
func (s *Store) ScanAudit(ctx context.Context, cursor string, limit int) (audit.Page, error) {
	in := &dynamodb.ScanInput{
		TableName:                s.table,
		Limit:                    aws.Int32(int32(limit)),
		FilterExpression:         aws.String(auditScanFilter),
		ProjectionExpression:     aws.String(auditScanProjected),
		ExpressionAttributeNames: map[string]string{"#type": "type"},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":token": str(itemToken), ":sa": str(itemAccount), ":tombstone": str(itemTombstone), ":org": str(orgSK),
		},
	}
	if cursor != "" {
		var err error
		if in.ExclusiveStartKey, err = auditOpenCursor(cursor); err != nil {
			return audit.Page{}, err
		}
	}
	out, err := s.db.Scan(ctx, in)
	if err != nil {
		return audit.Page{}, classify("audit scan", err)
	}
	items, err := decodeAll[auditScanItem](out.Items, "audit scan")
	if err != nil {
		return audit.Page{}, err
	}
	var page audit.Page
	seen := map[string]bool{}
	for _, it := range items {
		if it.Type == itemTombstone {
			page.DeletedOrgs = append(page.DeletedOrgs, audit.DeletedOrg{OrgID: it.OrgID, PurgeAt: fromMS(it.PurgeAt), Purged: it.PurgedAt != nil})
			continue
		}
		org, ok := strings.CutPrefix(it.PK, orgPrefix)
		if !ok {
			continue
		}
		if !seen[org] {
			seen[org] = true
			page.Orgs = append(page.Orgs, org)
		}
		switch it.Type {
		case itemToken:
			page.Tokens = append(page.Tokens, audit.Token{
				OrgID: org, ServiceAccountID: it.SAID, ID: it.TokenID, CreatedAt: fromMS(it.CreatedAt),
				ExpiresAt: fromMSPtr(it.ExpiresAt), LastUsedAt: fromMSPtr(it.LastUsedAt),
				RevokedAt: fromMSPtr(it.RevokedAt), RevokedBy: it.RevokedBy, ClosedAt: fromMSPtr(it.ClosedAt),
				Findings: auditDomainFindings(it.Findings, it.SAID, it.TokenID),
			})
		case itemAccount:
			page.Accounts = append(page.Accounts, audit.Account{
				OrgID: org, ID: it.SAID, CreatedAt: fromMS(it.CreatedAt), LastUsedAt: fromMSPtr(it.LastUsedAt),
				Findings: auditDomainFindings(it.Findings, it.SAID, ""),
			})
		}
	}
	if len(out.LastEvaluatedKey) > 0 {
		if page.Next, err = auditSealCursor(out.LastEvaluatedKey); err != nil {
			return audit.Page{}, err
		}
	}
	return page, nil
}

// The audit's scan cursor is the table key DynamoDB returned, as JSON. It never leaves the
// function (the checkpoint keeps it), so unlike listing cursors it is not signed.
type auditCursor struct {
	PK string `json:"pk"`
	SK string `json:"sk"`
}

func auditSealCursor(k map[string]types.AttributeValue) (string, error) {
	pk, ok1 := k["pk"].(*types.AttributeValueMemberS)
	sk, ok2 := k["sk"].(*types.AttributeValueMemberS)
	if !ok1 || !ok2 || len(k) != 2 {
		return "", sa.Internal(fmt.Errorf("unexpected scan key %v", k))
	}
	b, err := json.Marshal(auditCursor{PK: pk.Value, SK: sk.Value})
	return string(b), err
}

func auditOpenCursor(c string) (map[string]types.AttributeValue, error) {
	var k auditCursor
	if err := json.Unmarshal([]byte(c), &k); err != nil || k.PK == "" || k.SK == "" {
		return nil, sa.Invalid(sa.FieldError{Field: "cursor", Message: "is not an audit scan cursor"})
	}
	return key(k.PK, k.SK), nil
}

// SetFindings replaces the findings on a token's metadata (or an account's item, when tokenID
// is empty) and stamps auditedAt, in one UpdateItem conditioned on the item existing, so an
// item deleted since the scan is not recreated as a stub of findings. No findings remove the
// attribute. Errors: ENOTFOUND, EUNAVAILABLE, EINTERNAL.
func (s *Store) SetFindings(ctx context.Context, orgID, saID, tokenID string, findings []sa.Finding, at time.Time) error {
	sk, what := accountSK(saID), "service account"
	if tokenID != "" {
		sk, what = tokenSK(saID, tokenID), "token"
	}
	in := &dynamodb.UpdateItemInput{
		TableName:                 s.table,
		Key:                       key(orgPK(orgID), sk),
		UpdateExpression:          aws.String("SET auditedAt = :at REMOVE findings"),
		ConditionExpression:       aws.String("attribute_exists(pk)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":at": num(ms(at))},
	}
	if len(findings) > 0 {
		list, err := attributevalue.Marshal(auditFindings(findings, false))
		if err != nil {
			return sa.Internal(fmt.Errorf("marshal findings: %w", err))
		}
		in.UpdateExpression = aws.String("SET auditedAt = :at, findings = :f")
		in.ExpressionAttributeValues[":f"] = list
	}
	_, err := s.db.UpdateItem(ctx, in)
	if isConditionFailed(err) {
		return sa.NotFound(what)
	}
	return classify("write findings", err)
}

func auditRunPK(runAt time.Time) string { return auditRunPrefix + strconv.FormatInt(ms(runAt), 10) }

// MarkOrg records that the run at runAt found orgID, in the run's own partition, which
// DynamoDB's TTL removes after expires. It is an UpdateItem that can set hasFindings but never
// clears it, so a repeated or late mark is harmless. Errors: EUNAVAILABLE, EINTERNAL.
func (s *Store) MarkOrg(ctx context.Context, runAt time.Time, orgID string, hasFindings bool, expires time.Time) error {
	update := "SET #type = :type, orgId = :org, #ttl = :ttl"
	values := map[string]types.AttributeValue{":type": str(itemAuditOrg), ":org": str(orgID), ":ttl": num(expires.Unix())}
	if hasFindings {
		update += ", hasFindings = :true"
		values[":true"] = &types.AttributeValueMemberBOOL{Value: true}
	}
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 s.table,
		Key:                       key(auditRunPK(runAt), orgPK(orgID)),
		UpdateExpression:          aws.String(update),
		ExpressionAttributeNames:  map[string]string{"#type": "type", "#ttl": TTLAttribute},
		ExpressionAttributeValues: values,
	})
	return classify("mark org", err)
}

// MarkedOrgs returns up to limit orgs the run at runAt marked, in key order, after the one
// named, with a strongly consistent read (they were marked moments ago), and whether more may
// follow. Errors: EUNAVAILABLE, EINTERNAL.
func (s *Store) MarkedOrgs(ctx context.Context, runAt time.Time, after string, limit int) ([]audit.OrgMark, bool, error) {
	pk := auditRunPK(runAt)
	in := &dynamodb.QueryInput{
		TableName:                 s.table,
		KeyConditionExpression:    aws.String("pk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(pk)},
		ProjectionExpression:      aws.String("sk, hasFindings"),
		ConsistentRead:            aws.Bool(true),
		Limit:                     aws.Int32(int32(limit)),
	}
	if after != "" {
		in.ExclusiveStartKey = key(pk, orgPK(after))
	}
	out, err := s.db.Query(ctx, in)
	if err != nil {
		return nil, false, classify("list marked orgs", err)
	}
	type mark struct {
		SK          string `dynamodbav:"sk"`
		HasFindings bool   `dynamodbav:"hasFindings"`
	}
	items, err := decodeAll[mark](out.Items, "marked orgs")
	if err != nil {
		return nil, false, err
	}
	orgs := make([]audit.OrgMark, 0, len(items))
	for _, it := range items {
		org, ok := strings.CutPrefix(it.SK, orgPrefix)
		if !ok {
			return nil, false, sa.Internal(fmt.Errorf("marked org with sort key %q", it.SK))
		}
		orgs = append(orgs, audit.OrgMark{OrgID: org, HasFindings: it.HasFindings})
	}
	return orgs, len(out.LastEvaluatedKey) > 0, nil
}

// OrgFindings reads the findings stored on an org's accounts and tokens with a strongly consistent Query, a page at a time. The key condition spans the
// sort keys from SA# to TOKEN#… only, which holds accounts, name guards and tokens but not the
// audit trail, the largest and fastest-growing part of a partition, so its read cost is not
// paid. Tokens closed since the scan are left out, except those actor revoked: their findings
// say why. Memory holds the org's findings only. Errors: EUNAVAILABLE, EINTERNAL.
func (s *Store) OrgFindings(ctx context.Context, orgID, actor string) ([]sa.Finding, error) {
	in := &dynamodb.QueryInput{
		KeyConditionExpression: aws.String("pk = :pk AND sk BETWEEN :from AND :to"),
		FilterExpression: aws.String("#type IN (:token, :sa) AND attribute_type(findings, :list) AND " +
			"(attribute_not_exists(closedAt) OR revokedBy = :actor)"),
		ProjectionExpression:     aws.String("saId, tokenId, findings"),
		ExpressionAttributeNames: map[string]string{"#type": "type"},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": str(orgPK(orgID)), ":from": str(saPrefix), ":to": str(strings.TrimSuffix(tokenPrefix, "#") + "$"),
			":token": str(itemToken), ":sa": str(itemAccount), ":actor": str(actor), ":list": str("L"),
		},
	}
	var out []sa.Finding
	err := query(ctx, s, "query org findings", in, func(items []auditScanItem) error {
		for _, it := range items {
			out = append(out, auditDomainFindings(it.Findings, it.SAID, it.TokenID)...)
		}
		return nil
	})
	return out, err
}

// auditReportItem is an org's latest report.
type auditReportItem struct {
	PK          string         `dynamodbav:"pk"`
	SK          string         `dynamodbav:"sk"`
	Type        string         `dynamodbav:"type"`
	OrgID       string         `dynamodbav:"orgId"`
	GeneratedAt int64          `dynamodbav:"generatedAt"`
	Findings    []auditFinding `dynamodbav:"findings"`
}

// PutAuditReport replaces an org's report. Errors: EUNAVAILABLE, EINTERNAL.
func (s *Store) PutAuditReport(ctx context.Context, orgID string, r sa.AuditReport) error {
	item, err := attributevalue.MarshalMap(auditReportItem{
		PK: orgPK(orgID), SK: auditReportSK, Type: itemAuditReport, OrgID: orgID,
		GeneratedAt: ms(r.GeneratedAt), Findings: auditFindings(r.Findings, true),
	})
	if err != nil {
		return sa.Internal(fmt.Errorf("marshal report: %w", err))
	}
	// A deleted org gets no report, so none is left behind in its partition once purged. A
	// read is enough: the purge comes at least a day after the tombstone, and a report put
	// meanwhile is purged with the rest.
	if _, err := s.GetTombstone(ctx, orgID); err == nil {
		return errOrgDeleted
	} else if sa.ErrorCode(err) != sa.ENOTFOUND {
		return err
	}
	_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: s.table, Item: item})
	return classify("put audit report", err)
}

// GetAuditReport reads an org's latest report. An org the audit has not reported on has an
// empty report (zero GeneratedAt, no findings), not ENOTFOUND: the route answers it with 200.
// Errors: EUNAVAILABLE, EINTERNAL.
func (s *Store) GetAuditReport(ctx context.Context, orgID string) (sa.AuditReport, error) {
	var it auditReportItem
	err := s.get(ctx, key(orgPK(orgID), auditReportSK), &it)
	switch {
	case errors.Is(err, errNoItem):
		return sa.AuditReport{Findings: []sa.Finding{}}, nil
	case err != nil:
		return sa.AuditReport{}, err
	}
	r := sa.AuditReport{GeneratedAt: fromMS(it.GeneratedAt), Findings: make([]sa.Finding, len(it.Findings))}
	for i, f := range it.Findings {
		r.Findings[i] = f.domain("", "")
	}
	return r, nil
}

// auditCheckpointItem is a run in progress.
type auditCheckpointItem struct {
	PK               string         `dynamodbav:"pk"`
	SK               string         `dynamodbav:"sk"`
	Type             string         `dynamodbav:"type"`
	RunAt            int64          `dynamodbav:"runAt"`
	Phase            string         `dynamodbav:"phase"`
	Cursor           string         `dynamodbav:"cursor"`
	Orgs             int            `dynamodbav:"orgs"`
	Accounts         int            `dynamodbav:"accounts"`
	Tokens           int            `dynamodbav:"tokens"`
	Findings         map[string]int `dynamodbav:"findings"`
	Revoked          int            `dynamodbav:"revoked"`
	Writes           int            `dynamodbav:"writes"`
	Pages            int            `dynamodbav:"pages"`
	DurationMs       int64          `dynamodbav:"durationMs"`
	TruncatedReports int            `dynamodbav:"truncatedReports"`
}

// GetCheckpoint reads the run in progress. Errors: ENOTFOUND (none), EUNAVAILABLE, EINTERNAL.
func (s *Store) GetCheckpoint(ctx context.Context) (audit.Checkpoint, error) {
	var it auditCheckpointItem
	if err := s.get(ctx, key(auditCheckpointPK, auditCheckpointSK), &it); err != nil {
		if errors.Is(err, errNoItem) {
			return audit.Checkpoint{}, sa.Errorf(sa.ENOTFOUND, "No audit run is in progress.")
		}
		return audit.Checkpoint{}, err
	}
	runAt := fromMS(it.RunAt)
	return audit.Checkpoint{
		RunAt: runAt, Phase: it.Phase, Cursor: it.Cursor,
		Summary: audit.Summary{
			RunAt: runAt, Orgs: it.Orgs, Accounts: it.Accounts, Tokens: it.Tokens, Findings: it.Findings,
			Revoked: it.Revoked, Writes: it.Writes, Pages: it.Pages, DurationMs: it.DurationMs,
			TruncatedReports: it.TruncatedReports,
		},
	}, nil
}

// PutCheckpoint saves the run in progress. Errors: EUNAVAILABLE, EINTERNAL.
func (s *Store) PutCheckpoint(ctx context.Context, c audit.Checkpoint) error {
	sum := c.Summary
	item, err := attributevalue.MarshalMap(auditCheckpointItem{
		PK: auditCheckpointPK, SK: auditCheckpointSK, Type: itemAuditRun,
		RunAt: ms(c.RunAt), Phase: c.Phase, Cursor: c.Cursor,
		Orgs: sum.Orgs, Accounts: sum.Accounts, Tokens: sum.Tokens, Findings: sum.Findings,
		Revoked: sum.Revoked, Writes: sum.Writes, Pages: sum.Pages, DurationMs: sum.DurationMs,
		TruncatedReports: sum.TruncatedReports,
	})
	if err != nil {
		return sa.Internal(fmt.Errorf("marshal checkpoint: %w", err))
	}
	_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: s.table, Item: item})
	return classify("put audit checkpoint", err)
}

// DeleteCheckpoint forgets the run in progress; none is not an error. Errors: EUNAVAILABLE,
// EINTERNAL.
func (s *Store) DeleteCheckpoint(ctx context.Context) error {
	_, err := s.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: s.table, Key: key(auditCheckpointPK, auditCheckpointSK)})
	return classify("delete audit checkpoint", err)
}
