"""A no-op Python worker over the worker protocol (jobforge.v1.WorkerService),
for loadgen's B9: it declares the job type "noop" (queue "remote"), may hold
MAX_JOBS jobs at once, and answers every assignment at once with the result a
no-op simulate job stores. The stream handling is examples/python-wordcount's,
without a thread per job.

    python3 noop_worker.py ADDR MAX_JOBS    # JF_KEY: a key with the worker scope

loadgen writes this file next to the stubs it generates from api/proto.
"""

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


def main(addr, max_jobs):
    outbox = queue.Queue()  # messages to the server, in order

    def requests():
        while True:
            yield outbox.get()

    def heartbeat(interval):
        while True:
            outbox.put(pb.WorkRequest(heartbeat=pb.WorkRequest.Heartbeat()))
            time.sleep(interval / 2)

    schema = struct_pb2.Struct()
    schema.update({"type": "object"})
    outbox.put(pb.WorkRequest(hello=pb.WorkRequest.Hello(
        name="pynoop", max_jobs=max_jobs,
        job_types=[pb.JobTypeDefinition(name="noop", queue="remote", payload_schema=schema)],
    )))
    stub = pb_grpc.WorkerServiceStub(grpc.insecure_channel(addr))
    responses = stub.Work(requests(), metadata=[("authorization", "Bearer " + os.environ["JF_KEY"])])
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: responses.cancel())
    answered = 0
    try:
        for r in responses:
            kind = r.WhichOneof("message")
            if kind == "assignment":
                a = r.assignment
                result = struct_pb2.Value()
                result.struct_value.update({"attempt": a.attempt})
                outbox.put(pb.WorkRequest(outcome=pb.WorkRequest.Outcome(
                    job_id=a.job_id, attempt=a.attempt, result=result)))
                answered += 1
            elif kind == "welcome":
                interval = r.welcome.heartbeat_interval.ToTimedelta().total_seconds()
                threading.Thread(target=heartbeat, args=(interval,), daemon=True).start()
                print("connected as", r.welcome.worker_id, file=sys.stderr, flush=True)
            elif kind == "outcome_ack" and not r.outcome_ack.accepted:
                print("outcome refused:", r.outcome_ack.reason, file=sys.stderr, flush=True)
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.CANCELLED:
            raise
    print("stopped after answering", answered, "assignments", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
