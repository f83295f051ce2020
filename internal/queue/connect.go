package queue

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisConfig says how to reach Redis: a URL, or a Sentinel-managed master
// or a Redis Cluster described field by field. Every component of a process (store, worker,
// asynq's client, server and inspector, scheduler, limiter, watch, queue UI)
// uses the one client that Connect returns for it.
type RedisConfig struct {
	// URL is redis://, rediss://, unix://, redis-socket://,
	// redis-sentinel://, rediss-sentinel://, redis-cluster:// or
	// rediss-cluster:// (see Connect). When it is set, the fields below
	// other than TLSFiles must be zero.
	URL string

	// ClusterAddrs are seed nodes of a Redis Cluster (host:port); Username,
	// Password and TLS apply to every node, and DB must be 0.
	ClusterAddrs []string

	// SentinelMaster is the name under which the sentinels monitor the
	// master, SentinelAddrs their host:port addresses.
	SentinelMaster string
	SentinelAddrs  []string
	// SentinelUsername and SentinelPassword authenticate to the sentinels
	// (Sentinel's own requirepass or ACL user), which often differ from the
	// master's.
	SentinelUsername, SentinelPassword string
	// Username and Password authenticate to the master (or to the
	// Cluster's nodes).
	Username, Password string
	// DB is the database number on the master.
	DB int
	// TLS makes the connections to the sentinels and to the master (or to
	// the Cluster's nodes) TLS.
	TLS bool

	// TLSFiles verify the server and present a client certificate on TLS
	// connections (rediss://, rediss-sentinel://, TLS).
	TLSFiles TLSFiles
}

// sentinel reports whether the discrete Sentinel fields are in use.
func (c RedisConfig) sentinel() bool {
	if len(c.ClusterAddrs) > 0 {
		return false
	}
	return c.SentinelMaster != "" || len(c.SentinelAddrs) > 0 || c.SentinelUsername != "" ||
		c.SentinelPassword != "" || c.Username != "" || c.Password != "" || c.DB != 0 || c.TLS
}

// TLSFiles are optional PEM files for TLS connections to Redis: a CA bundle
// to verify the server and a client certificate and key.
type TLSFiles struct {
	CA, Cert, Key string
}

