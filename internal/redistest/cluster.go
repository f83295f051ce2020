package redistest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jobforge/jobforge/internal/freeport"
)

// ClusterOptions configures NewCluster.
type ClusterOptions struct {
	// Masters is the number of master nodes (3 if 0); the slots are spread
	// over them evenly.
	Masters int
	// Replicas is the number of replicas of each master (0: none).
	Replicas int
	// Password is every node's requirepass (and masterauth); empty for
	// none.
	Password string
	// Durable makes every node keep an append-only file (see Durable).
	Durable bool
}

// Cluster is a Redis Cluster of real redis-server processes on loopback.
type Cluster struct {
	Nodes    []*Server
	password string
}

// NewCluster starts a Redis Cluster (redis-server --cluster-enabled yes per
// node, joined with redis-cli --cluster create) on free loopback ports and
// waits until it serves every slot and every replica is in sync; the nodes
// are stopped when the test ends. Nodes lists the masters first.
func NewCluster(tb testing.TB, opts ClusterOptions) *Cluster {
	tb.Helper()
	if testing.Short() {
		tb.Skip("needs redis-server; skipped in -short mode")
	}
	if _, err := exec.LookPath("redis-cli"); err != nil {
		tb.Fatalf("redistest: redis-cli not found on PATH: run `make deps` (Debian package redis-tools)")
	}
	n := opts.Masters
	if n == 0 {
		n = 3
	}
	c := &Cluster{password: opts.Password}
	create := []string{"--cluster", "create"}
	for range n * (1 + opts.Replicas) {
		bus, err := freeport.Loopback()
		if err != nil {
			tb.Fatalf("redistest: %v", err)
		}
		// The bus port is given: the default, port + 10000, may be taken
		// or beyond 65535 for a port of the ephemeral range.
		args := []string{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-port", strconv.Itoa(bus), "--cluster-node-timeout", "2000"}
		if opts.Password != "" {
			args = append(args, "--requirepass", opts.Password, "--masterauth", opts.Password)
		}
		serverOpts := []ServerOption{Args(args...)}
		if opts.Durable {
			serverOpts = append(serverOpts, Durable())
		}
		s := NewServer(tb, serverOpts...)
		c.Nodes = append(c.Nodes, s)
		create = append(create, s.Addr())
	}
	create = append(create, "--cluster-replicas", strconv.Itoa(opts.Replicas), "--cluster-yes")
	if opts.Password != "" {
		create = append(create, "-a", opts.Password, "--no-auth-warning")
	}
	if out, err := exec.Command("redis-cli", create...).CombinedOutput(); err != nil {
		tb.Fatalf("redistest: redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, s := range c.Nodes {
		Eventually(tb, 20*time.Second, func() bool {
			info, err := c.command(s.Addr(), "CLUSTER", "INFO")
			return err == nil && strings.Contains(info, "cluster_state:ok")
		}, "node %s: the cluster did not reach state ok", s.Addr())
	}
	if opts.Replicas > 0 {
		for _, s := range c.Nodes {
			Eventually(tb, 20*time.Second, func() bool {
				info, err := c.command(s.Addr(), "INFO", "replication")
				return err == nil && (strings.Contains(info, "role:master") || strings.Contains(info, "master_link_status:up"))
			}, "node %s: replica not in sync", s.Addr())
		}
	}
	return c
}

// Addrs are the nodes' host:port addresses.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, s := range c.Nodes {
		out[i] = s.Addr()
	}
	return out
}

// URL is the redis-cluster:// URL that lists every node.
func (c *Cluster) URL() string {
	auth := ""
	if c.password != "" {
		auth = ":" + c.password + "@"
	}
	return "redis-cluster://" + auth + strings.Join(c.Addrs(), ",")
}

// command sends one command to a node over a raw connection and returns
// its reply (a bulk string's text, or the error line).
func (c *Cluster) command(addr string, args ...string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	r := bufio.NewReader(conn)
	send := func(args ...string) (string, error) {
		var b strings.Builder
		fmt.Fprintf(&b, "*%d\r\n", len(args))
		for _, a := range args {
			fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
		}
		if _, err := conn.Write([]byte(b.String())); err != nil {
			return "", err
		}
		line, err := r.ReadString('\n')
		if err != nil {
			return "", err
		}
		switch line[0] {
		case '-':
			return "", fmt.Errorf("%s", strings.TrimSpace(line[1:]))
		case '$':
			size, err := strconv.Atoi(strings.TrimSpace(line[1:]))
			if err != nil || size < 0 {
				return "", err
			}
			buf := make([]byte, size+2)
			if _, err := io.ReadFull(r, buf); err != nil {
				return "", err
			}
			return string(buf[:size]), nil
		default:
			return strings.TrimSpace(line[1:]), nil
		}
	}
	if c.password != "" {
		if _, err := send("AUTH", c.password); err != nil {
			return "", err
		}
	}
	return send(args...)
}

// Node returns the node listening on addr, or nil.
func (c *Cluster) Node(addr string) *Server {
	for _, s := range c.Nodes {
		if s.Addr() == addr {
			return s
		}
	}
	return nil
}

// clusterNode is one line of CLUSTER NODES.
type clusterNode struct{ id, addr, flags, master string }

// view returns the Cluster's nodes as the node at via sees them.
func (c *Cluster) view(via string) ([]clusterNode, error) {
	text, err := c.command(via, "CLUSTER", "NODES")
	if err != nil {
		return nil, err
	}
	var out []clusterNode
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		addr, _, _ := strings.Cut(f[1], "@")
		out = append(out, clusterNode{id: f[0], addr: addr, flags: f[2], master: f[3]})
	}
	return out, nil
}

// ReplicasOf returns the addresses of the replicas of the master at addr,
// as that master sees them.
func (c *Cluster) ReplicasOf(addr string) ([]string, error) {
	nodes, err := c.view(addr)
	if err != nil {
		return nil, err
	}
	var id string
	for _, n := range nodes {
		if n.addr == addr {
			id = n.id
		}
	}
	var out []string
	for _, n := range nodes {
		if id != "" && n.master == id {
			out = append(out, n.addr)
		}
	}
	return out, nil
}

// IsMaster reports whether the node at via sees the node at addr as a
// master.
func (c *Cluster) IsMaster(via, addr string) bool {
	nodes, err := c.view(via)
	for _, n := range nodes {
		if err == nil && n.addr == addr {
			return strings.Contains(n.flags, "master")
		}
	}
	return false
}
