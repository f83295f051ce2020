// Package config loads process configuration from flags, with environment
// variables as fallbacks, and validates it before anything starts.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jobforge/jobforge/internal/telemetry"
)

// Config is the configuration of cmd/api and cmd/worker. Each field has a
// flag and an environment variable; the flag wins. See the README's table.
type Config struct {
	RedisURL string // REDIS_URL; empty only in dev mode (embedded store)
	// WorkerProtocolAddr serves WorkerService (worker only; empty: off).
	WorkerProtocolAddr string
	Dev                bool // JOBFORGE_DEV: embedded store without REDIS_URL, dev API key (cmd/jobforge-dev adds an in-process worker)

	GRPCAddr  string // JOBFORGE_GRPC_ADDR
	HTTPAddr  string // JOBFORGE_HTTP_ADDR
	AdminAddr string // JOBFORGE_ADMIN_ADDR: /metrics, /healthz, /readyz, /debug/pprof/
	// AutoscalingAddr serves the worker backlog for KEDA (API; empty: off).
	AutoscalingAddr string // JOBFORGE_AUTOSCALING_ADDR

	Queues         map[string]int // JOBFORGE_QUEUES: I/O pool queues and weights
	CPUQueues      map[string]int // JOBFORGE_CPU_QUEUES: CPU pool queues and weights
	Pools          []string       // JOBFORGE_POOLS: which pools this worker runs
	Concurrency    int            // JOBFORGE_CONCURRENCY: I/O pool slots
	CPUConcurrency int            // JOBFORGE_CPU_CONCURRENCY: CPU pool slots; 0 = GOMAXPROCS

	PollInterval         time.Duration // JOBFORGE_POLL_INTERVAL
	CPUPollInterval      time.Duration // JOBFORGE_CPU_POLL_INTERVAL
	DelayedCheckInterval time.Duration // JOBFORGE_DELAYED_CHECK_INTERVAL
	Retention            time.Duration // JOBFORGE_RETENTION
	IdempotencyWindow    time.Duration // JOBFORGE_IDEMPOTENCY_WINDOW
	ShutdownTimeout      time.Duration // JOBFORGE_SHUTDOWN_TIMEOUT
	LostAfter            time.Duration // JOBFORGE_LOST_AFTER
	MaxLostAttempts      int           // JOBFORGE_MAX_LOST_ATTEMPTS
	AllowCrashJobs       bool          // JOBFORGE_ALLOW_CRASH_JOBS
	DrainDelay           time.Duration // JOBFORGE_DRAIN_DELAY

	LogLevel  slog.Level // JOBFORGE_LOG_LEVEL
	LogFormat string     // JOBFORGE_LOG_FORMAT: json or text

	// Security (API).
	APIKeysFile    string   // JOBFORGE_API_KEYS_FILE
	JWTJWKS        string   // JOBFORGE_JWT_JWKS: file or http(s) URL
	JWTIssuer      string   // JOBFORGE_JWT_ISSUER
	JWTAudience    string   // JOBFORGE_JWT_AUDIENCE
	JWTAlgorithms  []string // JOBFORGE_JWT_ALGORITHMS
	JWTTenantClaim string   // JOBFORGE_JWT_TENANT_CLAIM
	AuthDisabled   bool     // JOBFORGE_AUTH_DISABLED
	DevKey         string   // JOBFORGE_DEV_KEY (dev mode only)

	RateWrite, RateRead             int // JOBFORGE_RATE_LIMIT_WRITE / _READ (per principal, req/s)
	TenantRateWrite, TenantRateRead int // JOBFORGE_TENANT_RATE_LIMIT_WRITE / _READ
	MaxWaitingPerTenant             int // JOBFORGE_MAX_WAITING_PER_TENANT
	// RedisMinReplicas makes every create wait until that many replicas
	// have it (Redis WAIT), at most RedisReplicaTimeout; 0 = no wait.
	RedisMinReplicas    int           // JOBFORGE_REDIS_MIN_REPLICAS
	RedisReplicaTimeout time.Duration // JOBFORGE_REDIS_REPLICA_TIMEOUT
	MaxBodyBytes        int           // JOBFORGE_MAX_BODY_BYTES

	TLSCert, TLSKey string // JOBFORGE_TLS_CERT, JOBFORGE_TLS_KEY

	// Redis TLS (rediss://): CA bundle and optional client certificate.
	RedisCA, RedisCert, RedisKey string // JOBFORGE_REDIS_CA, _CERT, _KEY

	// Redis Sentinel given setting by setting, instead of REDIS_URL (so the
	// passwords can come from their own Secret keys).
	RedisSentinelMaster   string   // JOBFORGE_REDIS_SENTINEL_MASTER
	RedisSentinelAddrs    []string // JOBFORGE_REDIS_SENTINEL_ADDRS: host:port,...
	RedisSentinelUsername string   // JOBFORGE_REDIS_SENTINEL_USERNAME
	RedisSentinelPassword string   // JOBFORGE_REDIS_SENTINEL_PASSWORD
	RedisUsername         string   // JOBFORGE_REDIS_USERNAME: the master's (or the Cluster nodes')
	RedisPassword         string   // JOBFORGE_REDIS_PASSWORD: the master's (or the Cluster nodes')
	RedisDB               int      // JOBFORGE_REDIS_DB
	RedisTLS              bool     // JOBFORGE_REDIS_TLS: TLS to the sentinels and the master (or the Cluster nodes)

	// Redis Cluster given setting by setting, instead of REDIS_URL: seed
	// nodes; RedisUsername, RedisPassword and RedisTLS apply to every node.
	RedisClusterAddrs []string // JOBFORGE_REDIS_CLUSTER_ADDRS: host:port,...
}

