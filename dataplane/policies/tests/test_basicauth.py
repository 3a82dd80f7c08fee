"""Basic authentication: bcrypt (off the event loop, then cached), apr1, {SHA}; modes, realm, errors.

htpasswd lines are generated here (bcrypt.hashpw; hashlib for {SHA}); apr1 is checked against
vectors made by `openssl passwd -apr1` (and live against openssl when it is installed).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import shutil
import subprocess
import threading
from collections.abc import AsyncIterator, Sequence

import bcrypt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api import errors as api_errors
from api.proto.agentgw.v1 import resource_pb2 as pb
from dataplane import errors
from dataplane.policies import basicauth, blocking, context, services

BCRYPT_ALICE = bcrypt.hashpw(b"alice-pw", bcrypt.gensalt(rounds=4)).decode()
BCRYPT_YVONNE = "$2y$" + bcrypt.hashpw(b"yvonne:pw", bcrypt.gensalt(rounds=4)).decode()[4:]
LONG_PASSWORD = b"L" * 72
BCRYPT_LONG = bcrypt.hashpw(LONG_PASSWORD, bcrypt.gensalt(rounds=4)).decode()
SHA_BOB = "{SHA}" + base64.b64encode(hashlib.sha1(b"bob-pw").digest()).decode()
APR1_CAROL = "$apr1$abcdefgh$h9FWgUz3n9YxylKLlR5SQ/"  # openssl passwd -apr1 -salt abcdefgh secret
MD5_DAVE = "$1$abcdefgh$cHJi5PXp/ki/ktXzqlk6I1"  # openssl passwd -1 -salt abcdefgh secret

HTPASSWD = f"""# users
alice:{BCRYPT_ALICE}
bob:{SHA_BOB}