func (f TLSFiles) apply(cfg *tls.Config) (*tls.Config, error) {
	if f.CA == "" && f.Cert == "" {
		return cfg, nil
	}
	if cfg == nil {
		cfg = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if f.CA != "" {
		pem, err := os.ReadFile(f.CA)
		if err != nil {
			return nil, fmt.Errorf("read redis CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("redis CA %s: no certificates", f.CA)
		}
		cfg.RootCAs = pool
	}
	if f.Cert != "" {
		cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			return nil, fmt.Errorf("load redis client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// Client timeouts. While Redis is unreachable every call must fail fast, so
// that the API answers 503 with a retry hint within a second instead of
// hanging: go-redis's defaults (5 s dial timeout, 3 retries of 5 dial
// attempts each) made a request wait up to 3 s. A refused connection now
// fails in about 100 ms; a Redis that accepts but does not answer, after
// ioTimeout. Blocking reads (watch) get their block time on top.
const (
	dialTimeout     = time.Second
	ioTimeout       = time.Second
	maxRetries      = 1
	dialerRetries   = 2
	dialerRetryWait = 50 * time.Millisecond
	// connectTimeout bounds the start-up checks of Connect.
	connectTimeout = 5 * time.Second
)

// Connect opens a go-redis client for a URL and checks that the server
// answers and is what the URL says it is. tlsFiles (optional) configure
// certificate checks for TLS connections. The URL forms:
//
//	redis://[user:password@]host:port[/db]         one Redis
//	rediss://[user:password@]host:port[/db]        one Redis over TLS
//	unix://[user:password@]/path/redis.sock[?db=N] one Redis on a Unix socket
//	redis-socket://[:password@]/path/redis.sock[?db=N]
//	redis-sentinel://[suser:spassword@]host:port[,host:port...][/db]?master=NAME[&username=U][&password=P]
//	rediss-sentinel://...                          the same over TLS
//	redis-cluster://[user:password@]host:port[,host:port...]  a Redis Cluster (seed nodes)
//	rediss-cluster://...                           the same over TLS
//
// For Sentinel, the user information before @ authenticates to the
// sentinels and the username and password parameters to the master; for
// Cluster, it authenticates to every node.
func Connect(ctx context.Context, rawURL string, tlsFiles ...TLSFiles) (Client, error) {
	cfg := RedisConfig{URL: rawURL}
	if len(tlsFiles) > 0 {
		cfg.TLSFiles = tlsFiles[0]
	}
	return ConnectConfig(ctx, cfg)
}

// ConnectConfig is Connect for a RedisConfig. It fails, with an error that
// says what to fix, when:
//   - no sentinel knows the master name, or the sentinels or the master
//     reject their credentials;
//   - a single-Redis URL points at a Redis Cluster node (use
//     redis-cluster://) or at a sentinel;
//   - a Cluster's seed nodes are not Cluster nodes, or the Cluster is not
//     in state ok (slots not all served).
func ConnectConfig(ctx context.Context, cfg RedisConfig) (Client, error) {
	var (
		single   *redis.Options
		failover *redis.FailoverOptions
		cluster  *redis.ClusterOptions
		err      error
	)
	switch {
	case cfg.URL != "" && (cfg.sentinel() || len(cfg.ClusterAddrs) > 0):
		return nil, errors.New("redis: give either a URL or the Sentinel or Cluster settings, not both")
	case len(cfg.ClusterAddrs) > 0:
		cluster, err = cfg.clusterOptions()
	case cfg.URL == "" && !cfg.sentinel():
		return nil, errors.New("redis: no URL and no Sentinel or Cluster settings")
	case cfg.URL == "":
		failover, err = cfg.failoverOptions()
	case strings.HasPrefix(cfg.URL, "redis-cluster:") || strings.HasPrefix(cfg.URL, "rediss-cluster:"):
		var c RedisConfig
		if c, err = parseClusterURL(cfg.URL); err == nil {
			c.TLSFiles = cfg.TLSFiles
			cluster, err = c.clusterOptions()
		}
	case strings.HasPrefix(cfg.URL, "redis-sentinel:") || strings.HasPrefix(cfg.URL, "rediss-sentinel:"):
		var s RedisConfig
		if s, err = parseSentinelURL(cfg.URL); err == nil {
			s.TLSFiles = cfg.TLSFiles
			failover, err = s.failoverOptions()
		}
	default:
		single, err = singleOptions(cfg.URL, cfg.TLSFiles)
	}
	if err != nil {
		return nil, err
	}

	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	var rdb Client
	switch {
	case cluster != nil:
		cc := newClusterClient(cluster)
		if err := checkCluster(ctx, cc); err != nil {
			_ = cc.Close()
			return nil, err
		}
		return cc, nil
	case failover != nil:
		if err := checkSentinels(ctx, failover); err != nil {
			return nil, err
		}
		rdb = &failoverClient{Client: redis.NewFailoverClient(failover), opts: failover}
	default:
		rdb = redis.NewClient(single)
	}
	if err := rdb.Ping(ctx).Err(); err != nil {
		_ = rdb.Close()
		if isAuthError(err) && failover != nil {
			return nil, fmt.Errorf("redis: the master of %q rejected its credentials (the master's are the username and password URL parameters or -redis-username/-redis-password; the sentinels' are the URL's user information or -redis-sentinel-username/-redis-sentinel-password): %w", failover.MasterName, err)
		}
		return nil, fmt.Errorf("ping redis: %w", err)
	}
	if err := checkMode(ctx, rdb); err != nil {
		_ = rdb.Close()
		return nil, err
	}
	return rdb, nil
}

// failoverClient is a Sentinel client that keeps its options, so that the
// clients opened next to it (the worker's, the watch pool) follow failovers
// too: a plain copy of its options would keep the old master's connections
// after a switch, and the worker would stall until they broke.
type failoverClient struct {
	*redis.Client
	opts *redis.FailoverOptions
}

// newClientLike opens a client with a pool of its own to the Redis that rdb
// talks to, following failovers as rdb does; tune adjusts the connection
// options (pool sizes). ok is false for a client of another kind.
func newClientLike(rdb redis.UniversalClient, tune func(*redis.Options)) (_ redis.UniversalClient, ok bool) {
	switch c := rdb.(type) {
	case *failoverClient:
		o := *c.opts
		t := redis.Options{PoolSize: o.PoolSize, MinIdleConns: o.MinIdleConns, MaxIdleConns: o.MaxIdleConns}
		tune(&t)
		o.PoolSize, o.MinIdleConns, o.MaxIdleConns = t.PoolSize, t.MinIdleConns, t.MaxIdleConns
		return &failoverClient{Client: redis.NewFailoverClient(&o), opts: &o}, true
	case *redis.Client:
		o := *c.Options()
		tune(&o)
		return redis.NewClient(&o), true
	case *redis.ClusterClient:
		o := *c.Options()
		t := redis.Options{PoolSize: o.PoolSize, MinIdleConns: o.MinIdleConns, MaxIdleConns: o.MaxIdleConns}
		tune(&t)
		o.PoolSize, o.MinIdleConns, o.MaxIdleConns = t.PoolSize, t.MinIdleConns, t.MaxIdleConns
		return newClusterClient(&o), true
	}
	return nil, false
}

// clientDefaults are jobforge's settings for every client connection (see
// the timeout constants).
func clientDefaults(o *redis.Options) {
	// RESP2: jobforge uses no RESP3 feature, and on RESP3 connections
	// go-redis looks for pending push notifications around every command
	// (an extra read on the socket): about a tenth of the CPU of a busy
	// worker or API process.
	o.Protocol = 2
	o.DialTimeout, o.ReadTimeout, o.WriteTimeout = dialTimeout, ioTimeout, ioTimeout
	o.MaxRetries, o.DialerRetries, o.DialerRetryTimeout = maxRetries, dialerRetries, dialerRetryWait
}

// singleOptions parses a URL of one Redis.
func singleOptions(rawURL string, files TLSFiles) (*redis.Options, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parse redis url: %w", redactErr(err, rawURL))
	}
	switch u.Scheme {
	case "redis", "rediss":
		if strings.Contains(u.Host, ",") {
			return nil, errors.New("parse redis url: a redis:// URL names one server; for Sentinel use redis-sentinel://host:port,host:port/DB?master=NAME, for a Redis Cluster redis-cluster://host:port,host:port")
		}
	case "unix":
	case "redis-socket": // asynq's name for unix://
		u.Scheme = "unix"
	default:
		return nil, fmt.Errorf("parse redis url: unsupported scheme %q: want redis, rediss, unix, redis-socket, redis-sentinel, rediss-sentinel, redis-cluster or rediss-cluster", u.Scheme)
	}
	// Only the database may be given as a parameter: the connection
	// settings are jobforge's (see clientDefaults).
	for k := range u.Query() {
		if k != "db" {
			return nil, fmt.Errorf("parse redis url: unknown parameter %q (only db is accepted)", k)
		}
	}
	o, err := redis.ParseURL(u.String())
	if err != nil {
		return nil, fmt.Errorf("parse redis url: %w", redactErr(err, rawURL))
	}
	clientDefaults(o)
	if o.TLSConfig, err = files.apply(o.TLSConfig); err != nil {
		return nil, err
	}
	return o, nil
}

// sentinelParams are the parameters a Sentinel URL may carry.
var sentinelParams = []string{"master", "username", "password"}

// parseSentinelURL parses a redis-sentinel:// or rediss-sentinel:// URL.
func parseSentinelURL(rawURL string) (RedisConfig, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return RedisConfig{}, fmt.Errorf("parse redis sentinel url: %w", redactErr(err, rawURL))
	}
	c := RedisConfig{TLS: u.Scheme == "rediss-sentinel"}
	if u.User != nil {
		c.SentinelUsername = u.User.Username()
		c.SentinelPassword, _ = u.User.Password()
	}
	for _, a := range strings.Split(u.Host, ",") {
		if a = strings.TrimSpace(a); a != "" {
			c.SentinelAddrs = append(c.SentinelAddrs, a)
		}
	}
	if p := strings.Trim(u.Path, "/"); p != "" {
		if c.DB, err = strconv.Atoi(p); err != nil {
			return RedisConfig{}, fmt.Errorf("parse redis sentinel url: the path is the database number, got %q", p)
		}
	}
	q := u.Query()
	for k, v := range q {
		if !slices.Contains(sentinelParams, k) {
			return RedisConfig{}, fmt.Errorf("parse redis sentinel url: unknown parameter %q (want %s)", k, strings.Join(sentinelParams, ", "))
		}
		if len(v) > 1 {
			return RedisConfig{}, fmt.Errorf("parse redis sentinel url: parameter %q given %d times", k, len(v))
		}
	}
	c.SentinelMaster, c.Username, c.Password = q.Get("master"), q.Get("username"), q.Get("password")
	return c, nil
}

// failoverOptions checks the Sentinel fields and turns them into go-redis
// options.
func (c RedisConfig) failoverOptions() (*redis.FailoverOptions, error) {
	var errs []error
	if c.SentinelMaster == "" {
		errs = append(errs, errors.New("the master name is missing (?master= or -redis-sentinel-master)"))
	}
	if len(c.SentinelAddrs) == 0 {
		errs = append(errs, errors.New("no sentinel address (host:port,... or -redis-sentinel-addrs)"))
	}
	for _, a := range c.SentinelAddrs {
		if h, p, err := net.SplitHostPort(a); err != nil || h == "" || p == "" {
			errs = append(errs, fmt.Errorf("sentinel address %q is not host:port", a))
		}
	}
	if c.DB < 0 {
		errs = append(errs, fmt.Errorf("database %d is negative", c.DB))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("redis sentinel: %w", err)
	}
	o := &redis.FailoverOptions{
		MasterName: c.SentinelMaster, SentinelAddrs: c.SentinelAddrs,
		SentinelUsername: c.SentinelUsername, SentinelPassword: c.SentinelPassword,
		Username: c.Username, Password: c.Password, DB: c.DB,
	}
	var single redis.Options
	clientDefaults(&single)
	o.Protocol = single.Protocol
	o.DialTimeout, o.ReadTimeout, o.WriteTimeout = single.DialTimeout, single.ReadTimeout, single.WriteTimeout
	o.MaxRetries, o.DialerRetries, o.DialerRetryTimeout = single.MaxRetries, single.DialerRetries, single.DialerRetryTimeout
	var err error
	if o.TLSConfig, err = c.tlsConfig("sentinel", "rediss-sentinel"); err != nil {
		return nil, err
	}
	return o, nil
}

// tlsConfig is the TLS configuration of the Sentinel or Cluster connections
// c describes (kind and scheme name them in errors); nil without TLS.
func (c RedisConfig) tlsConfig(kind, scheme string) (*tls.Config, error) {
	if !c.TLS {
		if c.TLSFiles != (TLSFiles{}) {
			return nil, fmt.Errorf("redis %s: a CA or client certificate is set but TLS is off (%s:// or -redis-tls)", kind, scheme)
		}
		return nil, nil
	}
	// The server name is each address's host (crypto/tls fills it in per
	// connection).
	return c.TLSFiles.apply(&tls.Config{MinVersion: tls.VersionTLS12})
}

// checkSentinels asks the sentinels for the master's address, so that a
// wrong master name or wrong sentinel credentials fail at start-up with an
// error that says so (go-redis would only report every sentinel as
// unreachable). One sentinel that knows the master is enough.
func checkSentinels(ctx context.Context, o *redis.FailoverOptions) error {
	errs := make([]error, 0, len(o.SentinelAddrs))
	for _, addr := range o.SentinelAddrs {
		err := askSentinel(ctx, o, addr)
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	return fmt.Errorf("redis sentinel: no sentinel gave the address of master %q:\n%w", o.MasterName, errors.Join(errs...))
}

func askSentinel(ctx context.Context, o *redis.FailoverOptions, addr string) error {
	opts := &redis.Options{
		Addr: addr, Username: o.SentinelUsername, Password: o.SentinelPassword, TLSConfig: o.TLSConfig,
		Protocol: 2, DialTimeout: dialTimeout, ReadTimeout: ioTimeout, WriteTimeout: ioTimeout,
		MaxRetries: -1, DialerRetries: 1,
	}
	sc := redis.NewSentinelClient(opts)
	defer sc.Close()
	_, err := sc.GetMasterAddrByName(ctx, o.MasterName).Result()
	switch {
	case err == nil:
		return nil
	case errors.Is(err, redis.Nil):
		known := sentinelMasters(ctx, sc)
		return fmt.Errorf("sentinel %s monitors no master named %q (it monitors: %s)", addr, o.MasterName, cmp.Or(strings.Join(known, ", "), "none"))
	case isAuthError(err):
		return fmt.Errorf("sentinel %s rejected the sentinel credentials (the user information of a redis-sentinel:// URL, or -redis-sentinel-username/-redis-sentinel-password): %w", addr, err)
	default:
		return fmt.Errorf("sentinel %s: %w", addr, err)
	}
}

// sentinelMasters returns the names of the masters a sentinel monitors, for
// error messages; nil when it cannot tell.
func sentinelMasters(ctx context.Context, sc *redis.SentinelClient) []string {
	res, err := sc.Masters(ctx).Result()
	if err != nil {
		return nil
	}
	var names []string
	for _, m := range res {
		// RESP2: each master is a flat list of field, value, ...
		fields, ok := m.([]any)
		for i := 0; ok && i+1 < len(fields); i += 2 {
			if k, _ := fields[i].(string); k == "name" {
				if v, ok := fields[i+1].(string); ok {
					names = append(names, v)
				}
			}
		}
	}
	slices.Sort(names)
	return names
}

// ErrClusterNode is returned by Connect for a single-Redis URL that points
// at a Redis Cluster node.
var ErrClusterNode = errors.New("this is a Redis Cluster node: connect with redis-cluster://host:port[,host:port...] or -redis-cluster-addrs")

// parseClusterURL parses a redis-cluster:// or rediss-cluster:// URL.
func parseClusterURL(rawURL string) (RedisConfig, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return RedisConfig{}, fmt.Errorf("parse redis cluster url: %w", redactErr(err, rawURL))
	}
	c := RedisConfig{TLS: u.Scheme == "rediss-cluster"}
	if u.User != nil {
		c.Username = u.User.Username()
		c.Password, _ = u.User.Password()
	}
	for _, a := range strings.Split(u.Host, ",") {
		if a = strings.TrimSpace(a); a != "" {
			c.ClusterAddrs = append(c.ClusterAddrs, a)
		}
	}
	if p := strings.Trim(u.Path, "/"); p != "" && p != "0" {
		return RedisConfig{}, fmt.Errorf("parse redis cluster url: a Redis Cluster has only database 0, got %q", p)
	}
	if len(u.Query()) > 0 {
		return RedisConfig{}, errors.New("parse redis cluster url: no parameters are accepted")
	}
	return c, nil
}

// clusterOptions checks the Cluster fields and turns them into go-redis
// options.
func (c RedisConfig) clusterOptions() (*redis.ClusterOptions, error) {
	var errs []error
	if len(c.ClusterAddrs) == 0 {
		errs = append(errs, errors.New("no seed node address (host:port,... or -redis-cluster-addrs)"))
	}
	for _, a := range c.ClusterAddrs {
		if h, p, err := net.SplitHostPort(a); err != nil || h == "" || p == "" {
			errs = append(errs, fmt.Errorf("node address %q is not host:port", a))
		}
	}
	if c.DB != 0 {
		errs = append(errs, fmt.Errorf("database %d: a Redis Cluster has only database 0", c.DB))
	}
	if c.SentinelMaster != "" || len(c.SentinelAddrs) > 0 || c.SentinelUsername != "" || c.SentinelPassword != "" {
		errs = append(errs, errors.New("Sentinel settings do not go with a Cluster"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("redis cluster: %w", err)
	}
	var single redis.Options
	clientDefaults(&single)
	o := &redis.ClusterOptions{
		Addrs: c.ClusterAddrs, Username: c.Username, Password: c.Password,
		Protocol:    single.Protocol,
		DialTimeout: single.DialTimeout, ReadTimeout: single.ReadTimeout, WriteTimeout: single.WriteTimeout,
		MaxRetries: single.MaxRetries, DialerRetries: single.DialerRetries, DialerRetryTimeout: single.DialerRetryTimeout,
	}
	var err error
	if o.TLSConfig, err = c.tlsConfig("cluster", "rediss-cluster"); err != nil {
		return nil, err
	}
	return o, nil
}

// clusterStateReload is how old a Cluster client's slot map may get before
// it is read again; an unreachable node or CLUSTERDOWN makes the client read
// it at once (reloadOnFailure). go-redis's default, a minute, kept workers
// dialling a dead master for that long after its replica had taken over.
const clusterStateReload = 5 * time.Second

// newClusterClient opens a Cluster client that follows failovers within
// moments: go-redis reads the slot map again on MOVED and READONLY replies,
// but not when a master stops answering, and the replica that replaces it
// answers nothing for the dead master's connections. The hook sits on every
// node's client, so it also sees the writes the store sends to a queue's
// master directly (Store.writeClient).
func newClusterClient(o *redis.ClusterOptions) *redis.ClusterClient {
	o.ClusterStateReloadInterval = clusterStateReload
	var cc *redis.ClusterClient
	o.NewClient = func(opt *redis.Options) *redis.Client {
		node := redis.NewClient(opt)
		node.AddHook(reloadOnFailure{func() { cc.ReloadState(context.Background()) }})
		return node
	}
	cc = redis.NewClusterClient(o)
	return cc
}

// reloadOnFailure asks its Cluster client to read the slot map again
// (lazily, at most every 200 ms: go-redis's cooldown) after a command or
// pipeline on a node failed because the node could not be reached, the
// Cluster reported itself down, or the slot moved.
type reloadOnFailure struct{ reload func() }

func (h reloadOnFailure) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h reloadOnFailure) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		h.check(err)
		return err
	}
}

func (h reloadOnFailure) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		h.check(err)
		return err
	}
}

