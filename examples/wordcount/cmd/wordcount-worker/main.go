// Command wordcount-worker runs the wordcount job type. It takes the same
// flags and environment as jobforge's own worker (REDIS_URL, -queues,
// -concurrency, …).
package main

import (
	"example.com/wordcount"

	"github.com/jobforge/jobforge/worker"
)

func main() { worker.Main(wordcount.Type) }
