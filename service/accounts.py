"""People who log in: users with roles, full names and positions, scrypt password hashes, and
bearer/session tokens.

Tokens are random 256-bit strings given to the client once and stored only as their SHA-256.
Login is throttled per username after repeated failures. A session ends 12 hours after login, or
sooner after `idle_s` without activity (idle logout: a PC left open at the desk); disabling a
user, changing their role or password ends their sessions at once, whichever process does it,
because every request checks the database.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import sqlite3
import time
import unicodedata
from dataclasses import dataclass
from typing import Any

import aiosqlite

from protocol.errors import AuthError, ValidationError

log = logging.getLogger(__name__)

# Version 1 of these tables (service/migrations.py): never edit it, add a migration below.
SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    username TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS sessions (
    token_hash BLOB PRIMARY KEY,
    username TEXT NOT NULL REFERENCES users(username),
    expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS session_activity (
    token_hash BLOB PRIMARY KEY,
    last_seen_at INTEGER NOT NULL  -- ms
);
CREATE TABLE IF NOT EXISTS login_failures (
    username TEXT PRIMARY KEY,
    count INTEGER NOT NULL,
    last_at INTEGER NOT NULL
);
"""
# Version 2: a session's last activity (ms) becomes a column of `sessions`; it had a table of its
# own while a column could not be added. A session without one counts as active from its next
# request (sessions of the first release had none).
SESSION_ACTIVITY = """
ALTER TABLE sessions ADD COLUMN last_seen_at INTEGER;
UPDATE sessions SET last_seen_at = (
    SELECT a.last_seen_at FROM session_activity a WHERE a.token_hash = sessions.token_hash);
DROP TABLE session_activity;
"""
# Version 3: who a user is, for the documents that name the official who signs them.
STAFF_NAMES = """
ALTER TABLE users ADD COLUMN full_name TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN position TEXT NOT NULL DEFAULT '';
"""
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,31}$")
SESSION_TTL_S = 12 * 3600
IDLE_S = 30 * 60
TOUCH_S = 60  # write a session's last activity at most this often (a tenth of idle_s if less)
NAME_MAX = 100  # a full name or position, on a form's signature line
MAX_FAILURES = 5
LOCKOUT_S = 60
SCRYPT = {"n": 2**14, "r": 8, "p": 1}


class LoginThrottled(AuthError):
    """Too many failed logins for this username: wait before trying again."""


class SessionIdle(AuthError):
    """The session was left without activity too long and has ended."""


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True, slots=True)
class User:
    """An authenticated person."""

    username: str
    role: str


@dataclass(frozen=True, slots=True)
class Profile:
    """Who a user is, as the forms they sign name them."""

    username: str
    full_name: str
    position: str


