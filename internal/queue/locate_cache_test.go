package queue

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

func TestJobQueuesRemembersCanonicalIDs(t *testing.T) {
	t.Parallel()
	id := uuid.Must(uuid.NewV7()).String()
	tests := []struct {
		name   string
		put    string
		get    string
		want   string
		wantOK bool
	}{
		{"same id", id, id, "default", true},
		{"upper-case form is another id", id, strings.ToUpper(id), "", false},
		{"braced form is another id", id, "{" + id + "}", "", false},
		{"id without dashes is another id", id, strings.ReplaceAll(id, "-", ""), "", false},
		{"a non-UUID id is not remembered", "job-1", "job-1", "", false},
		{"an upper-case id is not remembered", strings.ToUpper(id), strings.ToUpper(id), "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var c jobQueues
			c.put(tt.put, "default")
			got, ok := c.get(tt.get)
			require.Equal(t, tt.wantOK, ok)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestJobQueuesGenerations(t *testing.T) {
	t.Parallel()
	var c jobQueues
	ids := make([]string, 2*jobQueuesSize+1)
	for i := range ids {
		ids[i] = uuid.Must(uuid.NewRandom()).String()
		c.put(ids[i], fmt.Sprintf("q%d", i%3))
	}
	// ids[0:size] filled the first generation, ids[size:2size] the second
	// (the first became the previous one), the last one started a third:
	// the first generation is gone.
	_, ok := c.get(ids[0])
	require.False(t, ok, "dropped with its generation")
	q, ok := c.get(ids[jobQueuesSize+5])
	require.True(t, ok, "in the previous generation")
	require.Equal(t, fmt.Sprintf("q%d", (jobQueuesSize+5)%3), q)
	q, ok = c.get(ids[len(ids)-1])
	require.True(t, ok)
	require.Equal(t, fmt.Sprintf("q%d", (len(ids)-1)%3), q)

	c.forget(ids[len(ids)-1])
	_, ok = c.get(ids[len(ids)-1])
	require.False(t, ok, "forgotten")
	require.Len(t, c.names, 3, "queue names are numbered once")
}

func TestJobQueuesBoundsQueueNames(t *testing.T) {
	t.Parallel()
	var c jobQueues
	first := uuid.Must(uuid.NewRandom()).String()
	c.put(first, "q0")
	for i := 1; i < maxQueueNames; i++ {
		c.put(uuid.Must(uuid.NewRandom()).String(), fmt.Sprintf("q%d", i))
	}
	q, ok := c.get(first)
	require.True(t, ok)
	require.Equal(t, "q0", q)
	require.Len(t, c.names, maxQueueNames)

	last := uuid.Must(uuid.NewRandom()).String()
	c.put(last, "one-too-many")
	_, ok = c.get(first)
	require.False(t, ok, "the cache starts again when it would number more queue names")
	q, ok = c.get(last)
	require.True(t, ok)
	require.Equal(t, "one-too-many", q)
	require.Len(t, c.names, 1)
}
