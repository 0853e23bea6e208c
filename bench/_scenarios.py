"""The benchmarks: runtime overhead (bare vs full echo), client-credentials tokens, sign-ins,
and TnS moderation decisions.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import grpc
from furima.id.v1 import oauth_service_pb2, oauth_service_pb2_grpc, user_service_pb2, user_service_pb2_grpc
from furima.testing.v1 import echo_service_pb2, echo_service_pb2_grpc
from furima.tns.v1 import content_pb2, moderation_service_pb2, moderation_service_pb2_grpc
from furima.types.v1 import money_pb2

from bench import _h2load
from bench._h2load import BenchError, Load, Result, combine, grpc_frame
from bench._procs import ServerProcess

ECHO_METHOD = "/furima.testing.v1.EchoService/Echo"
TOKEN_METHOD = "/furima.id.v1.OAuthService/Token"  # noqa: S105 - a method name, not a secret
SIGNIN_METHOD = "/furima.id.v1.UserService/SignIn"
MODERATE_METHOD = "/furima.tns.v1.ModerationService/ModerateContent"
MODERATION_RATE = 500
"""The issue's latency target is p99 at this offered rate."""
# Realistic texts: a clean listing (the common case, ALLOW) and a message with a phone
# number (off-platform contact: flagged, and with the shipped rules sent to review).
CLEAN_LISTING = (
    "ナイキ エアマックス90 27.5cm 美品",
    "2年前に購入しましたが、数回しか履いていません。目立つ汚れや傷はありません。"
    "箱は処分してしまったので本体のみの発送になります。ペット・喫煙者なしの環境で保管していました。"
    "Nike Air Max 90, size 27.5cm, worn a few times, no box. Ships within 2 days. 気になる点があればコメントください。",
)
CONTACT_MESSAGE = "ご購入ありがとうございます!詳しくはこちらに連絡ください 090-1234-5678 よろしくお願いします。"
GRPC_HEADERS = {"content-type": "application/grpc", "te": "trailers"}
FIXED_RATE_SHARE = 0.4
"""The fixed-rate runs offer this share of the bare server's measured maximum to both servers."""


class Plan(NamedTuple):
    """How many requests each run sends, at which concurrency."""

    echo_warmup: Load = Load(5_000, 8, 16)
    echo: Load = Load(50_000, 8, 16)
    echo_rounds: int = 5
    fixed_rate_connections: int = 4
    fixed_rate_seconds: int = 5
    token_warmup: Load = Load(500, 8, 4)
    token: Load = Load(5_000, 8, 4)
    signin_warmup: Load = Load(4, 2, 1)
    # One account: at most two sign-ins in flight, as a person would (more in flight
    # counts against the account's throttle by design).
    signin: Load = Load(40, 1, 2)
    moderation_warmup: Load = Load(2_000, 8, 16)
    moderation: Load = Load(20_000, 8, 16)
    moderation_fixed_seconds: int = 10


QUICK = Plan(
    echo_warmup=Load(1_000, 8, 16),
    echo=Load(6_000, 8, 16),
    fixed_rate_seconds=2,
    token_warmup=Load(100, 8, 4),
    token=Load(1_000, 8, 4),
    signin_warmup=Load(2, 2, 1),
    signin=Load(10, 1, 2),
    moderation_warmup=Load(500, 8, 16),
    moderation=Load(3_000, 8, 16),
    moderation_fixed_seconds=3,
)


@dataclass
class Outcome:
    """Everything one bench run measured and checked."""

    results: dict[str, Result] = field(default_factory=dict)
    checks: list[str] = field(default_factory=list)
    fixed_rate: int = 0
    argon2: dict[str, int] = field(default_factory=dict)
    access_log: str = ""
    round_ratios: list[float] = field(default_factory=list)
    """full/bare req/s of each alternating round."""
    background: str = ""
    secrets: list[str] = field(default_factory=list)
    """Bearer tokens used on h2load command lines, kept out of the docs."""

    def check(self, label: str, ok: bool, detail: str) -> None:
        """Record a verification; a failed one stops the bench (its numbers would mean nothing)."""
        self.checks.append(f"{label}: {detail}")
        print(f"  check  {label}: {detail}", flush=True)
        if not ok:
            raise BenchError(f"{label} failed: {detail}")