// Program selects the flags that apply.
type Program int

// Programs.
const (
	API Program = iota
	Worker
)

// Load parses args (without the program name) with getenv supplying
// defaults, and validates the result. Usage goes to out on -h.
func Load(p Program, name string, args []string, getenv func(string) string, out io.Writer) (Config, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	env := func(key, def string) string {
		if v := getenv(key); v != "" {
			return v
		}
		return def
	}
	var (
		c                                 Config
		queues, cpuQueues, pools, level   string
		poll, delayed, retention, stop    string
		cpuPoll                           string
		idemWindow                        string
		drain, concurrency, cpuConcurrent string
		lostAfter, maxLost                string
		jwtAlgs, rateW, rateR, tRateW     string
		tRateR, maxWaiting, maxBody       string
		minReplicas, replicaTimeout       string
		sentinelAddrs, redisDB, redisTLS  string
		clusterAddrs                      string
	)
	envDev, devErr := false, error(nil)
	if v := getenv("JOBFORGE_DEV"); v != "" {
		envDev, devErr = strconv.ParseBool(v)
	}
	fs.StringVar(&c.RedisURL, "redis-url", env("REDIS_URL", ""), "Redis URL: redis://, rediss://, unix://, redis-sentinel://, rediss-sentinel://, redis-cluster://, rediss-cluster:// (env REDIS_URL)")
	fs.StringVar(&queues, "queues", env("JOBFORGE_QUEUES", "critical=6,default=3,low=1"), "I/O pool queues with weights (env JOBFORGE_QUEUES)")
	fs.StringVar(&cpuQueues, "cpu-queues", env("JOBFORGE_CPU_QUEUES", "cpu=1"), "CPU pool queues with weights (env JOBFORGE_CPU_QUEUES)")
	fs.StringVar(&retention, "retention", env("JOBFORGE_RETENTION", "24h"), "how long finished jobs stay readable (env JOBFORGE_RETENTION)")
	fs.StringVar(&idemWindow, "idempotency-window", env("JOBFORGE_IDEMPOTENCY_WINDOW", "24h"), "how long idempotency keys are remembered (env JOBFORGE_IDEMPOTENCY_WINDOW)")
	fs.StringVar(&stop, "shutdown-timeout", env("JOBFORGE_SHUTDOWN_TIMEOUT", "25s"), "grace for in-flight work on shutdown (env JOBFORGE_SHUTDOWN_TIMEOUT)")
	fs.StringVar(&level, "log-level", env("JOBFORGE_LOG_LEVEL", "info"), "debug, info, warn or error (env JOBFORGE_LOG_LEVEL)")
	fs.StringVar(&c.LogFormat, "log-format", env("JOBFORGE_LOG_FORMAT", ""), "json or text; default json, text in dev mode (env JOBFORGE_LOG_FORMAT)")
	fs.StringVar(&poll, "poll-interval", env("JOBFORGE_POLL_INTERVAL", "100ms"), "longest an idle io pool waits before checking its queues again; jobs created through the API wake it at once (env JOBFORGE_POLL_INTERVAL)")
	fs.StringVar(&cpuPoll, "cpu-poll-interval", env("JOBFORGE_CPU_POLL_INTERVAL", "250ms"), "the same for the cpu pool (env JOBFORGE_CPU_POLL_INTERVAL)")
	fs.StringVar(&delayed, "delayed-check-interval", env("JOBFORGE_DELAYED_CHECK_INTERVAL", "500ms"), "how often due scheduled/retrying jobs are moved to their queue (env JOBFORGE_DELAYED_CHECK_INTERVAL)")
	fs.StringVar(&pools, "pools", env("JOBFORGE_POOLS", "io,cpu"), "worker pools to run: io, cpu (env JOBFORGE_POOLS)")
	fs.StringVar(&concurrency, "concurrency", env("JOBFORGE_CONCURRENCY", "32"), "I/O pool slots (env JOBFORGE_CONCURRENCY)")
	fs.StringVar(&cpuConcurrent, "cpu-concurrency", env("JOBFORGE_CPU_CONCURRENCY", "0"), "CPU pool slots, 0 = one per core (env JOBFORGE_CPU_CONCURRENCY)")
	fs.StringVar(&lostAfter, "lost-after", env("JOBFORGE_LOST_AFTER", "3s"), "a worker that has not heartbeaten (every second) for this long is lost: its jobs run again elsewhere (env JOBFORGE_LOST_AFTER)")
	fs.StringVar(&maxLost, "max-lost-attempts", env("JOBFORGE_MAX_LOST_ATTEMPTS", "3"), "attempts a job may lose to workers that crashed before it fails as WORKER_LOST (env JOBFORGE_MAX_LOST_ATTEMPTS)")
	fs.BoolVar(&c.AllowCrashJobs, "allow-crash-jobs", getenv("JOBFORGE_ALLOW_CRASH_JOBS") == "true", `let simulate jobs with "outcome": "crash" end the worker process, for fault tests; otherwise such an attempt fails permanently (env JOBFORGE_ALLOW_CRASH_JOBS=true)`)
	fs.StringVar(&c.AdminAddr, "admin-addr", env("JOBFORGE_ADMIN_ADDR", ":8081"), "admin listen address: /metrics, /healthz, /readyz, /debug/pprof/ (env JOBFORGE_ADMIN_ADDR)")
	// Credentials: the API's callers, and the worker protocol's workers.
	fs.StringVar(&c.APIKeysFile, "api-keys-file", env("JOBFORGE_API_KEYS_FILE", ""), "JSON file of API keys (hashes only), e.g. a mounted Secret (env JOBFORGE_API_KEYS_FILE)")
	fs.StringVar(&c.JWTJWKS, "jwt-jwks", env("JOBFORGE_JWT_JWKS", ""), "JWKS file or URL for JWT bearer tokens (env JOBFORGE_JWT_JWKS)")
	fs.StringVar(&c.JWTIssuer, "jwt-issuer", env("JOBFORGE_JWT_ISSUER", ""), "required JWT iss (env JOBFORGE_JWT_ISSUER)")
	fs.StringVar(&c.JWTAudience, "jwt-audience", env("JOBFORGE_JWT_AUDIENCE", ""), "required JWT aud (env JOBFORGE_JWT_AUDIENCE)")
	fs.StringVar(&jwtAlgs, "jwt-algorithms", env("JOBFORGE_JWT_ALGORITHMS", "RS256,ES256"), "accepted JWT algorithms (env JOBFORGE_JWT_ALGORITHMS)")
	fs.StringVar(&c.JWTTenantClaim, "jwt-tenant-claim", env("JOBFORGE_JWT_TENANT_CLAIM", "tenant"), "JWT claim holding the tenant (env JOBFORGE_JWT_TENANT_CLAIM)")
	switch p {
	case Worker:
		fs.StringVar(&c.WorkerProtocolAddr, "worker-protocol-addr", env("JOBFORGE_WORKER_PROTOCOL_ADDR", ""), "serve the worker protocol (WorkerService) for workers in other languages on this address; needs -api-keys-file or -jwt-jwks (env JOBFORGE_WORKER_PROTOCOL_ADDR)")
	case API:
		fs.StringVar(&c.GRPCAddr, "grpc-addr", env("JOBFORGE_GRPC_ADDR", ":9090"), "gRPC listen address (env JOBFORGE_GRPC_ADDR)")
		fs.StringVar(&c.HTTPAddr, "http-addr", env("JOBFORGE_HTTP_ADDR", ":8080"), "REST gateway listen address (env JOBFORGE_HTTP_ADDR)")
		fs.StringVar(&c.AutoscalingAddr, "autoscaling-addr", env("JOBFORGE_AUTOSCALING_ADDR", ""), "listen address of the worker backlog for autoscalers, GET /backlog?queues=a,b: pending jobs of unpaused queues plus running jobs; empty = not served (env JOBFORGE_AUTOSCALING_ADDR)")
		fs.StringVar(&drain, "drain-delay", env("JOBFORGE_DRAIN_DELAY", "0s"), "time between readiness off and closing listeners (env JOBFORGE_DRAIN_DELAY)")
		fs.BoolVar(&c.Dev, "dev", envDev, "development mode: embedded in-memory store when REDIS_URL is unset and a dev API key (env JOBFORGE_DEV; jobforge-dev, the all-in-one server, implies it)")
		fs.BoolVar(&c.AuthDisabled, "auth-disabled", getenv("JOBFORGE_AUTH_DISABLED") == "true", "serve without authentication: every caller has full access to the default tenant (env JOBFORGE_AUTH_DISABLED=true)")
		fs.StringVar(&rateW, "rate-limit-write", env("JOBFORGE_RATE_LIMIT_WRITE", "200"), "write requests per second per caller; 0 = off (env JOBFORGE_RATE_LIMIT_WRITE)")
		fs.StringVar(&rateR, "rate-limit-read", env("JOBFORGE_RATE_LIMIT_READ", "1000"), "read requests per second per caller; 0 = off (env JOBFORGE_RATE_LIMIT_READ)")
		fs.StringVar(&tRateW, "tenant-rate-limit-write", env("JOBFORGE_TENANT_RATE_LIMIT_WRITE", "1000"), "write requests per second per tenant; 0 = off (env JOBFORGE_TENANT_RATE_LIMIT_WRITE)")
		fs.StringVar(&tRateR, "tenant-rate-limit-read", env("JOBFORGE_TENANT_RATE_LIMIT_READ", "5000"), "read requests per second per tenant; 0 = off (env JOBFORGE_TENANT_RATE_LIMIT_READ)")
		fs.StringVar(&maxWaiting, "max-waiting-per-tenant", env("JOBFORGE_MAX_WAITING_PER_TENANT", "100000"), "pending+scheduled jobs a tenant may have; 0 = no cap (env JOBFORGE_MAX_WAITING_PER_TENANT)")
		fs.StringVar(&minReplicas, "redis-min-replicas", env("JOBFORGE_REDIS_MIN_REPLICAS", "0"), "durability: a create is acknowledged only once this many Redis replicas have it (WAIT), so a failover cannot lose it; when fewer confirm in time the create answers 503, retry with the same idempotency key; 0 = acknowledge once the primary has it (env JOBFORGE_REDIS_MIN_REPLICAS)")
		fs.StringVar(&replicaTimeout, "redis-replica-timeout", env("JOBFORGE_REDIS_REPLICA_TIMEOUT", "500ms"), "durability: how long a create waits for -redis-min-replicas, at most 900ms (env JOBFORGE_REDIS_REPLICA_TIMEOUT)")
		fs.StringVar(&maxBody, "max-body-bytes", env("JOBFORGE_MAX_BODY_BYTES", "4194304"), "largest REST request body / gRPC message (env JOBFORGE_MAX_BODY_BYTES)")
		fs.StringVar(&c.TLSCert, "tls-cert", env("JOBFORGE_TLS_CERT", ""), "TLS certificate file for gRPC and HTTP (env JOBFORGE_TLS_CERT)")
		fs.StringVar(&c.TLSKey, "tls-key", env("JOBFORGE_TLS_KEY", ""), "TLS key file (env JOBFORGE_TLS_KEY)")
		c.DevKey = getenv("JOBFORGE_DEV_KEY")
	}
	fs.StringVar(&c.RedisCA, "redis-ca", env("JOBFORGE_REDIS_CA", ""), "CA bundle for rediss:// (env JOBFORGE_REDIS_CA)")
	fs.StringVar(&c.RedisCert, "redis-cert", env("JOBFORGE_REDIS_CERT", ""), "client certificate for rediss:// (env JOBFORGE_REDIS_CERT)")
	fs.StringVar(&c.RedisKey, "redis-key", env("JOBFORGE_REDIS_KEY", ""), "client key for rediss:// (env JOBFORGE_REDIS_KEY)")
	fs.StringVar(&c.RedisSentinelMaster, "redis-sentinel-master", env("JOBFORGE_REDIS_SENTINEL_MASTER", ""), "Sentinel: name of the monitored master, instead of REDIS_URL (env JOBFORGE_REDIS_SENTINEL_MASTER)")
	fs.StringVar(&sentinelAddrs, "redis-sentinel-addrs", env("JOBFORGE_REDIS_SENTINEL_ADDRS", ""), "Sentinel: sentinel addresses, host:port,host:port (env JOBFORGE_REDIS_SENTINEL_ADDRS)")
	fs.StringVar(&c.RedisSentinelUsername, "redis-sentinel-username", env("JOBFORGE_REDIS_SENTINEL_USERNAME", ""), "Sentinel: user for the sentinels (env JOBFORGE_REDIS_SENTINEL_USERNAME)")
	fs.StringVar(&c.RedisSentinelPassword, "redis-sentinel-password", env("JOBFORGE_REDIS_SENTINEL_PASSWORD", ""), "Sentinel: password of the sentinels; prefer the env variable (env JOBFORGE_REDIS_SENTINEL_PASSWORD)")
	fs.StringVar(&clusterAddrs, "redis-cluster-addrs", env("JOBFORGE_REDIS_CLUSTER_ADDRS", ""), "Redis Cluster: seed node addresses, host:port,host:port, instead of REDIS_URL (env JOBFORGE_REDIS_CLUSTER_ADDRS)")
	fs.StringVar(&c.RedisUsername, "redis-username", env("JOBFORGE_REDIS_USERNAME", ""), "Sentinel or Cluster: user for the master or the Cluster nodes (env JOBFORGE_REDIS_USERNAME)")
	fs.StringVar(&c.RedisPassword, "redis-password", env("JOBFORGE_REDIS_PASSWORD", ""), "Sentinel or Cluster: password of the master or the Cluster nodes; prefer the env variable (env JOBFORGE_REDIS_PASSWORD)")
	fs.StringVar(&redisDB, "redis-db", env("JOBFORGE_REDIS_DB", "0"), "Sentinel: database number on the master (env JOBFORGE_REDIS_DB)")
	fs.StringVar(&redisTLS, "redis-tls", env("JOBFORGE_REDIS_TLS", "false"), "Sentinel or Cluster: TLS to the sentinels and the master, or to the Cluster nodes (env JOBFORGE_REDIS_TLS)")
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}

	var errs []error
	bad := func(name string, err error) { errs = append(errs, fmt.Errorf("-%s: %w", name, err)) }
	parseDur := func(name, v string, min, max time.Duration) time.Duration {
		d, err := time.ParseDuration(v)
		switch {
		case err != nil:
			bad(name, fmt.Errorf("not a duration: %q", v))
		case d < min || d > max:
			bad(name, fmt.Errorf("%s is outside %s..%s", d, min, max))
		}
		return d
	}
	parseInt := func(name, v string, min, max int) int {
		n, err := strconv.Atoi(v)
		switch {
		case err != nil:
			bad(name, fmt.Errorf("not an integer: %q", v))
		case n < min || n > max:
			bad(name, fmt.Errorf("%d is outside %d..%d", n, min, max))
		}
		return n
	}
	if devErr != nil {
		bad("dev", fmt.Errorf("JOBFORGE_DEV is not a boolean: %q", getenv("JOBFORGE_DEV")))
	}
	c.Queues = parseQueues("queues", queues, bad)
	c.CPUQueues = parseQueues("cpu-queues", cpuQueues, bad)
	for q := range c.CPUQueues {
		if _, dup := c.Queues[q]; dup {
			bad("cpu-queues", fmt.Errorf("queue %q is also in -queues; a queue belongs to one pool", q))
		}
	}
	c.Retention = parseDur("retention", retention, time.Minute, 90*24*time.Hour)
	c.ShutdownTimeout = parseDur("shutdown-timeout", stop, time.Second, time.Hour)
	c.LostAfter = parseDur("lost-after", lostAfter, 2*time.Second, 5*time.Minute)
	c.MaxLostAttempts = parseInt("max-lost-attempts", maxLost, 1, 100)
	c.IdempotencyWindow = parseDur("idempotency-window", idemWindow, time.Minute, 30*24*time.Hour)
	c.PollInterval = parseDur("poll-interval", poll, time.Millisecond, 10*time.Second)
	c.CPUPollInterval = parseDur("cpu-poll-interval", cpuPoll, time.Millisecond, 10*time.Second)
	c.DelayedCheckInterval = parseDur("delayed-check-interval", delayed, 10*time.Millisecond, time.Minute)
	c.Concurrency = parseInt("concurrency", concurrency, 1, 10_000)
	c.CPUConcurrency = parseInt("cpu-concurrency", cpuConcurrent, 0, 10_000)
	if c.CPUConcurrency == 0 {
		c.CPUConcurrency = runtime.GOMAXPROCS(0)
	}
	for _, pool := range strings.Split(pools, ",") {
		pool = strings.TrimSpace(pool)
		switch pool {
		case "":
		case "io", "cpu":
			if !slices.Contains(c.Pools, pool) {
				c.Pools = append(c.Pools, pool)
			}
		default:
			bad("pools", fmt.Errorf("unknown pool %q; want io and/or cpu", pool))
		}
	}
	if p == Worker && len(c.Pools) == 0 {
		bad("pools", errors.New("a worker needs at least one pool"))
	}
	if p == API {
		c.DrainDelay = parseDur("drain-delay", drain, 0, 5*time.Minute)
	}
	switch strings.ToLower(level) {
	case "debug":
		c.LogLevel = slog.LevelDebug
	case "info":
		c.LogLevel = slog.LevelInfo
	case "warn":
		c.LogLevel = slog.LevelWarn
	case "error":
		c.LogLevel = slog.LevelError
	default:
		bad("log-level", fmt.Errorf("want debug, info, warn or error, got %q", level))
	}
	if c.LogFormat == "" {
		c.LogFormat = "json"
		if c.Dev {
			c.LogFormat = "text"
		}
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		bad("log-format", fmt.Errorf("want json or text, got %q", c.LogFormat))
	}
	for _, a := range strings.Split(jwtAlgs, ",") {
		if a = strings.TrimSpace(a); a != "" {
			if a == "none" || strings.HasPrefix(a, "HS") {
				bad("jwt-algorithms", fmt.Errorf("%q is not allowed: use asymmetric algorithms (RS*, PS*, ES*, EdDSA)", a))
			}
			c.JWTAlgorithms = append(c.JWTAlgorithms, a)
		}
	}
	if c.JWTJWKS != "" && (c.JWTIssuer == "" || c.JWTAudience == "") {
		bad("jwt-jwks", errors.New("JWT verification needs -jwt-issuer and -jwt-audience too"))
	}
	if p == Worker && c.WorkerProtocolAddr != "" && c.APIKeysFile == "" && c.JWTJWKS == "" {
		bad("worker-protocol-addr", errors.New("the worker protocol needs credentials: set -api-keys-file and/or -jwt-jwks (keys with the worker scope)"))
	}
	if p == API {
		c.RateWrite = parseInt("rate-limit-write", rateW, 0, 1_000_000)
		c.RateRead = parseInt("rate-limit-read", rateR, 0, 1_000_000)
		c.TenantRateWrite = parseInt("tenant-rate-limit-write", tRateW, 0, 1_000_000)
		c.TenantRateRead = parseInt("tenant-rate-limit-read", tRateR, 0, 1_000_000)
		c.MaxWaitingPerTenant = parseInt("max-waiting-per-tenant", maxWaiting, 0, 1_000_000_000)
		c.RedisMinReplicas = parseInt("redis-min-replicas", minReplicas, 0, 100)
		// The wait shares the connection's 1 s read timeout.
		c.RedisReplicaTimeout = parseDur("redis-replica-timeout", replicaTimeout, 10*time.Millisecond, 900*time.Millisecond)
		c.MaxBodyBytes = parseInt("max-body-bytes", maxBody, 1024, 64<<20)
		if (c.TLSCert == "") != (c.TLSKey == "") {
			bad("tls-cert", errors.New("-tls-cert and -tls-key go together"))
		}
		if !c.Dev && !c.AuthDisabled && c.APIKeysFile == "" && c.JWTJWKS == "" {
			bad("api-keys-file", errors.New("no authentication configured: set JOBFORGE_API_KEYS_FILE and/or JOBFORGE_JWT_JWKS, or JOBFORGE_AUTH_DISABLED=true to serve without authentication"))
		}
		if c.DevKey != "" && !c.Dev {
			bad("dev", errors.New("JOBFORGE_DEV_KEY is only honoured in dev mode (-dev)"))
		}
	}
	if (c.RedisCert == "") != (c.RedisKey == "") {
		bad("redis-cert", errors.New("-redis-cert and -redis-key go together"))
	}
	c.RedisDB = parseInt("redis-db", redisDB, 0, 1_000_000)
	if v, err := strconv.ParseBool(redisTLS); err != nil {
		bad("redis-tls", fmt.Errorf("not a boolean: %q", redisTLS))
	} else {
		c.RedisTLS = v
	}
	for _, a := range strings.Split(sentinelAddrs, ",") {
		if a = strings.TrimSpace(a); a != "" {
			c.RedisSentinelAddrs = append(c.RedisSentinelAddrs, a)
		}
	}
	for _, a := range strings.Split(clusterAddrs, ",") {
		if a = strings.TrimSpace(a); a != "" {
			c.RedisClusterAddrs = append(c.RedisClusterAddrs, a)
		}
	}
	cluster := len(c.RedisClusterAddrs) > 0
	switch sentinel := c.RedisSentinel(); {
	case cluster && c.RedisURL != "":
		bad("redis-url", errors.New("REDIS_URL and -redis-cluster-addrs exclude each other: give the connection one way"))
	case cluster && (c.RedisSentinelMaster != "" || len(c.RedisSentinelAddrs) > 0 || c.RedisSentinelUsername != "" || c.RedisSentinelPassword != ""):
		bad("redis-cluster-addrs", errors.New("-redis-cluster-addrs and the -redis-sentinel-* settings exclude each other: Redis is either a Cluster or Sentinel-managed"))
	case cluster && c.RedisDB != 0:
		bad("redis-db", errors.New("a Redis Cluster has only database 0"))
	case cluster:
	case sentinel && c.RedisURL != "":
		bad("redis-url", errors.New("REDIS_URL and the -redis-sentinel-*, -redis-username, -redis-password, -redis-db and -redis-tls settings exclude each other: give the connection one way"))
	case sentinel && (c.RedisSentinelMaster == "" || len(c.RedisSentinelAddrs) == 0):
		bad("redis-sentinel-addrs", errors.New("Sentinel settings need both -redis-sentinel-master and -redis-sentinel-addrs (the other -redis-* connection settings only go with them or with -redis-cluster-addrs; a single Redis takes REDIS_URL)"))
	case !sentinel && c.RedisURL == "" && !c.Dev:
		bad("redis-url", errors.New("REDIS_URL (or -redis-sentinel-master and -redis-sentinel-addrs, or -redis-cluster-addrs) is required (or run the API with -dev for an embedded in-memory store)"))
	}
	return c, errors.Join(errs...)
}

