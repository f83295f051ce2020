package queue_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/jobforge/jobforge/internal/queue"
	"github.com/jobforge/jobforge/internal/redistest"
	"github.com/jobforge/jobforge/internal/store"
)

const (
	masterPassword   = "master-secret"
	sentinelPassword = "sentinel-secret"
	masterName       = "jobs-master"
	sentinelDB       = 3
)

// sentinelSetup is a master and a sentinel with passwords of their own,
// as production runs them.
type sentinelSetup struct {
	master, sentinel *redistest.Server
}

func startSentinel(t *testing.T) sentinelSetup {
	t.Helper()
	master := redistest.NewServer(t, redistest.Args("--requirepass", masterPassword))
	s := redistest.NewSentinel(t, master, redistest.SentinelOptions{
		MasterName: masterName, MasterPassword: masterPassword, Password: sentinelPassword,
	})
	return sentinelSetup{master: master, sentinel: s}
}

// TestConnectSentinel connects through a sentinel, with separate sentinel
// and master credentials and a non-zero database, given as a URL and as
// discrete settings, and checks that what the store writes (its own keys
// and asynq's task) lands in that database of the master.
func TestConnectSentinel(t *testing.T) {
	t.Parallel()
	env := startSentinel(t)
	tests := []struct {
		name string
		cfg  queue.RedisConfig
	}{
		{name: "url", cfg: queue.RedisConfig{URL: fmt.Sprintf("redis-sentinel://:%s@%s/%d?master=%s&password=%s",
			sentinelPassword, env.sentinel.Addr(), sentinelDB, masterName, masterPassword)}},
		{name: "url with an unreachable sentinel first", cfg: queue.RedisConfig{URL: fmt.Sprintf("redis-sentinel://:%s@127.0.0.1:1,%s/%d?master=%s&password=%s",
			sentinelPassword, env.sentinel.Addr(), sentinelDB, masterName, masterPassword)}},
		{name: "settings", cfg: queue.RedisConfig{
			SentinelMaster: masterName, SentinelAddrs: []string{env.sentinel.Addr()},
			SentinelPassword: sentinelPassword, Password: masterPassword, DB: sentinelDB,
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			rdb, err := queue.ConnectConfig(ctx, tt.cfg)
			require.NoError(t, err)
			defer rdb.Close()

			st := queue.NewStore(rdb, testLogger(t))
			defer st.Close()
			tenant := fmt.Sprintf("sentinel-%d", i)
			rec, _, err := st.Create(ctx, store.NewJob{
				Tenant: tenant, Type: "simulate", Queue: "default", Payload: []byte(`{}`), MaxAttempts: 1, Timeout: time.Minute,
			})
			require.NoError(t, err)
			got, err := st.Get(ctx, tenant, rec.ID)
			require.NoError(t, err)
			require.Equal(t, store.StatePending, got.State)

			direct := redis.NewClient(&redis.Options{Addr: env.master.Addr(), Password: masterPassword, DB: sentinelDB})
			defer direct.Close()
			n, err := direct.Exists(ctx, "asynq:{default}:t:"+rec.ID).Result()
			require.NoError(t, err)
			require.EqualValues(t, 1, n, "asynq's task is not in database %d of the master", sentinelDB)
			keys, err := direct.Keys(ctx, "jobforge:{default}:job:"+rec.ID+"*").Result()
			require.NoError(t, err)
			require.NotEmpty(t, keys, "the job record is not in database %d of the master", sentinelDB)
			db0 := redis.NewClient(&redis.Options{Addr: env.master.Addr(), Password: masterPassword})
			defer db0.Close()
			n, err = db0.Exists(ctx, "asynq:{default}:t:"+rec.ID).Result()
			require.NoError(t, err)
			require.Zero(t, n, "the task landed in database 0")

			// The queue UI over the same client, its Redis page included.
			rr := httptest.NewRecorder()
			queue.MonitoringHandler(rdb, "/monitoring").ServeHTTP(rr, httptest.NewRequest(http.MethodGet, "/monitoring/api/redis_info", nil))
			require.Equal(t, http.StatusOK, rr.Code, rr.Body.String())
			require.Contains(t, rr.Body.String(), "redis_version")
		})
	}
}

