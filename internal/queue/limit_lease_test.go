package queue_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobforge/jobforge/internal/queue"
	"github.com/jobforge/jobforge/internal/redistest"
)

// At high limits the limiter admits most requests from a local lease of
// tokens, yet never more than the shared bucket holds.
func TestLimiterLeasesTokens(t *testing.T) {
	t.Parallel()
	srv := redistest.NewServer(t) // counts commands: no sharing
	ctx := context.Background()
	rdb, err := queue.Connect(ctx, srv.URL(0))
	require.NoError(t, err)
	t.Cleanup(func() { _ = rdb.Close() })
	before := commandStats(t, rdb)

	const rate = 1000                                        // burst 1000, leases of 20
	l, other := queue.NewLimiter(rdb), queue.NewLimiter(rdb) // two api replicas
	admitted := 0
	start := time.Now()
	for i := range 3000 {
		lim := l
		if i%2 == 1 {
			lim = other
		}
		ok, _, err := lim.Allow(ctx, "k", rate, 1)
		require.NoError(t, err)
		if ok {
			admitted++
		}
	}
	// The burst plus what refilled meanwhile is admitted, give or take one
	// lease per replica; the rest is refused.
	refilled := int(time.Since(start).Seconds()*rate) + 1
	require.GreaterOrEqual(t, admitted, rate-2*rate/50, "leases must not waste much of the bucket")
	require.LessOrEqual(t, admitted, rate+refilled+2*rate/50, "leases must not admit beyond the bucket")
	scripts := diffStats(commandStats(t, rdb), before)["evalsha"].calls
	t.Logf("%d of 3000 admitted with %d limiter scripts", admitted, scripts)
	require.Less(t, scripts, int64(3000), "a refused request may cost one script, an admitted one far less")

	// Small limits are exact: every request asks Redis.
	for range 3 {
		ok, _, err := l.Allow(ctx, "small", 2, 1)
		require.NoError(t, err)
		_ = ok
	}
	ok, retry, err := l.Allow(ctx, "small", 2, 1)
	require.NoError(t, err)
	require.False(t, ok)
	require.Positive(t, retry)
}
