package config_test

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobforge/jobforge/internal/config"
)

func env(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

func TestLoadDefaults(t *testing.T) {
	t.Parallel()
	c, err := config.Load(config.Worker, "worker", nil, env(map[string]string{"REDIS_URL": "redis://r:6379/0"}), io.Discard)
	require.NoError(t, err)
	require.Equal(t, "redis://r:6379/0", c.RedisURL)
	require.Equal(t, map[string]int{"critical": 6, "default": 3, "low": 1}, c.Queues)
	require.Equal(t, map[string]int{"cpu": 1}, c.CPUQueues)
	require.Equal(t, []string{"io", "cpu"}, c.Pools)
	require.Equal(t, 24*time.Hour, c.Retention)
	require.Equal(t, 25*time.Second, c.ShutdownTimeout)
	require.Positive(t, c.CPUConcurrency)
	require.Equal(t, ":8081", c.AdminAddr)
	require.Equal(t, "json", c.LogFormat)
	require.Equal(t, []string{"cpu", "critical", "default", "low"}, c.AllQueues())
}

// TestLoadSentinel checks the discrete Sentinel settings, which stand in
// for REDIS_URL.
func TestLoadSentinel(t *testing.T) {
	t.Parallel()
	c, err := config.Load(config.Worker, "worker", []string{"-redis-db", "3"}, env(map[string]string{
		"JOBFORGE_REDIS_SENTINEL_MASTER":   "mymaster",
		"JOBFORGE_REDIS_SENTINEL_ADDRS":    "s-0:26379, s-1:26379",
		"JOBFORGE_REDIS_SENTINEL_PASSWORD": "spw",
		"JOBFORGE_REDIS_USERNAME":          "jobforge",
		"JOBFORGE_REDIS_PASSWORD":          "mpw",
		"JOBFORGE_REDIS_TLS":               "true",
	}), io.Discard)
	require.NoError(t, err)
	require.True(t, c.RedisSentinel())
	require.Empty(t, c.RedisURL)
	require.Equal(t, "mymaster", c.RedisSentinelMaster)
	require.Equal(t, []string{"s-0:26379", "s-1:26379"}, c.RedisSentinelAddrs)
	require.Equal(t, "spw", c.RedisSentinelPassword)
	require.Equal(t, "jobforge", c.RedisUsername)
	require.Equal(t, "mpw", c.RedisPassword)
	require.Equal(t, 3, c.RedisDB)
	require.True(t, c.RedisTLS)
}

// TestLoadCluster checks the discrete Redis Cluster settings, which stand
// in for REDIS_URL.
func TestLoadCluster(t *testing.T) {
	t.Parallel()
	c, err := config.Load(config.Worker, "worker", nil, env(map[string]string{
		"JOBFORGE_REDIS_CLUSTER_ADDRS": "n-0:6379, n-1:6379,n-2:6379",
		"JOBFORGE_REDIS_USERNAME":      "jobforge",
		"JOBFORGE_REDIS_PASSWORD":      "pw",
		"JOBFORGE_REDIS_TLS":           "true",
	}), io.Discard)
	require.NoError(t, err)
	require.True(t, c.RedisCluster())
	require.False(t, c.RedisSentinel())
	require.Empty(t, c.RedisURL)
	require.Equal(t, []string{"n-0:6379", "n-1:6379", "n-2:6379"}, c.RedisClusterAddrs)
	require.Equal(t, "jobforge", c.RedisUsername)
	require.Equal(t, "pw", c.RedisPassword)
	require.True(t, c.RedisTLS)
}

func TestAPIAuthChoices(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"-auth-disabled"}, {"-api-keys-file", "/keys.json"}, {"-dev"}} {
		_, err := config.Load(config.API, "api", args, env(map[string]string{"REDIS_URL": "redis://r"}), io.Discard)
		require.NoError(t, err, "%v", args)
	}
}

func TestFlagsOverrideEnv(t *testing.T) {
	t.Parallel()
	c, err := config.Load(config.API, "api",
		[]string{"-grpc-addr", ":1", "-queues", "a=2,b", "-retention", "1h", "-dev"},
		env(map[string]string{"JOBFORGE_GRPC_ADDR": ":2", "JOBFORGE_RETENTION": "2h", "JOBFORGE_LOG_LEVEL": "debug"}), io.Discard)
	require.NoError(t, err)
	require.Equal(t, ":1", c.GRPCAddr)
	require.Equal(t, map[string]int{"a": 2, "b": 1}, c.Queues)
	require.Equal(t, time.Hour, c.Retention)
	require.True(t, c.Dev)
	require.Equal(t, "text", c.LogFormat, "dev mode logs text")
	require.Equal(t, slog.LevelDebug, c.LogLevel)
}