// TestConnectSentinelMisconfigured checks that each mistake fails at
// start-up and the error says which one it is.
func TestConnectSentinelMisconfigured(t *testing.T) {
	t.Parallel()
	env := startSentinel(t)
	url := func(userinfo, master, params string) string {
		return fmt.Sprintf("redis-sentinel://%s%s/%d?master=%s%s", userinfo, env.sentinel.Addr(), sentinelDB, master, params)
	}
	tests := []struct {
		name    string
		cfg     queue.RedisConfig
		wantErr []string
	}{
		{
			name:    "wrong master name",
			cfg:     queue.RedisConfig{URL: url(":"+sentinelPassword+"@", "nope", "&password="+masterPassword)},
			wantErr: []string{`no sentinel gave the address of master "nope"`, `monitors no master named "nope" (it monitors: ` + masterName + `)`},
		},
		{
			name: "wrong master name, settings",
			cfg: queue.RedisConfig{SentinelMaster: "nope", SentinelAddrs: []string{env.sentinel.Addr()},
				SentinelPassword: sentinelPassword, Password: masterPassword, DB: sentinelDB},
			wantErr: []string{`monitors no master named "nope"`},
		},
		{
			name:    "wrong sentinel password",
			cfg:     queue.RedisConfig{URL: url(":wrong@", masterName, "&password="+masterPassword)},
			wantErr: []string{"rejected the sentinel credentials"},
		},
		{
			name:    "master password missing",
			cfg:     queue.RedisConfig{URL: url(":"+sentinelPassword+"@", masterName, "")},
			wantErr: []string{`the master of "` + masterName + `" rejected its credentials`},
		},
		{
			name:    "sentinel as a single Redis",
			cfg:     queue.RedisConfig{URL: "redis://:" + sentinelPassword + "@" + env.sentinel.Addr() + "/0"},
			wantErr: []string{"this is a Redis Sentinel"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rdb, err := queue.ConnectConfig(context.Background(), tt.cfg)
			if rdb != nil {
				_ = rdb.Close()
			}
			require.Error(t, err)
			for _, want := range tt.wantErr {
				require.Contains(t, err.Error(), want)
			}
			require.NotContains(t, err.Error(), masterPassword)
			require.NotContains(t, err.Error(), sentinelPassword)
		})
	}
}

// TestConnectClusterNode checks that a Redis Cluster node given as a single
// Redis fails at start-up instead of answering MOVED to writes later.
func TestConnectClusterNode(t *testing.T) {
	t.Parallel()
	node := redistest.NewServer(t, redistest.Args("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"))
	rdb, err := queue.Connect(context.Background(), node.URL(0))
	if rdb != nil {
		_ = rdb.Close()
	}
	require.ErrorIs(t, err, queue.ErrClusterNode)
	require.ErrorContains(t, err, "this is a Redis Cluster node: connect with redis-cluster://")
}

// TestConnectConfigErrors checks the settings Connect refuses before it
// dials anything.
func TestConnectConfigErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     queue.RedisConfig
		wantErr string
	}{
		{name: "nothing", cfg: queue.RedisConfig{}, wantErr: "no URL and no Sentinel or Cluster settings"},
		{name: "url and settings", cfg: queue.RedisConfig{URL: "redis://h:6379/0", SentinelMaster: "m"}, wantErr: "either a URL or the Sentinel or Cluster settings"},
		{name: "url and cluster", cfg: queue.RedisConfig{URL: "redis://h:6379/0", ClusterAddrs: []string{"h:1"}}, wantErr: "either a URL or the Sentinel or Cluster settings"},
		{name: "no master", cfg: queue.RedisConfig{URL: "redis-sentinel://h:26379/0"}, wantErr: "the master name is missing"},
		{name: "no sentinels", cfg: queue.RedisConfig{SentinelMaster: "m"}, wantErr: "no sentinel address"},
		{name: "bad sentinel address", cfg: queue.RedisConfig{SentinelMaster: "m", SentinelAddrs: []string{"h"}}, wantErr: `sentinel address "h" is not host:port`},
		{name: "unknown sentinel parameter", cfg: queue.RedisConfig{URL: "redis-sentinel://h:26379/0?master=m&db=2"}, wantErr: `unknown parameter "db"`},
		{name: "bad database", cfg: queue.RedisConfig{URL: "redis-sentinel://h:26379/x?master=m"}, wantErr: "the path is the database number"},
		{name: "CA without TLS", cfg: queue.RedisConfig{SentinelMaster: "m", SentinelAddrs: []string{"h:1"}, TLSFiles: queue.TLSFiles{CA: "ca.pem"}}, wantErr: "TLS is off"},
		{name: "node list", cfg: queue.RedisConfig{URL: "redis://:pw@h1:6379,h2:6379/0"}, wantErr: "a redis:// URL names one server"},
		{name: "unknown parameter", cfg: queue.RedisConfig{URL: "redis://h:6379/0?pool_size=3"}, wantErr: `unknown parameter "pool_size"`},
		{name: "unknown scheme", cfg: queue.RedisConfig{URL: "redis-clustr://h:6379"}, wantErr: `unsupported scheme "redis-clustr"`},
		{name: "cluster database", cfg: queue.RedisConfig{URL: "redis-cluster://:pw@h1:6379,h2:6379/2"}, wantErr: "a Redis Cluster has only database 0"},
		{name: "cluster parameter", cfg: queue.RedisConfig{URL: "redis-cluster://h1:6379?db=0"}, wantErr: "no parameters are accepted"},
		{name: "bad cluster address", cfg: queue.RedisConfig{ClusterAddrs: []string{"h1"}}, wantErr: `node address "h1" is not host:port`},
		{name: "cluster and sentinel", cfg: queue.RedisConfig{ClusterAddrs: []string{"h1:1"}, SentinelMaster: "m"}, wantErr: "Sentinel settings do not go with a Cluster"},
		{name: "cluster settings database", cfg: queue.RedisConfig{ClusterAddrs: []string{"h1:1"}, DB: 3}, wantErr: "a Redis Cluster has only database 0"},
		{name: "cluster CA without TLS", cfg: queue.RedisConfig{URL: "redis-cluster://h1:1", TLSFiles: queue.TLSFiles{CA: "ca.pem"}}, wantErr: "TLS is off"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rdb, err := queue.ConnectConfig(context.Background(), tt.cfg)
			require.Nil(t, rdb)
			require.ErrorContains(t, err, tt.wantErr)
			require.False(t, strings.Contains(err.Error(), "pw@"), "the error shows the password: %v", err)
		})
	}
}

