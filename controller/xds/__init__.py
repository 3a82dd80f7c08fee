"""The controller's xDS half: immutable per-gateway snapshots, the cache that holds them, and the
delta ADS server that streams them to proxies.

    reconcile --snapshot.build--> cache.SnapshotCache.publish --> server.DeltaAds --> proxies

`snapshot` is pure; `cache` is the one place snapshots are swapped; `server` reads the cache
through `cache.SnapshotSource` only; `metrics` counts what the server and cache do.
"""
