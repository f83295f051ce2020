package api

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"

	jobforgev1 "github.com/jobforge/jobforge/api/gen/jobforge/v1"
	"github.com/jobforge/jobforge/internal/store"
)

// reasonQueueNotFound is the ErrorInfo reason of a queue that is not
// configured. Stable: clients may switch on it.
const reasonQueueNotFound = "QUEUE_NOT_FOUND"

// QueueService implements jobforgev1.QueueServiceServer.
type QueueService struct {
	jobforgev1.UnimplementedQueueServiceServer

	store  store.QueueStore
	queues []string // sorted
	log    *slog.Logger
}

// NewQueueService returns the QueueService implementation. queues are the
// configured queue names: they are listed even before any job used them,
// and only they can be paused or resumed.
func NewQueueService(store store.QueueStore, queues []string, log *slog.Logger) *QueueService {
	q := slices.Clone(queues)
	slices.Sort(q)
	return &QueueService{store: store, queues: slices.Compact(q), log: log}
}

// ListQueues implements QueueService.ListQueues.
func (s *QueueService) ListQueues(ctx context.Context, _ *jobforgev1.ListQueuesRequest) (*jobforgev1.ListQueuesResponse, error) {
	infos, err := s.store.Queues(ctx, s.queues)
	if err != nil {
		return nil, fmt.Errorf("list queues: %w", err)
	}
	resp := &jobforgev1.ListQueuesResponse{Queues: make([]*jobforgev1.Queue, 0, len(infos))}
	for _, qi := range infos {
		resp.Queues = append(resp.Queues, queueProto(qi))
	}
	return resp, nil
}

// PauseQueue implements QueueService.PauseQueue.
func (s *QueueService) PauseQueue(ctx context.Context, req *jobforgev1.PauseQueueRequest) (*jobforgev1.Queue, error) {
	return s.setPaused(ctx, req.GetName(), true)
}

// ResumeQueue implements QueueService.ResumeQueue.
func (s *QueueService) ResumeQueue(ctx context.Context, req *jobforgev1.ResumeQueueRequest) (*jobforgev1.Queue, error) {
	return s.setPaused(ctx, req.GetName(), false)
}

func (s *QueueService) setPaused(ctx context.Context, name string, pause bool) (*jobforgev1.Queue, error) {
	q := strings.TrimPrefix(name, "queues/")
	if _, ok := slices.BinarySearch(s.queues, q); !ok {
		return nil, withDetails(codes.NotFound,
			fmt.Sprintf("queue %q not found; configured queues: %s", q, strings.Join(s.queues, ", ")),
			&errdetails.ErrorInfo{Reason: reasonQueueNotFound, Domain: errorDomain},
			&errdetails.ResourceInfo{ResourceType: "jobforge.dev/Queue", ResourceName: name})
	}
	op, err := "resumed", error(nil)
	if pause {
		op, err = "paused", s.store.PauseQueue(ctx, q)
	} else {
		err = s.store.ResumeQueue(ctx, q)
	}
	if err != nil {
		return nil, err
	}
	audit(ctx, s.log, "audit: queue "+op, slog.String("queue", q))
	infos, err := s.store.Queues(ctx, []string{q})
	if err != nil {
		return nil, fmt.Errorf("read queue: %w", err)
	}
	return queueProto(infos[0]), nil
}

// ListWorkers implements QueueService.ListWorkers.
func (s *QueueService) ListWorkers(ctx context.Context, _ *jobforgev1.ListWorkersRequest) (*jobforgev1.ListWorkersResponse, error) {
	ws, err := s.store.Workers(ctx)
	if err != nil {
		return nil, err
	}
	resp := &jobforgev1.ListWorkersResponse{Workers: make([]*jobforgev1.Worker, 0, len(ws))}
	for _, w := range ws {
		queues := make(map[string]int32, len(w.Queues))
		for q, weight := range w.Queues {
			queues[q] = int32(weight)
		}
		resp.Workers = append(resp.Workers, &jobforgev1.Worker{
			Host:        w.Host,
			Pid:         int32(w.PID),
			Queues:      queues,
			Concurrency: int32(w.Concurrency),
			Busy:        int32(w.Busy),
			StartTime:   timeProto(w.Started),
			Status:      w.Status,
			Id:          w.ID,
		})
	}
	// One order for the same workers: by host, process, then the pool's
	// queues (asynq lists servers in no particular order).
	slices.SortFunc(resp.Workers, func(a, b *jobforgev1.Worker) int {
		return cmp.Or(cmp.Compare(a.Host, b.Host), cmp.Compare(a.Pid, b.Pid),
			cmp.Compare(strings.Join(slices.Sorted(maps.Keys(a.Queues)), ","), strings.Join(slices.Sorted(maps.Keys(b.Queues)), ",")),
			cmp.Compare(a.Id, b.Id))
	})
	return resp, nil
}

func queueProto(qi store.QueueInfo) *jobforgev1.Queue {
	return &jobforgev1.Queue{
		Name:           "queues/" + qi.Name,
		Pending:        int64(qi.Pending),
		Active:         int64(qi.Active),
		Scheduled:      int64(qi.Scheduled),
		Retry:          int64(qi.Retry),
		Archived:       int64(qi.Archived),
		Latency:        durationpb.New(qi.Latency), // 0s rather than absent: an empty queue has no latency,
		Paused:         qi.Paused,
		MemoryBytes:    qi.MemoryBytes,
		ProcessedToday: int64(qi.ProcessedToday),
		FailedToday:    int64(qi.FailedToday),
	}
}