class Runner:
    """Runs the plan against fresh server processes under ``workdir``."""

    def __init__(self, h2load: str, workdir: Path, plan: Plan) -> None:
        self.h2load = h2load
        self.workdir = workdir
        self.plan = plan
        self.outcome = Outcome()

    def _body(self, name: str, message: object) -> Path:
        path = self.workdir / f"{name}.bin"
        path.write_bytes(grpc_frame(message))  # type: ignore[arg-type]
        return path

    def _h2load(
        self, label: str, server: ServerProcess, method: str, body: Path, headers: dict[str, str], load: Load
    ) -> Result:
        url = f"http://127.0.0.1:{server.port}{method}"
        log_file = self.workdir / "h2load.log"
        result = _h2load.run(self.h2load, label, url, body, {**GRPC_HEADERS, **headers}, load, log_file)
        if not result.ok:
            raise BenchError(f"{label}: {result.failed} failed, {result.errored} errored of {result.requests}")
        return result

    def _measure(
        self,
        key: str,
        label: str,
        server: ServerProcess,
        method: str,
        body: Path,
        headers: dict[str, str],
        load: Load,
        *,
        logged: bool,
        record: bool = True,
    ) -> Result:
        """One measured h2load run; with ``logged``, the access log must show every call OK."""
        server.mark_log()
        result = self._h2load(label, server, method, body, headers, load)
        if record:
            self.outcome.results[key] = result
        print(
            f"  {label}: {result.req_per_s:,.0f} req/s, p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms",
            flush=True,
        )
        if logged:
            codes = server.access_codes(method)
            self.outcome.check(
                f"{key} gRPC status", codes == {"OK": result.requests}, f"access log shows {dict(codes)}"
            )
        return result

    def runtime_overhead(self) -> None:
        """Bare ``grpc.aio`` vs the full furima stack serving the same echo handler.

        Both processes are up, but only one is loaded at a time: the rounds alternate
        bare, full, bare, full... so background load that comes and goes (a shared CI
        box) lands on both sides instead of skewing the ratio.
        """
        plan = self.plan
        body = self._body("echo", echo_service_pb2.EchoRequest(message="furima bench"))
        print("[1/4] RPC runtime overhead: bare grpc.aio vs full furima stack, alternating rounds", flush=True)
        with (
            ServerProcess("bare", self.workdir / "bare") as bare,
            ServerProcess("full", self.workdir / "full") as full,
        ):
            token, subject = full.info["token"], full.info["subject"]
            auth = {"authorization": f"Bearer {token}"}
            self.outcome.secrets.append(token)
            reply = asyncio.run(_echo(bare.port, None))
            self.outcome.check("bare Echo", reply.message == "furima bench", f"stub call OK, message={reply.message!r}")
            reply = asyncio.run(_echo(full.port, token))
            self.outcome.check(
                "full Echo", reply.subject == subject, f"stub call OK, authenticated as {reply.subject!r}"
            )
            self._h2load("bare warm-up", bare, ECHO_METHOD, body, {}, plan.echo_warmup)
            self._h2load("full warm-up", full, ECHO_METHOD, body, auth, plan.echo_warmup)
            per_round = Load(plan.echo.requests // plan.echo_rounds, plan.echo.connections, plan.echo.streams)
            bare_rounds: list[Result] = []
            full_rounds: list[Result] = []
            for n in range(1, plan.echo_rounds + 1):
                bare_rounds.append(
                    self._measure(
                        f"echo_bare_{n}",
                        f"bare #{n}",
                        bare,
                        ECHO_METHOD,
                        body,
                        {},
                        per_round,
                        logged=False,
                        record=False,
                    )
                )
                full_rounds.append(
                    self._measure(
                        f"echo_full_{n}",
                        f"full #{n}",
                        full,
                        ECHO_METHOD,
                        body,
                        auth,
                        per_round,
                        logged=True,
                        record=False,
                    )
                )
            self.outcome.round_ratios = [
                f.req_per_s / b.req_per_s for b, f in zip(bare_rounds, full_rounds, strict=True)
            ]
            bare_all = self.outcome.results["echo_bare"] = combine("bare", bare_rounds)
            self.outcome.results["echo_full"] = combine("full", full_rounds)
            rate = max(100, int(bare_all.req_per_s * FIXED_RATE_SHARE) // 100 * 100)
            self.outcome.fixed_rate = rate
            fixed = self._fixed_rate_load(rate)
            self._measure("echo_bare_fixed", f"bare @ {rate}/s", bare, ECHO_METHOD, body, {}, fixed, logged=False)
            self._measure("echo_full_fixed", f"full @ {rate}/s", full, ECHO_METHOD, body, auth, fixed, logged=True)
            size = full.log_path.stat().st_size
            self.outcome.access_log = (
                f"full stack: JSON access log written to a file ({full.log_lines():,} lines, "
                f"{size / 1e6:.1f} MB in this run; every measured call checked OK in it)"
            )

    def _fixed_rate_load(self, rate: int) -> Load:
        connections = self.plan.fixed_rate_connections
        per_connection = max(1, rate // connections)
        return Load(per_connection * connections * self.plan.fixed_rate_seconds, connections, 16, per_connection)

    def id_service(self) -> None:
        """Client-credentials tokens and sign-ins against one ID service process."""
        plan = self.plan
        with ServerProcess("id", self.workdir / "id") as server:
            info = server.info
            self.outcome.argon2 = dict(info["argon2"])
            print("[2/4] client-credentials tokens", flush=True)
            request = oauth_service_pb2.TokenRequest(
                grant_type="client_credentials", client_id=info["client_id"], client_secret=info["client_secret"]
            )
            response = asyncio.run(_token(server.port, request))
            tokens = response.tokens
            self.outcome.check(
                "Token",
                bool(tokens.access_token) and tokens.token_type == "Bearer",  # noqa: S105 - the token type, not a secret
                f"TokenResponse with a {tokens.token_type} access token ({len(tokens.access_token)} chars, "
                f"expires_in={tokens.expires_in})",
            )
            body = self._body("token", request)
            self._h2load("token warm-up", server, TOKEN_METHOD, body, {}, plan.token_warmup)
            self._measure("token", "tokens", server, TOKEN_METHOD, body, {}, plan.token, logged=True)

            print("[3/4] sign-ins (argon2id, production parameters)", flush=True)
            signin = user_service_pb2.SignInRequest(email=info["email"], password=info["password"])
            signed = asyncio.run(_sign_in(server.port, signin))
            self.outcome.check(
                "SignIn",
                signed.user.email == info["email"] and bool(signed.tokens.access_token),
                f"SignInResponse for {signed.user.email} with an access token",
            )
            body = self._body("signin", signin)
            self._h2load("sign-in warm-up", server, SIGNIN_METHOD, body, {}, plan.signin_warmup)
            self._measure("signin", "sign-ins", server, SIGNIN_METHOD, body, {}, plan.signin, logged=True)

    def moderation(self) -> None:
        """TnS ``ModerateContent`` through the full stack with the shipped rules and model."""
        plan = self.plan
        print("[4/4] TnS moderation decisions (rules + model, full interceptor stack)", flush=True)
        with ServerProcess("id", self.workdir / "tns-id") as id_server:
            secret = id_server.info["tns_secret"]
            args = ("--id-port", str(id_server.port), f"--tns-secret={secret}")
            with ServerProcess("tns", self.workdir / "tns", args=args) as tns:
                token_request = oauth_service_pb2.TokenRequest(
                    grant_type="client_credentials",
                    client_id=id_server.info["client_id"],
                    client_secret=id_server.info["client_secret"],
                    scope="tns.moderate",
                    audience=["furima.tns"],
                )
                token = asyncio.run(_token(id_server.port, token_request)).tokens.access_token
                self.outcome.secrets.append(token)
                auth = {"authorization": f"Bearer {token}"}
                listing = _content(content_pb2.CONTENT_KIND_LISTING, "lst_bench", *CLEAN_LISTING)
                message = _content(content_pb2.CONTENT_KIND_MESSAGE, "msg_bench", "", CONTACT_MESSAGE)
                for label, content, flagged in (("clean listing", listing, False), ("contact message", message, True)):
                    decision = asyncio.run(_moderate(tns.port, token, content)).decision
                    self.outcome.check(
                        f"ModerateContent, {label}",
                        (decision.verdict != content_pb2.VERDICT_ALLOW) == flagged,
                        f"{content_pb2.Verdict.Name(decision.verdict)} by rules {decision.ruleset_version},"
                        f" model {decision.model_version}",
                    )
                listing_body = self._body("listing", moderation_service_pb2.ModerateContentRequest(content=listing))
                message_body = self._body("message", moderation_service_pb2.ModerateContentRequest(content=message))
                self._h2load("moderation warm-up", tns, MODERATE_METHOD, listing_body, auth, plan.moderation_warmup)
                self._measure(
                    "moderate_listing",
                    "listings",
                    tns,
                    MODERATE_METHOD,
                    listing_body,
                    auth,
                    plan.moderation,
                    logged=True,
                )
                self._measure(
                    "moderate_message",
                    "messages",
                    tns,
                    MODERATE_METHOD,
                    message_body,
                    auth,
                    plan.moderation,
                    logged=True,
                )
                connections = self.plan.fixed_rate_connections
                per_connection = MODERATION_RATE // connections
                fixed = Load(
                    per_connection * connections * plan.moderation_fixed_seconds, connections, 16, per_connection
                )
                self._measure(
                    "moderate_fixed", f"listings @ {MODERATION_RATE}/s", tns, MODERATE_METHOD, listing_body, auth,
                    fixed, logged=True,
                )  # fmt: skip


def _content(kind: content_pb2.ContentKind, content_id: str, title: str, body: str) -> content_pb2.Content:
    content = content_pb2.Content(
        kind=kind, content_id=content_id, author_id="usr_bench_author", title=title, body=body
    )
    if kind == content_pb2.CONTENT_KIND_LISTING:
        content.category = "shoes/sneakers"
        content.price.CopyFrom(money_pb2.Money(amount=8_500, currency="JPY"))
    return content


async def _moderate(
    port: int, token: str, content: content_pb2.Content
) -> moderation_service_pb2.ModerateContentResponse:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = moderation_service_pb2_grpc.ModerationServiceStub(channel)
        request = moderation_service_pb2.ModerateContentRequest(content=content)
        return await stub.ModerateContent(request, metadata=(("authorization", f"Bearer {token}"),), timeout=10)


async def _echo(port: int, token: str | None) -> echo_service_pb2.EchoResponse:
    metadata = (("authorization", f"Bearer {token}"),) if token else None
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = echo_service_pb2_grpc.EchoServiceStub(channel)
        return await stub.Echo(echo_service_pb2.EchoRequest(message="furima bench"), metadata=metadata, timeout=10)


async def _token(port: int, request: oauth_service_pb2.TokenRequest) -> oauth_service_pb2.TokenResponse:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        return await oauth_service_pb2_grpc.OAuthServiceStub(channel).Token(request, timeout=10)


async def _sign_in(port: int, request: user_service_pb2.SignInRequest) -> user_service_pb2.SignInResponse:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        return await user_service_pb2_grpc.UserServiceStub(channel).SignIn(request, timeout=30)
