package queue

import (
	"fmt"

	"github.com/alicebob/miniredis/v2"
)

// Embedded is an in-memory, Redis-compatible server for development
// (`make run` without REDIS_URL). It is not durable and does not expire keys
// on its own; never use it in production.
type Embedded struct{ m *miniredis.Miniredis }

// StartEmbedded starts an embedded server on a free loopback port.
func StartEmbedded() (*Embedded, error) {
	m := miniredis.NewMiniRedis()
	if err := m.Start(); err != nil {
		return nil, fmt.Errorf("start embedded redis: %w", err)
	}
	return &Embedded{m: m}, nil
}

// URL is the redis:// URL of the server.
func (e *Embedded) URL() string { return "redis://" + e.m.Addr() }

// Close stops the server and discards its data.
func (e *Embedded) Close() { e.m.Close() }
