"""Server processes the benchmark drives: ``python -m bench._serve {bare,full,id,tns} WORKDIR``.

Each prints one JSON line to stdout once it serves (its port, plus what a client needs),
then runs until SIGTERM. Everything else the process writes (the JSON access log of the
full stack and of the ID service) goes to stderr, which the parent points at a file.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import signal
import sys
from pathlib import Path
from typing import Any

import grpc

from libs.echo import ECHO_SERVICE, EchoServicer, register_echo

ECHO_SCOPE = "testing.echo"
ECHO_AUDIENCE = "furima.testing"
ISSUER = "furima-id"
BENCH_KID = "bench"
TOKEN_TTL_S = 3600


def _announce(info: dict[str, Any]) -> None:
    print(json.dumps(info), flush=True)


async def _wait_for_sigterm() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def serve_bare() -> None:
    """A plain ``grpc.aio`` server, no interceptors, no options: the same echo handler."""
    server = grpc.aio.server()
    register_echo(EchoServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    _announce({"port": port})
    await _wait_for_sigterm()
    await server.stop(0)


async def serve_full() -> None:
    """The echo service on `GrpcServer` with the whole middleware and telemetry, as services run."""
    from libs.auth import DenyList, StaticKeys, TokenVerifier
    from libs.rpc import GrpcServer, ServerConfig
    from libs.telemetry import setup_telemetry
    from libs.testing import Forger, claims

    setup_telemetry(ECHO_AUDIENCE, log_format="json")
    forger = Forger(kid=BENCH_KID)
    keys = StaticKeys({BENCH_KID: forger.key.public_key()})
    verifier = TokenVerifier(ISSUER, ECHO_AUDIENCE, keys, DenyList(max_token_ttl=TOKEN_TTL_S))
    server = GrpcServer(service_name=ECHO_AUDIENCE, config=ServerConfig(port=0), verifier=verifier)
    server.add(register_echo, EchoServicer(), ECHO_SERVICE)
    port = await server.start()
    token = forger.sign(claims(scope=ECHO_SCOPE, ttl=TOKEN_TTL_S, subject="usr_bench"))
    _announce({"port": port, "token": token, "subject": "usr_bench"})
    await _wait_for_sigterm()
    await server.stop(0)


async def serve_id(workdir: Path) -> None:
    """The real ID service on a fresh SQLite database, bootstrapped, with production argon2 parameters."""
    from libs.rpc import ServerConfig, tune_gc_for_serving
    from libs.telemetry import setup_telemetry
    from services.id.bootstrap import DEMO_PASSWORD, DEMO_USERS, bootstrap
    from services.id.config import IdConfig
    from services.id.main import SERVICE_NAME, start_id_service

    setup_telemetry(SERVICE_NAME, log_format="json")
    config = IdConfig(database_url=f"sqlite+aiosqlite:///{workdir / 'id.db'}")
    service = await start_id_service(config, ServerConfig(port=0))
    tune_gc_for_serving()  # as services.id.main does
    try:
        secrets = await bootstrap(service.container, workdir / "dev-credentials.json")
        _announce(
            {
                "port": service.server.port,
                "client_id": "furima-dev",
                "client_secret": secrets["furima-dev"],
                "tns_secret": secrets["svc-tns"],
                "email": DEMO_USERS[0][0],
                "password": DEMO_PASSWORD,
                "argon2": dataclasses.asdict(config.argon2),
            }
        )
        await _wait_for_sigterm()
    finally:
        await service.stop(0)


async def serve_tns(workdir: Path, id_port: int, tns_secret: str) -> None:
    """The real TnS service (rules + model) on a fresh SQLite database, trusting the ID
    service on ``id_port`` and acting on it as ``svc-tns``.
    """
    from libs.rpc import ServerConfig, tune_gc_for_serving
    from libs.telemetry import setup_telemetry
    from services.tns.config import TnsConfig
    from services.tns.main import SERVICE_NAME, start_tns_service

    setup_telemetry(SERVICE_NAME, log_format="json")
    config = TnsConfig(
        database_url=f"sqlite+aiosqlite:///{workdir / 'tns.db'}",
        id_target=f"127.0.0.1:{id_port}",
        client_secret=tns_secret,
        rules_poll_interval=0.0,
    )
    service = await start_tns_service(config, ServerConfig(port=0))
    tune_gc_for_serving()  # as services.tns.main does
    try:
        engine = service.container.book.current
        _announce({"port": service.server.port, "rules": engine.rules.version, "model": engine.model.version})
        await _wait_for_sigterm()
    finally:
        await service.stop(0)


def main(argv: list[str] | None = None) -> None:
    """Serve the named kind until SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m bench._serve")
    parser.add_argument("kind", choices=["bare", "full", "id", "tns"])
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--id-port", type=int, default=0, help="tns: the ID service to trust")
    parser.add_argument("--tns-secret", default="", help="tns: svc-tns's client secret")
    args = parser.parse_args(argv)
    if args.kind == "bare":
        asyncio.run(serve_bare())
    elif args.kind == "full":
        asyncio.run(serve_full())
    elif args.kind == "id":
        asyncio.run(serve_id(args.workdir))
    else:
        asyncio.run(serve_tns(args.workdir, args.id_port, args.tns_secret))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
