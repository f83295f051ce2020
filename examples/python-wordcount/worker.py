"""A jobforge worker in Python: runs the "pywordcount" job type over the
worker protocol (jobforge.v1.WorkerService, api/proto/jobforge/v1/worker_service.proto).

Generate the stubs, then run it against a worker started with -worker-protocol-addr:

    python3 -m grpc_tools.protoc -I ../../api/proto --python_out=. --grpc_python_out=. \
        jobforge/v1/worker_service.proto
    JF_WORKER_ADDR=localhost:9095 JF_KEY=<key with the worker scope> python3 worker.py

One stream carries everything: Hello (the types this worker runs and how many
jobs it may hold), heartbeats, assignments, progress, outcomes and cancellations.
"""

import json
import os
import queue
import signal
import sys
import threading
import time

import grpc
from google.protobuf import struct_pb2

from jobforge.v1 import worker_service_pb2 as pb
from jobforge.v1 import worker_service_pb2_grpc as pb_grpc

# The payload's JSON Schema: the API validates submissions against it.
SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["text"],
    "properties": {
        "text": {"type": "string", "minLength": 1, "maxLength": 100000},
        "pause_ms": {"type": "integer", "minimum": 0, "maximum": 10000},
    },
}


def log(msg, **fields):
    print(json.dumps({"msg": msg, **fields}), file=sys.stderr, flush=True)


def struct(d):
    s = struct_pb2.Struct()
    s.update(d)
    return s


class Worker:
    def __init__(self, addr, key, max_jobs=4):
        self.channel = grpc.insecure_channel(addr)
        self.stub = pb_grpc.WorkerServiceStub(self.channel)
        self.key = key
        self.max_jobs = max_jobs
        self.outbox = queue.Queue()  # messages to the server, in order
        self.cancelled = {}  # job id -> threading.Event, for running jobs
        self.lock = threading.Lock()

    def send(self, **message):
        self.outbox.put(pb.WorkRequest(**message))

    def requests(self):
        while True:
            yield self.outbox.get()

    def run(self):
        self.send(hello=pb.WorkRequest.Hello(
            name="pywordcount",
            max_jobs=self.max_jobs,
            job_types=[pb.JobTypeDefinition(
                name="pywordcount",
                description="Counts the words of a text, in Python, reporting progress.",
                queue="python",  # its own queue: every worker reading a queue should run its types
                max_attempts=3,
                payload_schema=struct(SCHEMA),
                example_payload=struct({"text": "the quick brown fox"}),
            )],
        ))
        responses = self.stub.Work(self.requests(), metadata=[("authorization", "Bearer " + self.key)])
        # SIGTERM closes the stream: the server gives running jobs back to their queue.
        signal.signal(signal.SIGTERM, lambda *_: responses.cancel())
        try:
            self.serve(responses)
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.CANCELLED:
                raise
        log("stopped")

    def serve(self, responses):
        for response in responses:
            kind = response.WhichOneof("message")
            if kind == "welcome":
                interval = response.welcome.heartbeat_interval.ToTimedelta().total_seconds()
                threading.Thread(target=self.heartbeat, args=(interval,), daemon=True).start()
                log("connected", worker_id=response.welcome.worker_id)
            elif kind == "assignment":
                a = response.assignment
                with self.lock:
                    self.cancelled[a.job_id] = threading.Event()
                threading.Thread(target=self.work, args=(a,), daemon=True).start()
            elif kind == "cancel":
                with self.lock:
                    event = self.cancelled.get(response.cancel.job_id)
                if event:
                    event.set()
            elif kind == "outcome_ack" and not response.outcome_ack.accepted:
                log("outcome refused", job_id=response.outcome_ack.job_id, reason=response.outcome_ack.reason)

    def heartbeat(self, interval):
        while True:
            self.send(heartbeat=pb.WorkRequest.Heartbeat())
            time.sleep(interval / 2)

    def work(self, a):
        """Runs one attempt: counts words chunk by chunk, reporting progress,
        and stops as soon as the job is cancelled."""
        log("job started", job_id=a.job_id, attempt=a.attempt)
        stop = self.cancelled[a.job_id]
        text = a.payload["text"]
        pause = a.payload["pause_ms"] / 1000 if "pause_ms" in a.payload else 0
        chunk = 1000
        for start in range(0, len(text), chunk):
            done = min(start + chunk, len(text))
            self.send(progress=pb.WorkRequest.JobProgress(
                job_id=a.job_id, attempt=a.attempt, percent=done * 100 // len(text),
                message="%d of %d characters" % (done, len(text))))
            if stop.wait(pause):
                log("job cancelled", job_id=a.job_id)
                return  # its outcome is no longer wanted
        result = struct_pb2.Value()
        result.struct_value.update({"words": len(text.split())})
        self.send(outcome=pb.WorkRequest.Outcome(job_id=a.job_id, attempt=a.attempt, result=result))
        with self.lock:
            self.cancelled.pop(a.job_id, None)
        log("job done", job_id=a.job_id)


if __name__ == "__main__":
    Worker(os.environ.get("JF_WORKER_ADDR", "localhost:9095"), os.environ["JF_KEY"]).run()
