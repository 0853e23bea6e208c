"""User use cases: sign-up, sign-in, reading, suspension."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from libs.errors import DomainError, NotFound, PermissionDenied, Unauthenticated, Violations
from libs.ids import new_ulid
from services.id.domain import audit, throttle
from services.id.domain import users as rules
from services.id.domain.clients import ClientKind
from services.id.domain.passwords import PasswordHasher
from services.id.domain.scopes import AUDIENCES, format_scopes, narrow, parse_scopes
from services.id.domain.users import User, UserStatus
from services.id.service._events import user_reinstated, user_signed_up, user_suspended
from services.id.service._runtime import Caller, Runtime, record
from services.id.service.issuing import TokenIssuer, TokenSet
from services.id.store import clients as client_repo
from services.id.store import throttle as throttle_repo
from services.id.store import users as user_repo

_BAD_CREDENTIALS = "the e-mail address or the password is wrong"


class UserService:
    """Users and their credentials."""

    def __init__(self, rt: Runtime, hasher: PasswordHasher, issuer: TokenIssuer) -> None:
        self._rt = rt
        self._hasher = hasher
        self._issuer = issuer

    async def sign_up(self, email: str, password: str, display_name: str = "", region: str = "") -> User:
        """Register a user; INVALID_ARGUMENT with field violations, or ALREADY_EXISTS/EMAIL_TAKEN."""
        violations = Violations()
        rules.validate_sign_up(violations, email, password, display_name, region)
        violations.raise_if_any("the sign-up request has invalid fields")
        now = self._rt.clock.now()
        user = User(
            id=new_ulid("usr_"),
            email=rules.normalise_email(email),
            password_hash=await self._hasher.hash(password),
            display_name=display_name.strip(),
            region=region.upper(),
            status=UserStatus.ACTIVE,
            created_at=now,
        )
        async with self._rt.db.transaction() as tx:
            await user_repo.add(tx.conn, user)
            await self._rt.outbox.append(tx, user.id, user_signed_up(user))
            await record(tx, audit.event(audit.USER_SIGNED_UP, user.id, now, actor=user.id))
        return user

    async def sign_in(
        self, email: str, password: str, *, client_id: str = "", scope: str = "", source: str = ""
    ) -> tuple[User, TokenSet]:
        """Check a password and open a session for a first-party app, with throttling."""
        email = rules.normalise_email(email)
        client_id = client_id or self._rt.config.default_client_id
        async with self._rt.db.read() as conn:
            client = await client_repo.get(conn, client_id)
        if client is None or client.kind is not ClientKind.FIRST_PARTY:
            raise PermissionDenied("only a first-party app may sign users in", reason="UNAUTHORIZED_CLIENT")
        scopes = narrow(parse_scopes(scope), client.allowed_scopes)
        if scopes is None:
            raise PermissionDenied("the client may not request these scopes", reason="INVALID_SCOPE")
        keys = [throttle.account_key(email)] + ([throttle.source_key(source)] if source else [])
        await self._reserve_attempt(keys, email, client_id, source)

        async with self._rt.db.read() as conn:
            user = await user_repo.by_email(conn, email)
        # Always verify (against a decoy without a user) so timing does not reveal accounts.
        ok = await self._hasher.verify(user.password_hash if user else None, password)
        if not ok or user is None:
            await self._record_failure(email, client_id, source)
            raise Unauthenticated(_BAD_CREDENTIALS, reason="INVALID_CREDENTIALS")
        if user.is_suspended:
            await self._release_attempt(keys)
        rules.ensure_active(user)
        new_hash = await self._hasher.hash(password) if self._hasher.needs_rehash(user.password_hash) else None

        async with self._rt.db.transaction() as tx:
            now = self._rt.clock.now()
            account = await throttle_repo.lock(tx.conn, throttle.account_key(email))
            await throttle_repo.save(tx.conn, throttle.record_success(account))
            for key in keys[1:]:
                state = await throttle_repo.lock(tx.conn, key)
                await throttle_repo.save(tx.conn, throttle.release(state, throttle.policy_for(key)))
            if new_hash:
                await user_repo.save_password_hash(tx.conn, user.id, new_hash)
            family_id, refresh = await self._issuer.start_session(
                tx, user_id=user.id, client_id=client_id, scopes=scopes, audience=AUDIENCES
            )
            access, expires_in = await self._issuer.access_token(
                tx,
                subject=user.id,
                client_id=client_id,
                scopes=scopes,
                audience=AUDIENCES,
                session_id=family_id,
                grant="password",
                source=source,
            )
            await record(
                tx,
                audit.event(
                    audit.SIGNIN_SUCCEEDED,
                    user.id,
                    now,
                    client_id=client_id,
                    actor=user.id,
                    source=source,
                    details={"session": family_id},
                ),
            )
        return user, TokenSet(access, expires_in, format_scopes(scopes), refresh_token=refresh)

    async def _reserve_attempt(self, keys: list[str], email: str, client_id: str, source: str) -> None:
        """Refuse the attempt while a key is in its delay; otherwise count it as a failure
        now, in the same transaction, so concurrent attempts see each other.
        """
        refused: DomainError | None = None
        async with self._rt.db.transaction() as tx:
            now = self._rt.clock.now()
            states = [await throttle_repo.lock(tx.conn, key) for key in sorted(keys)]
            for state in states:
                try:
                    throttle.check(state, now)
                except DomainError as exc:
                    refused = exc
                    await record(
                        tx,
                        audit.event(
                            audit.SIGNIN_THROTTLED,
                            email,
                            now,
                            client_id=client_id,
                            actor="anonymous",
                            source=source,
                            details={"key": state.key.split(":")[0]},
                        ),
                    )
                    break
            else:
                for state in states:
                    reserved = throttle.record_failure(state, throttle.policy_for(state.key), now)
                    await throttle_repo.save(tx.conn, reserved)
        # Raised after the commit so the audit event survives the refusal.
        if refused is not None:
            raise refused

    async def _release_attempt(self, keys: list[str]) -> None:
        """Take back a reserved failure (right password, refused for another reason)."""
        async with self._rt.db.transaction() as tx:
            for key in sorted(keys):
                state = await throttle_repo.lock(tx.conn, key)
                await throttle_repo.save(tx.conn, throttle.release(state, throttle.policy_for(key)))

    async def _record_failure(self, email: str, client_id: str, source: str) -> None:
        """Audit a wrong password (the failure itself was counted when reserved)."""
        async with self._rt.db.transaction() as tx:
            now = self._rt.clock.now()
            await record(
                tx, audit.event(audit.SIGNIN_FAILED, email, now, client_id=client_id, actor="anonymous", source=source)
            )

    async def get_user(self, caller: Caller, user_id: str) -> User:
        """Return a user: the caller themselves, or anyone with "id.users.read"."""
        if caller.subject != user_id and not caller.has_scope("id.users.read"):
            raise PermissionDenied("a user may only read their own record", reason="NOT_OWNER")
        async with self._rt.db.read() as conn:
            user = await user_repo.get(conn, user_id)
        if user is None:
            raise NotFound(f"user {user_id!r} not found", reason="USER_NOT_FOUND")
        return user

    async def suspend_user(self, caller: Caller, user_id: str, reason: str) -> User:
        """Suspend a user (idempotent: no second event for a suspended user)."""
        async with self._rt.db.transaction() as tx:
            user = await self._load(tx.conn, user_id)
            if user.is_suspended:
                return user
            now = self._rt.clock.now()
            user = rules.suspend(user, reason, now)
            await user_repo.save_status(tx.conn, user)
            await self._rt.outbox.append(tx, user.id, user_suspended(user))
            await record(
                tx,
                audit.event(
                    audit.USER_SUSPENDED,
                    user.id,
                    now,
                    client_id=caller.client_id,
                    actor=caller.subject,
                    details={"reason": reason},
                ),
            )
        return user

    async def reinstate_user(self, caller: Caller, user_id: str, reason: str = "") -> User:
        """Lift a suspension (idempotent)."""
        async with self._rt.db.transaction() as tx:
            user = await self._load(tx.conn, user_id)
            if not user.is_suspended:
                return user
            now = self._rt.clock.now()
            user = rules.reinstate(user)
            await user_repo.save_status(tx.conn, user)
            await self._rt.outbox.append(tx, user.id, user_reinstated(user.id, now))
            await record(
                tx,
                audit.event(
                    audit.USER_REINSTATED,
                    user.id,
                    now,
                    client_id=caller.client_id,
                    actor=caller.subject,
                    details={"reason": reason},
                ),
            )
        return user

    @staticmethod
    async def _load(conn: AsyncConnection, user_id: str) -> User:
        user = await user_repo.get(conn, user_id)
        if user is None:
            raise NotFound(f"user {user_id!r} not found", reason="USER_NOT_FOUND")
        return user