func (h reloadOnFailure) check(err error) {
	if err == nil || errors.Is(err, redis.Nil) {
		return
	}
	if IsUnavailable(err) {
		h.reload()
	}
}

// checkCluster fails unless the seed nodes are nodes of a Redis Cluster
// that serves every slot: a plain Redis given as a Cluster, or a Cluster
// with slots unassigned, would fail later on some keys only.
func checkCluster(ctx context.Context, cc *redis.ClusterClient) error {
	info, err := cc.ClusterInfo(ctx).Result()
	if err != nil {
		if isAuthError(err) {
			return fmt.Errorf("redis cluster: the nodes rejected the credentials (the user information of a redis-cluster:// URL, or -redis-username/-redis-password): %w", err)
		}
		if strings.Contains(err.Error(), "cluster support disabled") {
			return errors.New("redis cluster: the seed nodes are not Cluster nodes (cluster support disabled): for one Redis use redis://host:port")
		}
		return fmt.Errorf("redis cluster: %w", err)
	}
	if st := infoField(info, "cluster_state"); st != "ok" {
		return fmt.Errorf("redis cluster: cluster_state is %q, not ok (are all 16384 slots assigned? see CLUSTER INFO)", st)
	}
	// Every node serving slots must answer: go-redis loads the slot map
	// here, so a seed list that reaches only part of the Cluster fails now.
	err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return c.Ping(ctx).Err() })
	if err != nil {
		return fmt.Errorf("redis cluster: a master does not answer: %w", err)
	}
	return nil
}

