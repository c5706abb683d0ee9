"""Login, sessions, CSRF and the security headers of the desk (over HTTP, no browser)."""

from __future__ import annotations

from collections.abc import Callable

from yarl import URL

from tests.harness import PASSWORD, EdgeHandle, birth
from tests.ui.conftest import Staff


async def test_pages_need_a_login_and_come_back_after_it(staff: Callable[[], Staff]) -> None:
    person = staff()
    page = await person.get("/dossiers?status=processing", allow_redirects=False)
    assert page.status == 303
    location = URL(page.headers["Location"])
    assert location.path == "/login" and location.query["next"] == "/dossiers?status=processing"
    form = await person.get("/login?next=%2Fdossiers%3Fstatus%3Dprocessing")
    page = await person.post("/login", {"username": "clerk1", "password": PASSWORD,
                                        "next": "/dossiers?status=processing"}, csrf=form.csrf)
    assert page.status == 200 and page.url.endswith("/dossiers?status=processing")


async def test_the_session_cookie_is_httponly_and_samesite_strict(
        edge: EdgeHandle, staff: Callable[[], Staff]) -> None:
    person = staff()
    form = await person.get("/login")
    async with person.http.post(person.base + "/login", allow_redirects=False, data={
            "csrf": form.csrf, "username": "clerk1", "password": PASSWORD}) as resp:
        assert resp.status == 303
        cookie = resp.cookies["session"]
        assert cookie["httponly"] is True
        assert cookie["samesite"] == "Strict"
        assert cookie["path"] == "/"


async def test_an_off_site_redirect_after_login_stays_home(staff: Callable[[], Staff]) -> None:
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        person = staff()
        form = await person.get("/login")
        async with person.http.post(person.base + "/login", allow_redirects=False, data={
                "csrf": form.csrf, "username": "clerk1", "password": PASSWORD,
                "next": target}) as resp:
            assert resp.headers["Location"] == "/", target


async def test_wrong_password_and_throttling_speak_vietnamese(staff: Callable[[], Staff]) -> None:
    person = staff()
    page = await person.login("clerk1", "wrong-password")
    assert page.status == 401 and "Sai tên đăng nhập hoặc mật khẩu" in page.text
    for _ in range(5):
        page = await person.login("clerk1", "wrong-password")
    page = await person.login("clerk1")
    assert page.status == 401 and "Đăng nhập sai quá nhiều lần" in page.text


async def test_every_ui_form_needs_the_sessions_csrf_token(
        edge: EdgeHandle, staff: Callable[[], Staff]) -> None:
    person = staff()
    page = await person.post("/login", {"username": "clerk1", "password": PASSWORD},
                             csrf="forged")
    assert page.status == 403 and "Biểu mẫu đã hết hạn" in page.text
    await person.login("clerk1")
    status, d = await edge.api.post("/api/dossiers", _birth())
    assert status == 201
    for path, data in [
        ("/logout", {}), ("/lang", {"lang": "en"}), ("/sync/now", {}),
        ("/password", {"old": PASSWORD, "new": "another-pass-1", "confirm": "another-pass-1"}),
        (f"/dossiers/{d['id']}/transition", {"to": "processing"}),
        (f"/dossiers/{d['id']}/comments", {"text": "x"}),
    ]:
        page = await person.post(path, data, csrf="0" * 64)
        assert page.status == 403, path
        page = await person.post(path, data, csrf=False)
        assert page.status == 403, path
    _, now = await edge.api.get(f"/api/dossiers/{d['id']}")
    assert now["version"] == d["version"]  # nothing happened
    assert (await person.get("/")).status == 200  # still logged in


async def test_a_form_posted_from_another_site_is_refused(staff: Callable[[], Staff]) -> None:
    person = staff()
    await person.login("clerk1")
    token = (await person.get("/")).csrf
    page = await person.post("/lang", {"lang": "en"}, csrf=token,
                             headers={"Origin": "https://evil.example"})
    assert page.status == 403