// TestConnectCluster checks the two ways to name a Redis Cluster, that a
// job written through either lands on the node that serves its queue's
// slot, that the queue UI's Redis page works over the Cluster client, and
// that each mistake fails at start-up with an error that says which one.
func TestConnectCluster(t *testing.T) {
	t.Parallel()
	const pw = "cluster-secret"
	rc := redistest.NewCluster(t, redistest.ClusterOptions{Password: pw})
	plain := redistest.NewServer(t)
	ctx := context.Background()

	for name, cfg := range map[string]queue.RedisConfig{
		"url":      {URL: rc.URL()},
		"settings": {ClusterAddrs: rc.Addrs()[:1], Password: pw}, // one seed node finds the rest
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rdb, err := queue.ConnectConfig(ctx, cfg)
			require.NoError(t, err)
			t.Cleanup(func() { _ = rdb.Close() })
			_, ok := rdb.(*redis.ClusterClient)
			require.True(t, ok, "a Cluster client, got %T", rdb)
			st := queue.NewStore(rdb, testLogger(t))
			t.Cleanup(func() { _ = st.Close() })
			rec, _, err := st.Create(ctx, store.NewJob{Tenant: "t-" + name, Type: "simulate", Queue: "default", Payload: []byte(`{}`), MaxAttempts: 1, Timeout: time.Minute})
			require.NoError(t, err)
			got, err := st.Get(ctx, "t-"+name, rec.ID)
			require.NoError(t, err)
			require.Equal(t, store.StatePending, got.State)

			rr := httptest.NewRecorder()
			queue.MonitoringHandler(rdb, "/monitoring").ServeHTTP(rr, httptest.NewRequest(http.MethodGet, "/monitoring/api/queues", nil))
			require.Equal(t, http.StatusOK, rr.Code, rr.Body.String())
			require.Contains(t, rr.Body.String(), `"default"`)
		})
	}

	tests := []struct {
		name    string
		cfg     queue.RedisConfig
		wantErr string
	}{
		{name: "wrong password", cfg: queue.RedisConfig{URL: strings.Replace(rc.URL(), pw, "nope", 1)}, wantErr: "the nodes rejected the credentials"},
		{name: "no password", cfg: queue.RedisConfig{ClusterAddrs: rc.Addrs()}, wantErr: "the nodes rejected the credentials"},
		{name: "a plain Redis given as a Cluster", cfg: queue.RedisConfig{ClusterAddrs: []string{plain.Addr()}}, wantErr: "the seed nodes are not Cluster nodes"},
		{name: "a Cluster node given as one Redis", cfg: queue.RedisConfig{URL: "redis://:" + pw + "@" + rc.Addrs()[0]}, wantErr: "connect with redis-cluster://"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rdb, err := queue.ConnectConfig(ctx, tt.cfg)
			require.Nil(t, rdb)
			require.ErrorContains(t, err, tt.wantErr)
			require.NotContains(t, err.Error(), pw)
		})
	}
}
