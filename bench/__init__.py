"""Benchmarks of the shared RPC runtime and the ID service, driven by h2load.

``make bench`` (``python -m bench``) measures, in one run, a bare ``grpc.aio`` echo server
against the full furima stack, the client-credentials token endpoint and sign-in.
It is never part of ``make test``; see docs/performance.md for method and results.
"""
