package queue

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// CheckDurability warns when the Redis server is not set up to keep what
// jobforge acknowledged: without an append-only file (appendonly yes) a
// Redis restart loses every job written since the last snapshot, and with a
// maxmemory policy other than noeviction Redis may evict job records and
// tasks under memory pressure. jobforge's guarantees (README, "Guarantees")
// assume both. Servers that do not allow CONFIG GET (some managed Redis
// services) are reported once at info level.
func CheckDurability(ctx context.Context, rdb redis.UniversalClient, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	aof, err := rdb.ConfigGet(ctx, "appendonly").Result()
	if err != nil {
		log.InfoContext(ctx, "could not read the Redis configuration to check durability; make sure appendonly is yes and maxmemory-policy is noeviction", "error", err)
		return
	}
	policy, err := rdb.ConfigGet(ctx, "maxmemory-policy").Result()
	if err != nil {
		log.InfoContext(ctx, "could not read the Redis configuration to check durability; make sure maxmemory-policy is noeviction", "error", err)
		return
	}
	if v := aof["appendonly"]; v != "yes" {
		log.WarnContext(ctx, "Redis runs without an append-only file: a Redis restart loses the jobs written since its last snapshot; set appendonly yes (and appendfsync always to lose nothing acknowledged)", "appendonly", v)
	}
	if v := policy["maxmemory-policy"]; v != "noeviction" {
		log.WarnContext(ctx, "Redis may evict keys under memory pressure, job records and tasks among them; set maxmemory-policy noeviction", "maxmemory-policy", v)
	}
}

// CheckReplicas warns when the Redis primary has fewer connected replicas
// than creates wait for (-redis-min-replicas): until enough replicas are
// back, every create answers 503.
func CheckReplicas(ctx context.Context, rdb redis.UniversalClient, want int, log *slog.Logger) {
	if want == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	info, err := rdb.Info(ctx, "replication").Result()
	if err != nil {
		log.InfoContext(ctx, "could not read the Redis replication state", "error", err)
		return
	}
	got := -1
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "connected_slaves:"); ok {
			got, _ = strconv.Atoi(v)
		}
	}
	if got < want {
		log.WarnContext(ctx, "the Redis primary has fewer connected replicas than creates wait for: creates answer 503 until enough replicas are connected", "connected_replicas", got, "redis_min_replicas", want)
	}
}