func TestLoadRejects(t *testing.T) {
	t.Parallel()
	base := map[string]string{"REDIS_URL": "redis://r"}
	tests := []struct {
		name    string
		prog    config.Program
		args    []string
		env     map[string]string
		wantErr string
	}{
		{"no redis url", config.Worker, nil, map[string]string{}, "REDIS_URL (or -redis-sentinel-master and -redis-sentinel-addrs, or -redis-cluster-addrs) is required"},
		{"url and cluster settings", config.Worker, []string{"-redis-cluster-addrs", "n1:6379,n2:6379"}, base, "REDIS_URL and -redis-cluster-addrs exclude each other"},
		{"cluster and sentinel", config.Worker, []string{"-redis-cluster-addrs", "n1:6379", "-redis-sentinel-master", "m"}, nil, "-redis-cluster-addrs and the -redis-sentinel-* settings exclude each other"},
		{"cluster database", config.Worker, []string{"-redis-cluster-addrs", "n1:6379", "-redis-db", "2"}, nil, "a Redis Cluster has only database 0"},
		{"url and sentinel settings", config.Worker, []string{"-redis-sentinel-master", "m", "-redis-sentinel-addrs", "s:26379"}, base, "exclude each other"},
		{"url and master password", config.Worker, nil, map[string]string{"REDIS_URL": "redis://r", "JOBFORGE_REDIS_PASSWORD": "pw"}, "exclude each other"},
		{"sentinel without master", config.Worker, []string{"-redis-sentinel-addrs", "s:26379"}, nil, "need both -redis-sentinel-master and -redis-sentinel-addrs"},
		{"password without sentinel", config.Worker, []string{"-redis-password", "pw"}, nil, "need both -redis-sentinel-master and -redis-sentinel-addrs"},
		{"bad redis db", config.Worker, []string{"-redis-sentinel-master", "m", "-redis-sentinel-addrs", "s:1", "-redis-db", "x"}, nil, `-redis-db: not an integer: "x"`},
		{"bad redis tls", config.Worker, []string{"-redis-sentinel-master", "m", "-redis-sentinel-addrs", "s:1", "-redis-tls", "sometimes"}, nil, `-redis-tls: not a boolean`},
		{"bad duration", config.Worker, []string{"-retention", "soon"}, base, `-retention: not a duration: "soon"`},
		{"retention too short", config.Worker, []string{"-retention", "1s"}, base, "-retention: 1s is outside"},
		{"bad weight", config.Worker, []string{"-queues", "a=0"}, base, "weight must be an integer in 1..1000"},
		{"bad queue name", config.Worker, []string{"-queues", "A B"}, base, "invalid queue name"},
		{"queue in both pools", config.Worker, []string{"-cpu-queues", "default"}, base, "also in -queues"},
		{"unknown pool", config.Worker, []string{"-pools", "gpu"}, base, `unknown pool "gpu"`},
		{"bad log level", config.Worker, []string{"-log-level", "loud"}, base, "-log-level"},
		{"bad dev env", config.API, nil, map[string]string{"JOBFORGE_DEV": "maybe"}, "JOBFORGE_DEV is not a boolean"},
		{"stray argument", config.Worker, []string{"extra"}, base, "unexpected arguments"},
		{"negative concurrency", config.Worker, []string{"-concurrency", "-1"}, base, "-concurrency: -1 is outside"},
		{"api without authentication", config.API, nil, base, "no authentication configured"},
		{"jwt without issuer", config.API, []string{"-jwt-jwks", "/k.json"}, base, "needs -jwt-issuer and -jwt-audience"},
		{"symmetric jwt algorithm", config.API, []string{"-auth-disabled", "-jwt-algorithms", "HS256"}, base, `"HS256" is not allowed`},
		{"dev key outside dev mode", config.API, []string{"-auth-disabled"}, map[string]string{"REDIS_URL": "redis://r", "JOBFORGE_DEV_KEY": "k"}, "only honoured in dev mode"},
		{"replica wait longer than the read timeout", config.API, []string{"-auth-disabled", "-redis-min-replicas", "1", "-redis-replica-timeout", "2s"}, base, "-redis-replica-timeout: 2s is outside"},
		{"negative replicas", config.API, []string{"-auth-disabled", "-redis-min-replicas", "-1"}, base, "-redis-min-replicas: -1 is outside"},
		{"tls cert without key", config.API, []string{"-auth-disabled", "-tls-cert", "c.pem"}, base, "-tls-cert and -tls-key go together"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := config.Load(tt.prog, "x", tt.args, env(tt.env), io.Discard)
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func TestLoadDurability(t *testing.T) {
	t.Parallel()
	c, err := config.Load(config.API, "api", []string{"-auth-disabled", "-redis-min-replicas", "1"},
		env(map[string]string{"REDIS_URL": "redis://r", "JOBFORGE_REDIS_REPLICA_TIMEOUT": "250ms"}), io.Discard)
	require.NoError(t, err)
	require.Equal(t, 1, c.RedisMinReplicas)
	require.Equal(t, 250*time.Millisecond, c.RedisReplicaTimeout)

	c, err = config.Load(config.API, "api", []string{"-auth-disabled"}, env(map[string]string{"REDIS_URL": "redis://r"}), io.Discard)
	require.NoError(t, err)
	require.Zero(t, c.RedisMinReplicas, "off unless asked for")
}
