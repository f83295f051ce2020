package autoscale_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobforge/jobforge/internal/autoscale"
	"github.com/jobforge/jobforge/internal/queue"
	"github.com/jobforge/jobforge/internal/redistest"
	"github.com/jobforge/jobforge/internal/store"
)

func TestMain(m *testing.M) { redistest.Main(m) }

var known = []string{"critical", "default", "low"}

func get(t *testing.T, srv *httptest.Server, query string) (int, string) {
	t.Helper()
	resp, err := http.Get(srv.URL + autoscale.Path + query)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

func serve(t *testing.T, rdb queue.Client) *httptest.Server {
	t.Helper()
	read := func(ctx context.Context, qs []string) ([]queue.QueueLoad, error) { return queue.Backlog(ctx, rdb, qs) }
	srv := httptest.NewServer(autoscale.Handler(read, known, slog.New(slog.DiscardHandler)))
	t.Cleanup(srv.Close)
	return srv
}

// TestBacklog reads a real Redis through the handler, as KEDA's
// metrics-api scaler does: runnable leaves out a paused queue's backlog.
func TestBacklog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb, err := queue.Connect(ctx, redistest.NewDB(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = rdb.Close() })
	st := queue.NewStore(rdb, slog.New(slog.DiscardHandler))
	t.Cleanup(func() { _ = st.Close() })
	for q, n := range map[string]int{"default": 3, "low": 2} {
		for range n {
			_, _, err := st.Create(ctx, store.NewJob{
				Tenant: "t", Type: "simulate", Queue: q, Payload: []byte(`{}`), MaxAttempts: 1, Timeout: time.Minute,
			})
			require.NoError(t, err)
		}
	}
	require.NoError(t, st.PauseQueue(ctx, "low"))
	srv := serve(t, rdb)

	code, body := get(t, srv, "?queues=critical,default,low")
	require.Equal(t, http.StatusOK, code, body)
	var resp autoscale.Response
	require.NoError(t, json.Unmarshal([]byte(body), &resp))
	require.Equal(t, autoscale.Response{
		Runnable: 3,
		Queues: []autoscale.Queue{
			{Name: "critical"},
			{Name: "default", Pending: 3, Runnable: 3},
			{Name: "low", Pending: 2, Paused: true},
		},
	}, resp)

	// The field KEDA reads (valueLocation) is a plain number at the top.
	var raw map[string]any
	require.NoError(t, json.Unmarshal([]byte(body), &raw))
	require.InDelta(t, 3.0, raw["runnable"], 0)

	require.NoError(t, st.ResumeQueue(ctx, "low"))
	code, body = get(t, srv, "?queues=low")
	require.Equal(t, http.StatusOK, code, body)
	require.NoError(t, json.Unmarshal([]byte(body), &resp))
	require.Equal(t, int64(2), resp.Runnable)
}

func TestBadRequests(t *testing.T) {
	t.Parallel()
	read := func(context.Context, []string) ([]queue.QueueLoad, error) {
		t.Error("read for a bad request")
		return nil, nil
	}
	srv := httptest.NewServer(autoscale.Handler(read, known, slog.New(slog.DiscardHandler)))
	t.Cleanup(srv.Close)
	tests := []struct {
		name, query, want string
	}{
		{"no queues", "", "want one queues parameter"},
		{"empty", "?queues=", "no queue named"},
		{"unknown queue", "?queues=default,defualt", `unknown queue "defualt"`},
		{"twice", "?queues=low,low", `queue "low" listed twice`},
		{"two parameters", "?queues=low&queues=default", "want one queues parameter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := get(t, srv, tt.query)
			require.Equal(t, http.StatusBadRequest, code)
			require.Contains(t, body, tt.want)
		})
	}
}

// TestRedisDown checks that an unreadable backlog is an error, never a
// zero: KEDA then keeps the current replica count.
func TestRedisDown(t *testing.T) {
	t.Parallel()
	server := redistest.NewServer(t)
	rdb, err := queue.Connect(context.Background(), server.URL(0))
	require.NoError(t, err)
	t.Cleanup(func() { _ = rdb.Close() })
	srv := serve(t, rdb)
	server.Stop()
	code, body := get(t, srv, "?queues=default")
	require.Equal(t, http.StatusServiceUnavailable, code, body)
}
