"""The admin's users page and the leader's statistics."""

from __future__ import annotations

from collections.abc import Callable

from tests.harness import PASSWORD, EdgeHandle, Net
from tests.ui.conftest import Staff
from tests.ui.seed import seed_desk


async def test_an_admin_adds_resets_changes_and_disables_users(
        staff: Callable[[], Staff]) -> None:
    admin = staff()
    await admin.login("admin1")
    page = await admin.get("/users")
    assert "clerk1" in page.text and "leader1" in page.text
    page = await admin.post("/users", {"username": "Bad Name", "role": "clerk",
                                       "password": "x"})
    assert page.status == 422 and "Tên đăng nhập gồm 2–32 ký tự" in page.text
    assert "ít nhất 8 ký tự" in page.text
    page = await admin.post("/users", {"username": "clerk1", "role": "clerk",
                                       "password": "long-enough-1"})
    assert page.status == 422 and "Tên đăng nhập này đã có" in page.text
    page = await admin.post("/users", {"username": "clerk2", "role": "clerk",
                                       "password": "long-enough-1"})
    assert "Đã thêm người dùng clerk2" in page.text

    newbie = staff()
    assert (await newbie.login("clerk2", "long-enough-1")).url.endswith("/")
    page = await admin.post("/users/clerk2/password", {"password": "reset-pass-22"})
    assert "Đã đặt lại mật khẩu cho clerk2" in page.text
    assert (await newbie.get("/", allow_redirects=False)).status == 303  # sessions ended
    assert (await newbie.login("clerk2", "reset-pass-22")).url.endswith("/")
    page = await admin.post("/users/clerk2/role", {"role": "leader"})
    assert "Đã đổi vai trò của clerk2" in page.text
    assert (await newbie.login("clerk2", "reset-pass-22")).status == 200
    assert (await newbie.get("/stats")).status == 200
    page = await admin.post("/users/clerk2/disable", {})
    assert "Đã khóa tài khoản clerk2" in page.text
    assert (await newbie.login("clerk2", "reset-pass-22")).status == 401
    page = await admin.post("/users/clerk2/enable", {})
    assert (await newbie.login("clerk2", "reset-pass-22")).url.endswith("/")
    page = await admin.post("/users/admin1/disable", {})
    assert "Không thực hiện được" in page.text  # not oneself
    assert (await admin.get("/users")).status == 200


async def test_a_leader_reads_statistics(net: Net, edge: EdgeHandle,
                                         staff: Callable[[], Staff]) -> None:
    await seed_desk(net, edge)
    leader = staff()
    await leader.login("leader1", PASSWORD)
    page = await leader.get("/stats")
    assert page.status == 200
    assert "Hồ sơ theo trạng thái" in page.text
    assert '<td class="num"><strong>7</strong></td>' in page.text