// checkMode fails when the server is not a plain Redis (or a Sentinel
// master): a Cluster node would answer MOVED to most writes after start-up
// looked fine, and a sentinel does not store data. Servers that hide INFO
// and CLUSTER INFO (some managed services, embedded stores) pass.
func checkMode(ctx context.Context, rdb Client) error {
	info, err := rdb.Info(ctx, "server").Result()
	if err == nil {
		switch mode := infoField(info, "redis_mode"); mode {
		case "cluster":
			return fmt.Errorf("redis: %w (redis_mode:cluster)", ErrClusterNode)
		case "sentinel":
			return errors.New("redis: this is a Redis Sentinel, not a Redis server: use redis-sentinel://host:port,.../DB?master=NAME (or -redis-sentinel-addrs and -redis-sentinel-master)")
		case "", "standalone":
			return nil
		default:
			return fmt.Errorf("redis: unknown redis_mode %q", mode)
		}
	}
	// INFO server is refused: CLUSTER INFO tells a Cluster node apart.
	ci, err := rdb.ClusterInfo(ctx).Result()
	if err == nil && infoField(ci, "cluster_enabled") != "0" && infoField(ci, "cluster_state") != "" {
		return fmt.Errorf("redis: %w (CLUSTER INFO answers)", ErrClusterNode)
	}
	return nil
}

// infoField returns the value of field in an INFO-style "key:value" text.
func infoField(info, field string) string {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return v
		}
	}
	return ""
}

// isAuthError reports whether err is Redis refusing the credentials or
// asking for some.
func isAuthError(err error) bool {
	msg := err.Error()
	for _, p := range []string{"NOAUTH", "WRONGPASS", "ERR invalid password", "ERR AUTH", "invalid username-password pair"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

// redactErr replaces a URL's password in err's text: url.Parse errors quote
// the whole URL.
func redactErr(err error, rawURL string) error {
	u, perr := url.Parse(rawURL)
	if perr == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			return errors.New(strings.ReplaceAll(err.Error(), pw, "xxxxx"))
		}
	}
	if i := strings.Index(rawURL, "@"); i >= 0 {
		return errors.New(strings.ReplaceAll(err.Error(), rawURL[:i], "xxxxx"))
	}
	return err
}
