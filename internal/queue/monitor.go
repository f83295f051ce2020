package queue

import (
	"fmt"
	"net/http"

	"github.com/hibiken/asynqmon"
	"github.com/redis/go-redis/v9"
)

// MonitoringHandler returns asynqmon, the web UI of asynq's queues, rooted
// at rootPath (e.g. "/monitoring"). It is read-only: it lists queues, tasks,
// servers and Redis stats but refuses every request that would change them.
// Job payloads and results are not shown (they may hold personal data or
// secrets); the UI shows their size.
//
// It uses rdb, which the caller keeps owning and closes.
func MonitoringHandler(rdb redis.UniversalClient, rootPath string) http.Handler {
	return asynqmon.New(asynqmon.Options{
		RootPath:         rootPath,
		RedisConnOpt:     sharedRedis{rdb},
		ReadOnly:         true,
		PayloadFormatter: asynqmon.PayloadFormatterFunc(hideBytes),
		ResultFormatter:  asynqmon.ResultFormatterFunc(hideBytes),
	})
}

func hideBytes(_ string, b []byte) string { return fmt.Sprintf("(%d bytes, not shown)", len(b)) }

// sharedRedis hands asynqmon the process's client instead of a second
// connection pool. asynqmon would close it in its Close, which is never
// called.
type sharedRedis struct{ rdb redis.UniversalClient }

func (s sharedRedis) MakeRedisClient() any {
	if c, ok := s.rdb.(*failoverClient); ok {
		return c.Client // asynqmon serves its Redis info page for a *redis.Client
	}
	return s.rdb
}