def hash_password(password: str, salt: bytes | None = None) -> str:
    """scrypt hash as `scrypt$n$r$p$salt$hash` (hex)."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **SCRYPT)
    return f"scrypt${SCRYPT['n']}${SCRYPT['r']}${SCRYPT['p']}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """Constant-time check of `password` against a stored scrypt hash."""
    try:
        _, n, r, p, salt, digest = stored.split("$")
        got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r),
                             p=int(p), dklen=32)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got.hex(), digest)


def check_name(value: str, field: str) -> str:
    """A person's full name or position as it will print on a form: one line, at most
    `NAME_MAX` characters, outer spaces dropped (empty: not given)."""
    text = value.strip() if isinstance(value, str) else None
    if text is None or len(text) > NAME_MAX or any(unicodedata.category(c) == "Cc" for c in text):
        raise ValidationError(f"{field}: one line of at most {NAME_MAX} characters", field=field)
    return unicodedata.normalize("NFC", text)


def check_new_password(password: str) -> str:
    """Refuse passwords too short to be a password."""
    if len(password) < 8:
        raise ValidationError("password must have at least 8 characters", field="password")
    return password


class Accounts:
    """Users and sessions in an open database (the caller's connection)."""

    def __init__(self, conn: aiosqlite.Connection, roles: tuple[str, ...],
                 idle_s: float = IDLE_S) -> None:
        self.conn = conn
        self.roles = roles
        self.idle_s = idle_s  # 0: no idle logout

    async def add_user(self, username: str, password: str, role: str) -> None:
        """Add a user or reset an existing user's password and role."""
        if not USERNAME_RE.fullmatch(username):
            raise ValidationError("username: 2–32 lowercase letters, digits, . _ -",
                                  field="username")
        if role not in self.roles:
            raise ValidationError(f"role must be one of {', '.join(self.roles)}", field="role")
        check_new_password(password)
        await self.conn.execute(
            "INSERT INTO users(username, password_hash, role, created_at) VALUES (?,?,?,?) "
            "ON CONFLICT(username) DO UPDATE SET password_hash=excluded.password_hash, "
            "role=excluded.role, disabled=0",
            (username, hash_password(password), role, int(time.time())),
        )
        await self.conn.commit()

    async def login(self, username: str, password: str) -> str:
        """Check the password (throttled) and return a new session token."""
        now = int(time.time())
        async with self.conn.execute(
            "SELECT count, last_at FROM login_failures WHERE username=?", (username,)
        ) as cur:
            row = await cur.fetchone()
        if row and row[0] >= MAX_FAILURES and now - row[1] < LOCKOUT_S:
            raise LoginThrottled("too many failed logins; wait a minute and try again")
        async with self.conn.execute(
            "SELECT password_hash FROM users WHERE username=? AND disabled=0", (username,)
        ) as cur:
            user = await cur.fetchone()
        if user is None or not verify_password(password, user[0]):
            await self.conn.execute(
                "INSERT INTO login_failures VALUES (?,1,?) ON CONFLICT(username) DO UPDATE SET "
                "count=login_failures.count+1, last_at=excluded.last_at", (username, now))
            await self.conn.commit()
            raise AuthError("wrong username or password")
        token = secrets.token_urlsafe(32)
        await self.conn.execute("DELETE FROM login_failures WHERE username=?", (username,))
        await self.conn.execute("DELETE FROM sessions WHERE expires_at < ?", (now,))
        await self.conn.execute(
            "INSERT INTO sessions(token_hash, username, expires_at, last_seen_at) VALUES (?,?,?,?)",
            (_digest(token), username, now + SESSION_TTL_S, int(time.time() * 1000)))
        await self.conn.commit()
        return token

    async def check(self, token: str, touch: bool = True) -> User:
        """The user a live token belongs to; AuthError otherwise (SessionIdle when it has just
        ended for lack of activity). `touch=False` for background requests (a page polling its
        status line), which must not keep an abandoned session alive."""
        now_ms = int(time.time() * 1000)
        async with self.conn.execute(
            "SELECT u.username, u.role, s.last_seen_at FROM sessions s "
            "JOIN users u ON u.username = s.username "
            "WHERE s.token_hash=? AND s.expires_at>=? AND u.disabled=0",
            (_digest(token), now_ms // 1000),
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            raise AuthError("not logged in or session expired")
        seen = None if row[2] is None else int(row[2])
        idle_ms = self.idle_s * 1000
        if idle_ms and seen is not None and now_ms - seen > idle_ms:
            await self.logout(token)
            raise SessionIdle(f"logged out after {self.idle_s / 60:g} minutes without "
                              "activity; log in again")
        every_ms = min(TOUCH_S * 1000, idle_ms / 10) if idle_ms else TOUCH_S * 1000
        if touch and (seen is None or now_ms - seen >= every_ms):
            try:
                await self.conn.execute("UPDATE sessions SET last_seen_at=? WHERE token_hash=?",
                                        (now_ms, _digest(token)))
                await self.conn.commit()
            except sqlite3.Error as exc:  # a full disk must not lock people out of reading
                log.warning("cannot record session activity: %s", exc)
                await self.conn.rollback()
        return User(row[0], row[1])

    async def logout(self, token: str) -> None:
        """Forget a session token."""
        await self.conn.execute("DELETE FROM sessions WHERE token_hash=?", (_digest(token),))
        await self.conn.commit()

    async def _end_sessions(self, username: str) -> None:
        """Delete every session of `username` (the caller commits)."""
        await self.conn.execute("DELETE FROM sessions WHERE username=?", (username,))

    async def change_password(self, username: str, old: str, new: str) -> None:
        """Change a password after checking the old one; ends the user's other sessions."""
        async with self.conn.execute(
            "SELECT password_hash FROM users WHERE username=?", (username,)) as cur:
            row = await cur.fetchone()
        if row is None or not verify_password(old, row[0]):
            raise AuthError("the current password is wrong")
        check_new_password(new)
        await self.conn.execute("UPDATE users SET password_hash=? WHERE username=?",
                                (hash_password(new), username))
        await self._end_sessions(username)
        await self.conn.commit()

    async def users(self) -> list[dict[str, Any]]:
        """Every user (no password hashes), by username."""
        async with self.conn.execute(
                "SELECT username, role, created_at, disabled, full_name, position FROM users "
                "ORDER BY username") as cur:
            return [{"username": r[0], "role": r[1], "created_at": int(r[2]),
                     "disabled": bool(r[3]), "full_name": r[4], "position": r[5]}
                    for r in await cur.fetchall()]

    async def profile(self, username: str) -> Profile:
        """Who a user is: their full name and position (empty strings when not given)."""
        async with self.conn.execute(
                "SELECT username, full_name, position FROM users WHERE username=?",
                (username,)) as cur:
            row = await cur.fetchone()
        if row is None:
            raise ValidationError(f"no user {username!r}", field="username")
        return Profile(row[0], row[1], row[2])

    async def set_profile(self, username: str, full_name: str, position: str) -> Profile:
        """Set a user's full name and position (sessions go on: nothing they may do changes)."""
        profile = Profile(username, check_name(full_name, "full_name"),
                          check_name(position, "position"))
        cur = await self.conn.execute("UPDATE users SET full_name=?, position=? WHERE username=?",
                                      (profile.full_name, profile.position, username))
        if cur.rowcount == 0:
            raise ValidationError(f"no user {username!r}", field="username")
        await self.conn.commit()
        return profile

    async def set_disabled(self, username: str, disabled: bool) -> None:
        """Disable (ending their sessions) or re-enable a user."""
        cur = await self.conn.execute("UPDATE users SET disabled=? WHERE username=?",
                                      (int(disabled), username))
        if cur.rowcount == 0:
            raise ValidationError(f"no user {username!r}", field="username")
        if disabled:
            await self._end_sessions(username)
        await self.conn.commit()

    async def set_role(self, username: str, role: str) -> None:
        """Give a user another role (their sessions end, so the new role applies at once)."""
        if role not in self.roles:
            raise ValidationError(f"role must be one of {', '.join(self.roles)}", field="role")
        cur = await self.conn.execute("UPDATE users SET role=? WHERE username=?", (role, username))
        if cur.rowcount == 0:
            raise ValidationError(f"no user {username!r}", field="username")
        await self._end_sessions(username)
        await self.conn.commit()

    async def reset_password(self, username: str, new: str) -> None:
        """Set a user's password without the old one (an admin's reset); ends their sessions."""
        check_new_password(new)
        cur = await self.conn.execute("UPDATE users SET password_hash=? WHERE username=?",
                                      (hash_password(new), username))
        if cur.rowcount == 0:
            raise ValidationError(f"no user {username!r}", field="username")
        await self._end_sessions(username)
        await self.conn.execute("DELETE FROM login_failures WHERE username=?", (username,))
        await self.conn.commit()

    async def count(self) -> int:
        """How many users exist."""
        async with self.conn.execute("SELECT count(*) FROM users") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0