carol:{APR1_CAROL}
dave:{MD5_DAVE}
yvonne:{BCRYPT_YVONNE}
long:{BCRYPT_LONG}
"""


class FakeExchange:
    def __init__(self, headers: list[tuple[bytes, bytes]]) -> None:
        self.method = "GET"
        self.path = "/"
        self.query = ""
        self.headers = headers
        self.client_addr = "127.0.0.1"


@pytest.fixture
async def svc() -> AsyncIterator[services.Services]:
    s = services.Services({"blocking": blocking.factory})
    yield s
    await s.close()


def request(svc: services.Services, headers: Sequence[tuple[bytes, bytes]] = ()) -> context.RequestContext:
    hs = list(headers)
    return context.RequestContext(FakeExchange(list(hs)), svc, hs, "/")  # type: ignore[arg-type]


def basic(user: bytes, password: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", b"Basic " + base64.b64encode(user + b":" + password))]


def policy(mode: int = pb.AUTH_MODE_OPTIONAL, realm: str = "", htpasswd: str = HTPASSWD) -> context.Step:
    return basicauth.compile(pb.BasicAuth(mode=mode, htpasswd=htpasswd, realm=realm), "policies[0].basicAuth")


async def check(step: context.Step, ctx: context.RequestContext) -> bool:
    """Run the step; True when it waited (a bcrypt check on the thread pool)."""
    pending = context.run([step], ctx)
    if pending is None:
        return False
    await pending
    return True


async def refused(step: context.Step, ctx: context.RequestContext) -> errors.Unauthenticated:
    with pytest.raises(errors.Unauthenticated) as info:
        await check(step, ctx)
    assert info.value.status == 401
    return info.value


async def test_a_bcrypt_user_is_checked_off_the_loop_once_then_from_the_cache(svc: services.Services) -> None:
    step = policy()
    first = request(svc, [*basic(b"alice", b"alice-pw"), (b"accept", b"*/*")])
    assert await check(step, first) is True
    assert first.basic_auth == {"username": "alice"}
    assert first.header(b"authorization") is None
    assert first.header(b"accept") == b"*/*"
    again = request(svc, basic(b"alice", b"alice-pw"))
    assert await check(step, again) is False
    assert again.basic_auth == {"username": "alice"}


async def test_a_2y_bcrypt_hash_and_a_password_with_a_colon_verify(svc: services.Services) -> None:
    ctx = request(svc, basic(b"yvonne", b"yvonne:pw"))
    await check(policy(), ctx)
    assert ctx.basic_auth == {"username": "yvonne"}


async def test_bcrypt_counts_only_the_first_72_bytes_like_apache(svc: services.Services) -> None:
    await check(policy(), request(svc, basic(b"long", LONG_PASSWORD + b"ignored")))


@pytest.mark.parametrize(
    ("user", "password"), [(b"bob", b"bob-pw"), (b"carol", b"secret"), (b"dave", b"secret")]
)
async def test_sha_and_apr1_and_md5_users_are_checked_inline(
    svc: services.Services, user: bytes, password: bytes
) -> None:
    ctx = request(svc, basic(user, password))
    assert await check(policy(), ctx) is False
    assert ctx.basic_auth == {"username": user.decode()}


@pytest.mark.parametrize(
    ("user", "password"),
    [(b"alice", b"wrong"), (b"bob", b"wrong"), (b"carol", b"Secret"), (b"dave", b""), (b"mallory", b"x")],
)
async def test_a_wrong_password_or_unknown_user_gets_401_with_the_basic_challenge(
    svc: services.Services, user: bytes, password: bytes
) -> None:
    e = await refused(policy(realm="internal"), request(svc, basic(user, password)))
    assert str(e) == "basic authentication: invalid credentials"
    assert e.headers == ((b"www-authenticate", b'Basic realm="internal"'),)


async def test_a_wrong_bcrypt_password_is_not_cached(svc: services.Services) -> None:
    step = policy()
    await refused(step, request(svc, basic(b"alice", b"wrong")))
    pending = context.run([step], request(svc, basic(b"alice", b"wrong")))
    assert pending is not None  # bcrypt runs again
    with pytest.raises(errors.Unauthenticated):
        await pending


@pytest.mark.parametrize(
    "value", [b"Basic !!!notbase64", b"Basic " + base64.b64encode(b"no-colon"), b"Basic " + b"\xff" * 8]
)
async def test_malformed_credentials_get_401(svc: services.Services, value: bytes) -> None:
    await refused(policy(), request(svc, [(b"authorization", value)]))


async def test_missing_credentials_pass_in_optional_mode_and_get_401_in_strict_mode(
    svc: services.Services,
) -> None:
    ctx = request(svc)
    await check(policy(), ctx)
    assert ctx.basic_auth is None
    bearer = request(svc, [(b"authorization", b"Bearer abc")])
    await check(policy(), bearer)
    assert bearer.header(b"authorization") == b"Bearer abc"
    e = await refused(policy(pb.AUTH_MODE_STRICT, realm='ops "team"'), request(svc))
    assert str(e) == "basic authentication: credentials missing"
    assert e.headers == ((b"www-authenticate", b'Basic realm="ops \\"team\\""'),)
    default = await refused(policy(pb.AUTH_MODE_STRICT), request(svc))
    assert default.headers == ((b"www-authenticate", b'Basic realm="agentgw"'),)


async def test_permissive_mode_never_refuses(svc: services.Services) -> None:
    step = policy(pb.AUTH_MODE_PERMISSIVE)
    wrong = request(svc, basic(b"alice", b"wrong"))
    await check(step, wrong)
    assert wrong.basic_auth is None
    assert wrong.header(b"authorization") is not None
    await check(step, request(svc))
    good = request(svc, basic(b"bob", b"bob-pw"))
    await check(step, good)
    assert good.basic_auth == {"username": "bob"}


async def test_the_verification_cache_is_bounded(
    svc: services.Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(basicauth, "CACHE_SIZE", 2)
    users = {f"u{i}".encode(): secrets.token_bytes(8).hex().encode() for i in range(3)}
    htpasswd = "\n".join(
        f"{u.decode()}:{bcrypt.hashpw(p, bcrypt.gensalt(4)).decode()}" for u, p in users.items()
    )
    step = policy(htpasswd=htpasswd)
    for user, password in users.items():
        assert await check(step, request(svc, basic(user, password))) is True
    assert await check(step, request(svc, basic(b"u2", users[b"u2"]))) is False
    assert await check(step, request(svc, basic(b"u0", users[b"u0"]))) is True


async def test_the_blocking_pool_runs_calls_on_another_thread() -> None:
    pool = blocking.Blocking()
    try:
        name = await pool.run(lambda: threading.current_thread().name)
    finally:
        pool.close()
    assert name.startswith("agentgw-blocking")


def test_apr1_and_md5_crypt_match_openssl() -> None:
    assert basicauth.md5_crypt(b"secret", b"abcdefgh") == APR1_CAROL.encode()
    assert basicauth.md5_crypt(b"secret", b"abcdefgh", b"$1$") == MD5_DAVE.encode()
    openssl = shutil.which("openssl")
    if openssl is None:
        return
    for length in (0, 1, 15, 16, 17, 40):
        password = secrets.token_hex(length)[:length]
        salt = secrets.token_hex(4)
        expected = subprocess.run(
            [openssl, "passwd", "-apr1", "-salt", salt, password], capture_output=True, check=True, timeout=10
        ).stdout.strip()
        assert basicauth.md5_crypt(password.encode(), salt.encode()) == expected


def test_config_errors_name_the_line_and_never_quote_the_hash() -> None:
    lines = [
        "plain:hunter2",
        "sha512:$6$salt$" + "x" * 86,
        "badbcrypt:$2b$10$short",
        "badsha:{SHA}bm90IDIwIGJ5dGVz",
        "noseparator",
        f"alice:{BCRYPT_ALICE}",
        f"alice:{SHA_BOB}",
    ]
    with pytest.raises(api_errors.ConfigError) as info:
        policy(htpasswd="\n".join(lines))
    where = "policies[0].basicAuth.htpasswd"
    assert info.value.problems == [
        f"{where}: line 1 (user 'plain'): unsupported hash: plain-text passwords and crypt(3) DES are not "
        "accepted; use bcrypt (htpasswd -B), apr1 or {SHA}",
        f"{where}: line 2 (user 'sha512'): SHA-crypt ($5$, $6$) hashes are not supported; "
        "use bcrypt (htpasswd -B)",
        f"{where}: line 3 (user 'badbcrypt'): malformed bcrypt hash",
        f"{where}: line 4 (user 'badsha'): malformed {{SHA}} hash",
        f"{where}: line 5: expected user:hash",
        f"{where}: line 7: user 'alice' appears twice",
    ]
    assert "hunter2" not in str(info.value)


def test_an_empty_htpasswd_and_a_bad_realm_are_config_errors() -> None:
    with pytest.raises(api_errors.ConfigError, match=r"htpasswd: no users"):
        policy(htpasswd="# nobody\n")
    with pytest.raises(api_errors.ConfigError, match=r"policies\[0\].basicAuth.realm: only printable ASCII"):
        policy(realm="a\r\nSet-Cookie: x=y")


_FUZZ_STEP = policy(pb.AUTH_MODE_STRICT, htpasswd=f"bob:{SHA_BOB}\ncarol:{APR1_CAROL}\n")
_FUZZ_SVC = services.Services()


@settings(max_examples=1000, deadline=None, database=None)
@given(
    st.one_of(
        st.binary(max_size=200),
        st.binary(max_size=100).map(lambda b: b"Basic " + base64.b64encode(b)),
        st.tuples(st.sampled_from([b"bob", b"carol", b"x"]), st.binary(max_size=40)).map(
            lambda t: b"Basic " + base64.b64encode(t[0] + b":" + t[1])
        ),
    )
)
def test_random_authorization_values_only_ever_get_401(value: bytes) -> None:
    ctx = request(_FUZZ_SVC, [(b"authorization", value)])
    try:
        assert context.run([_FUZZ_STEP], ctx) is None
    except errors.Unauthenticated as e:
        assert e.status == 401
    else:
        pytest.fail(f"accepted {value!r}")
