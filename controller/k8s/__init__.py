"""The Kubernetes side of the controller: kopf watches, the object store, the API client, status.

    store     raw bodies of watched objects, indexed by kind and namespace/name (no logic)
    kinds     the kinds we watch: group, version, plural, whether they carry a status we write
    client    a small aiohttp client for the API server (kubeconfig or service account)
    status    merging our status into the live one (pure) and writing it (status subresource)
    operator  kopf settings and event handlers that feed the store
    tokenreview  xDS authorization: a proxy's ServiceAccount token, checked by TokenReview
    leader    Lease-based leader election: only the leader writes statuses and deploys

controller.reconcile reads the store and calls the status writer; controller.__main__ wires it up.
"""
