"""Small resource builders shared by the controller's xDS tests."""

from __future__ import annotations

from api.proto.agentgw.v1 import resource_pb2 as pb


def bind(key: str, port: int = 8080) -> pb.Resource:
    return pb.Resource(bind=pb.Bind(key=key, port=port))


def listener(key: str, bind_key: str) -> pb.Resource:
    return pb.Resource(listener=pb.Listener(key=key, bind_key=bind_key, name=key))


def backend(key: str, port: int = 9000) -> pb.Resource:
    return pb.Resource(
        backend=pb.Backend(key=key, name=key, static=pb.StaticBackend(host="127.0.0.1", port=port))
    )


def route(key: str, listener_key: str, backend_key: str, path: str = "/") -> pb.Resource:
    return pb.Resource(
        route=pb.Route(
            key=key,
            listener_key=listener_key,
            name=key,
            matches=[pb.RouteMatch(path=pb.PathMatch(prefix=path))],
            backends=[pb.RouteBackend(ref=pb.BackendRef(backend_key=backend_key), weight=1)],
        )
    )


def gateway(prefix: str, paths: tuple[str, ...] = ("/a", "/b")) -> list[pb.Resource]:
    """A consistent gateway: bind, listener, backend, and one route per path; keys start with `prefix`."""
    out = [bind(f"{prefix}bind"), listener(f"{prefix}listener", f"{prefix}bind"), backend(f"{prefix}backend")]
    for i, path in enumerate(paths):
        out.append(route(f"{prefix}route{i}", f"{prefix}listener", f"{prefix}backend", path))
    return out
