package local

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

// Stream is the local stand-in for a table's DynamoDB stream, the one piece minidyn lacks. It
// wraps minidyn's HTTP handler: write operations are serialised, each affected key's item is
// read before and after, and a record is emitted only when the item really changed (DynamoDB
// writes no record for a write that changes nothing): INSERT, MODIFY or REMOVE, with the images
// the table's StreamViewType asks for. Records go to shards by partition key, like DynamoDB's
// partitions, so records of one key keep their order while one failing key holds up only its
// own shard. Sequence numbers increase across the stream.
type Stream struct {
	inner    http.Handler
	table    string
	keyAttrs []string
	view     string
	arn      string
	now      func() time.Time

	// mu serialises writes, so before/after images are exact, and keeps reads from seeing a
	// transaction half applied: minidyn applies a transaction item by item, where DynamoDB
	// never shows a read an uncommitted transaction.
	mu     sync.RWMutex
	seq    uint64
	subs   []*Subscription
	shards int
}

// NewStream wraps inner, the DynamoDB endpoint holding table, whose key attributes are
// keyAttrs (partition key first) and whose stream has view type view.
func NewStream(inner http.Handler, table string, keyAttrs []string, view string, shards int, now func() time.Time) *Stream {
	return &Stream{
		inner: inner, table: table, keyAttrs: keyAttrs, view: view, shards: shards, now: now,
		arn: fmt.Sprintf("arn:aws:dynamodb:%s:%s:table/%s/stream/%s", Region, AccountID, table, now().UTC().Format("2006-01-02T15:04:05.000")),
	}
}

// ARN is the stream's ARN, as event records name their source.
func (s *Stream) ARN() string { return s.arn }

// writeOps are the DynamoDB operations that can change items.
var writeOps = map[string]bool{
	"PutItem": true, "UpdateItem": true, "DeleteItem": true, "BatchWriteItem": true, "TransactWriteItems": true,
}

// ServeHTTP forwards every DynamoDB request to minidyn, recording the effect of writes.
func (s *Stream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	target := r.Header.Get("X-Amz-Target")
	op := target[strings.LastIndexByte(target, '.')+1:]
	if !writeOps[op] {
		s.mu.RLock()
		defer s.mu.RUnlock()
		s.inner.ServeHTTP(w, r)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "read body", http.StatusBadRequest)
		return
	}
	keys, err := s.affectedKeys(op, body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	before := make([]map[string]any, len(keys))
	for i, k := range keys {
		before[i] = s.getItem(k)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	rec := httptest.NewRecorder()
	s.inner.ServeHTTP(rec, r)
	if rec.Code == http.StatusOK {
		for i, k := range keys {
			s.emit(before[i], s.getItem(k))
		}
	}
	for h, v := range rec.Header() {
		w.Header()[h] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// affectedKeys lists the keys a write request touches in this stream's table, once each.
func (s *Stream) affectedKeys(op string, body []byte) ([]map[string]any, error) {
	var req struct {
		TableName    string
		Item, Key    map[string]any
		RequestItems map[string][]struct {
			PutRequest    *struct{ Item map[string]any }
			DeleteRequest *struct{ Key map[string]any }
		}
		TransactItems []struct {
			Put *struct {
				TableName string
				Item      map[string]any
			}
			Update *struct {
				TableName string
				Key       map[string]any
			}
			Delete *struct {
				TableName string
				Key       map[string]any
			}
		}
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, fmt.Errorf("local stream: %s request: %w", op, err)
	}
	var keys []map[string]any
	add := func(table string, item map[string]any) {
		if table != s.table || item == nil {
			return
		}
		k := map[string]any{}
		for _, a := range s.keyAttrs {
			k[a] = item[a]
		}
		for _, have := range keys {
			if reflect.DeepEqual(have, k) {
				return
			}
		}
		keys = append(keys, k)
	}
	switch op {
	case "PutItem":
		add(req.TableName, req.Item)
	case "UpdateItem", "DeleteItem":
		add(req.TableName, req.Key)
	case "BatchWriteItem":
		for table, reqs := range req.RequestItems {
			for _, wr := range reqs {
				if wr.PutRequest != nil {
					add(table, wr.PutRequest.Item)
				}
				if wr.DeleteRequest != nil {
					add(table, wr.DeleteRequest.Key)
				}
			}
		}
	case "TransactWriteItems":
		for _, ti := range req.TransactItems {
			switch {
			case ti.Put != nil:
				add(ti.Put.TableName, ti.Put.Item)
			case ti.Update != nil:
				add(ti.Update.TableName, ti.Update.Key)
			case ti.Delete != nil:
				add(ti.Delete.TableName, ti.Delete.Key)
			}
		}
	}
	return keys, nil
}

// getItem reads one item straight from minidyn, in DynamoDB's JSON form, or nil.
func (s *Stream) getItem(key map[string]any) map[string]any {
	body, _ := json.Marshal(map[string]any{"TableName": s.table, "Key": key, "ConsistentRead": true})
	req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	req.Header.Set("X-Amz-Target", "DynamoDB_20120810.GetItem")
	rec := httptest.NewRecorder()
	s.inner.ServeHTTP(rec, req)
	var out struct{ Item map[string]any }
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &out) != nil {
		return nil
	}
	return out.Item
}

// emit appends a record for a change of one item, if it changed, to every subscription.
func (s *Stream) emit(before, after map[string]any) {
	var name string
	switch {
	case before == nil && after == nil, reflect.DeepEqual(before, after):
		return
	case before == nil:
		name = "INSERT"
	case after == nil:
		name = "REMOVE"
	default:
		name = "MODIFY"
	}
	image := after
	if image == nil {
		image = before
	}
	keys := map[string]any{}
	for _, a := range s.keyAttrs {
		keys[a] = image[a]
	}
	change := map[string]any{"Keys": keys}
	if before != nil && (s.view == "OLD_IMAGE" || s.view == "NEW_AND_OLD_IMAGES") {
		change["OldImage"] = before
	}
	if after != nil && (s.view == "NEW_IMAGE" || s.view == "NEW_AND_OLD_IMAGES") {
		change["NewImage"] = after
	}
	raw, _ := json.Marshal(change)
	var rec events.DynamoDBEventRecord
	if err := json.Unmarshal(raw, &rec.Change); err != nil {
		return // minidyn produced an item events cannot hold; nothing sensible to deliver
	}
	s.seq++
	rec.Change.SequenceNumber = fmt.Sprintf("%021d", s.seq)
	rec.Change.SizeBytes = int64(len(raw))
	rec.Change.StreamViewType = s.view
	rec.Change.ApproximateCreationDateTime = events.SecondsEpochTime{Time: s.now().UTC().Truncate(time.Second)}
	rec.EventID = fmt.Sprintf("%032x", s.seq)
	rec.EventName = name
	rec.EventVersion = "1.1"
	rec.EventSource = "aws:dynamodb"
	rec.AWSRegion = Region
	rec.EventSourceArn = s.arn
	shard := s.shardOf(keys[s.keyAttrs[0]])
	for _, sub := range s.subs {
		sub.push(shard, rec)
	}
}

func (s *Stream) shardOf(pk any) int {
	h := fnv.New32a()
	b, _ := json.Marshal(pk)
	h.Write(b)
	return int(h.Sum32() % uint32(s.shards))
}
