"""The current runtime tables, swapped whole, plus what operators need to know about them.

Writers (the file watcher, later the xDS client) compile outside and call `install`; readers
take `store.tables` once per request and keep that reference, so a reload never changes a
request halfway. `status` feeds /config_dump and the reload metrics.
"""

from __future__ import annotations

import dataclasses
import time

from api.proto.agentgw.v1 import resource_pb2 as pb
from dataplane import tables

EMPTY = tables.Tables(binds={}, version="", route_count=0)


@dataclasses.dataclass
class Status:
    version: str = ""
    applied_at: float = 0.0
    successes: int = 0
    failures: int = 0
    last_error: str = ""
    last_error_at: float = 0.0


class Store:
    def __init__(self) -> None:
        self.tables: tables.Tables = EMPTY
        self.resources: list[pb.Resource] = []
        self.status = Status()
        self.ready = False

    def install(self, compiled: tables.Tables, resources: list[pb.Resource]) -> None:
        """Make `compiled` the tables new requests see. One assignment: atomic for readers."""
        self.tables = compiled
        self.resources = resources
        self.status.version = compiled.version
        self.status.applied_at = time.time()
        self.status.successes += 1
        self.ready = True

    def reject(self, error: str) -> None:
        self.status.failures += 1
        self.status.last_error = error
        self.status.last_error_at = time.time()