var queueName = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,63}$`)

// parseQueues parses "name=weight,name=weight"; a bare name has weight 1.
func parseQueues(flagName, spec string, bad func(string, error)) map[string]int {
	out := map[string]int{}
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, w, hasWeight := strings.Cut(part, "=")
		weight := 1
		if hasWeight {
			n, err := strconv.Atoi(w)
			if err != nil || n < 1 || n > 1000 {
				bad(flagName, fmt.Errorf("queue %q: weight must be an integer in 1..1000, got %q", name, w))
				continue
			}
			weight = n
		}
		if !queueName.MatchString(name) {
			bad(flagName, fmt.Errorf("invalid queue name %q: lowercase letters, digits, - and _, starting with a letter", name))
			continue
		}
		if _, dup := out[name]; dup {
			bad(flagName, fmt.Errorf("queue %q listed twice", name))
		}
		out[name] = weight
	}
	return out
}

// RedisCluster reports whether Redis is a Cluster given by the discrete
// settings rather than REDIS_URL.
func (c Config) RedisCluster() bool { return len(c.RedisClusterAddrs) > 0 }

// RedisSentinel reports whether Redis is given by the discrete Sentinel
// settings rather than REDIS_URL.
func (c Config) RedisSentinel() bool {
	if c.RedisCluster() {
		return false
	}
	return c.RedisSentinelMaster != "" || len(c.RedisSentinelAddrs) > 0 || c.RedisSentinelUsername != "" ||
		c.RedisSentinelPassword != "" || c.RedisUsername != "" || c.RedisPassword != "" || c.RedisDB != 0 || c.RedisTLS
}

// AllQueues returns every configured queue name, sorted.
func (c Config) AllQueues() []string {
	qs := slices.Collect(maps.Keys(c.Queues))
	qs = append(qs, slices.Collect(maps.Keys(c.CPUQueues))...)
	slices.Sort(qs)
	return qs
}

// Logger builds the process logger: JSON for production, text for dev.
// Lines logged with a traced context carry trace_id and span_id. Lines
// logged at the same moment share a write to w (telemetry.LogWriter);
// each is written before its call returns.
func (c Config) Logger(w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.LogLevel}
	lw := telemetry.NewLogWriter(w)
	var h slog.Handler = slog.NewJSONHandler(lw, opts)
	if c.LogFormat == "text" {
		h = slog.NewTextHandler(lw, opts)
	}
	return slog.New(telemetry.LogHandler(lw.Handler(h)))
}
