package api

import (
	"encoding/json"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	jobforgev1 "github.com/jobforge/jobforge/api/gen/jobforge/v1"
	"github.com/jobforge/jobforge/internal/queue"
)

// toProto converts a stored record to the API's Job.
func toProto(r *queue.Record) (*jobforgev1.Job, error) {
	j := &jobforgev1.Job{
		Name:         "jobs/" + r.ID,
		Type:         r.Type,
		Queue:        r.Queue,
		State:        jobforgev1.Job_State(jobforgev1.Job_State_value[string(r.State)]),
		Attempts:     int32(r.Attempts),
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
	if len(r.Payload) > 0 {
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
	if len(r.Result) > 0 {
		var v any
		if err := json.Unmarshal(r.Result, &v); err != nil {
			return nil, fmt.Errorf("job %s: decode result: %w", r.ID, err)
		}
		res, err := structpb.NewValue(v)
		if err != nil {
			return nil, fmt.Errorf("job %s: convert result: %w", r.ID, err)
		}
		j.Result = res
	}
	if e := r.Error; e != nil {
		j.Error = &jobforgev1.JobError{
			Message:   e.Message,
			Attempt:   int32(e.Attempt),
			Permanent: e.Permanent,
			Time:      timeProto(e.Time),
		}
	}
	return j, nil
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
