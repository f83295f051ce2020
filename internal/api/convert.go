package api

import (
	"encoding/json"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	jobforgev1 "github.com/jobforge/jobforge/api/gen/jobforge/v1"
	"github.com/jobforge/jobforge/internal/store"
)

// toProto converts a stored record to the API's Job.
func toProto(r *store.Record) (*jobforgev1.Job, error) {
	return toProtoPayload(r, nil)
}

// toProtoPayload is toProto with the payload given as the Struct it was
// created from (nil: decoded from the record's JSON, as toProto does). A
// batch's response takes each new job's payload from its request rather
// than decoding the JSON the request was encoded to, which cost each item
// a map, a Struct and their values.
func toProtoPayload(r *store.Record, payload *structpb.Struct) (*jobforgev1.Job, error) {
	j := &jobforgev1.Job{
		Name:         "jobs/" + r.ID,
		Type:         r.Type,
		Queue:        r.Queue,
		State:        jobforgev1.Job_State(jobforgev1.Job_State_value[string(r.State)]),
		Attempts:     int32(r.Attempts),
		LostAttempts: int32(r.LostAttempts),
		MaxAttempts:  int32(r.MaxAttempts),
		Timeout:      durationProto(r.Timeout),
		Labels:       r.Labels,
		CreateTime:   timeProto(r.CreateTime),
		ScheduleTime: timeProto(r.ScheduleTime),
		StartTime:    timeProto(r.StartTime),
		EndTime:      timeProto(r.EndTime),
		UpdateTime:   timeProto(r.UpdateTime),
		ExpireTime:   timeProto(r.ExpireTime),
	}
	if payload != nil {
		j.Payload = payload
	} else if len(r.Payload) > 0 {
		p, err := jsonStruct(r.Payload)
		if err != nil {
			return nil, fmt.Errorf("job %s: decode payload: %w", r.ID, err)
		}
		j.Payload = p
	}
	if !r.Progress.UpdateTime.IsZero() {
		j.Progress = &jobforgev1.Progress{
			Percent:    int32(r.Progress.Percent),
			Message:    r.Progress.Message,
			UpdateTime: timeProto(r.Progress.UpdateTime),
		}
	}
	res, err := resultProto(r.Result)
	if err != nil {
		return nil, fmt.Errorf("job %s: decode result: %w", r.ID, err)
	}
	j.Result = res
	j.Error = errorProto(r.Error)
	for i := range r.AttemptErrors {
		j.AttemptErrors = append(j.AttemptErrors, errorProto(&r.AttemptErrors[i]))
	}
	j.IdempotencyKey = r.IdempotencyKey
	if p := r.RetryPolicy; !p.IsZero() {
		j.RetryPolicy = &jobforgev1.RetryPolicy{
			InitialBackoff: durationProto(p.Initial),
			MaxBackoff:     durationProto(p.Max),
			Multiplier:     p.Multiplier,
			Jitter:         p.Jitter,
		}
	}
	if c := r.Cancellation; c != nil {
		j.Cancellation = &jobforgev1.Cancellation{Reason: c.Reason, RequestedBy: c.RequestedBy, Time: timeProto(c.Time)}
	}
	return j, nil
}

func errorProto(e *store.AttemptError) *jobforgev1.JobError {
	if e == nil {
		return nil
	}
	return &jobforgev1.JobError{
		Message:   e.Message,
		Attempt:   int32(e.Attempt),
		Permanent: e.Permanent,
		Time:      timeProto(e.Time),
		Lost:      e.Lost,
		Reason:    e.Reason,
	}
}

func resultProto(raw json.RawMessage) (*structpb.Value, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, err
	}
	return structpb.NewValue(v)
}

// eventProto converts a stored event to the API's JobEvent.
func eventProto(ev store.Event) (*jobforgev1.JobEvent, error) {
	out := &jobforgev1.JobEvent{
		Id:      ev.ID,
		Time:    timeProto(ev.Time),
		State:   jobforgev1.Job_State(jobforgev1.Job_State_value[string(ev.State)]),
		Attempt: int32(ev.Attempt),
		Error:   errorProto(ev.Error),
	}
	switch ev.Kind {
	case store.EventSnapshot:
		out.Kind = jobforgev1.JobEvent_SNAPSHOT
		j, err := toProto(ev.Snapshot)
		if err != nil {
			return nil, err
		}
		out.Job = j
	case store.EventProgress:
		out.Kind = jobforgev1.JobEvent_PROGRESS
		out.Progress = &jobforgev1.Progress{
			Percent: int32(ev.Progress.Percent), Message: ev.Progress.Message, UpdateTime: timeProto(ev.Progress.UpdateTime),
		}
	default:
		out.Kind = jobforgev1.JobEvent_STATE_CHANGED
	}
	res, err := resultProto(ev.Result)
	if err != nil {
		return nil, fmt.Errorf("event %s: decode result: %w", ev.ID, err)
	}
	out.Result = res
	return out, nil
}

func timeProto(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func durationProto(d time.Duration) *durationpb.Duration {
	if d == 0 {
		return nil
	}
	return durationpb.New(d)
}