async def test_security_headers_on_every_page(
        edge: EdgeHandle, staff: Callable[[], Staff]) -> None:
    person = staff()
    login = await person.get("/login")
    await person.login("clerk1")
    for page in (login, await person.get("/"), await person.get("/dossiers"),
                 await person.get("/nope-not-a-page")):
        csp = page.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp  # scripts and styles too, unless widened below
        assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp and "*" not in csp
        assert "frame-ancestors 'none'" in csp
        assert page.headers["X-Frame-Options"] == "DENY"
        assert page.headers["Referrer-Policy"] == "no-referrer"
        assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert (await person.get("/")).headers["Cache-Control"] == "no-store"
    async with person.http.get(edge.api.base + "/api/sync") as resp:  # the cookie works there
        assert resp.status == 200 and resp.content_type == "application/json"


async def test_no_inline_script_or_style_and_no_outside_asset(staff: Callable[[], Staff]) -> None:
    person = staff()
    await person.login("leader1")
    for path in ("/", "/dossiers", "/dossiers/new?procedure=1.001193", "/stats", "/password"):
        html = (await person.get(path)).text
        assert "<script>" not in html and " style=" not in html and "<style" not in html, path
        assert " on" + "click=" not in html and "http://" not in html and "https://" not in html, path


async def test_static_files_are_local_versioned_and_cached(staff: Callable[[], Staff]) -> None:
    person = staff()
    html = (await person.get("/login")).text
    start = html.index("/static/ui/base.css?v=")
    url = html[start:html.index('"', start)]
    async with person.http.get(person.base + url) as resp:
        assert resp.status == 200 and resp.content_type == "text/css"
        assert resp.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        etag = resp.headers["ETag"]
    async with person.http.get(person.base + "/static/ui/base.css",
                               headers={"If-None-Match": etag}) as resp:
        assert resp.status == 304 and resp.headers["Cache-Control"] == "no-cache"
    for path in ("/static/ui/nope.css", "/static/ui/%2e%2e/%2e%2e/web.py"):
        async with person.http.get(URL(person.base + path, encoded=True)) as resp:
            assert resp.status == 404, path


async def test_logout_ends_the_session(staff: Callable[[], Staff]) -> None:
    person = staff()
    await person.login("clerk1")
    session = person.http.cookie_jar.filter_cookies(URL(person.base))["session"].value
    page = await person.post("/logout", {}, csrf=(await person.get("/")).csrf)
    assert page.url.endswith("/login") and "Bạn đã đăng xuất" in page.text
    async with person.http.get(person.base + "/api/me",
                               headers={"Authorization": f"Bearer {session}"}) as resp:
        assert resp.status == 401


async def test_changing_the_password(staff: Callable[[], Staff]) -> None:
    person = staff()
    await person.login("clerk1")
    await person.get("/password")
    page = await person.post("/password", {"old": "nope-nope-1", "new": "new-password-1",
                                           "confirm": "new-password-1"})
    assert page.status == 422 and "Mật khẩu hiện tại không đúng" in page.text
    page = await person.post("/password", {"old": PASSWORD, "new": "new-password-1",
                                           "confirm": "new-password-2"})
    assert page.status == 422 and "không giống nhau" in page.text
    page = await person.post("/password", {"old": PASSWORD, "new": "short",
                                           "confirm": "short"})
    assert page.status == 422 and "ít nhất 8 ký tự" in page.text
    page = await person.post("/password", {"old": PASSWORD, "new": "new-password-1",
                                           "confirm": "new-password-1"})
    assert page.url.endswith("/login") and "Đã đổi mật khẩu" in page.text
    assert (await person.get("/", allow_redirects=False)).status == 303  # logged out
    assert (await person.login("clerk1")).status == 401
    page = await person.login("clerk1", "new-password-1")
    assert page.status == 200 and page.url.endswith("/")


def _birth() -> dict[str, object]:
    return birth(child_birth_date="2025-01-01")
