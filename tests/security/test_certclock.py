"""Certificate dates judged by the hub's time and a floor of time known to have passed."""

from __future__ import annotations

import pytest

from central_hub import tls
from service import certclock, pki
from service.certclock import TimeView, check_dates
from service.dossier_store import wall_clock_ms

DAY_MS = 86_400_000


def test_dates_by_the_hubs_time_and_the_floor() -> None:
    now = wall_clock_ms()
    _, ca = tls.create_ca("CA", now)
    start, end = pki.starts_ms(ca), pki.expires_ms(ca)
    check_dates(ca, TimeView(now), "CA")
    check_dates(ca, TimeView(None), "CA")  # the hub's time not known yet: only the floor
    with pytest.raises(certclock.CertDateError) as early:
        check_dates(ca, TimeView(start - DAY_MS), "CA")
    assert early.value.reason == certclock.NOT_YET_VALID
    assert "by the hub's clock" in str(early.value)
    with pytest.raises(certclock.CertDateError) as late:
        check_dates(ca, TimeView(end), "CA")
    assert late.value.reason == certclock.EXPIRED
    # a certificate that expired before a time already seen is refused whatever the peer says
    # the time is now (a stolen, long-expired key answering with an old time)
    with pytest.raises(certclock.CertDateError) as floor:
        check_dates(ca, TimeView(start + 1, floor_ms=end + 1), "CA")
    assert floor.value.reason == certclock.EXPIRED_BEFORE_FLOOR
    with pytest.raises(certclock.CertDateError):
        check_dates(ca, TimeView(None, floor_ms=end), "CA")


def test_openssl_date_failures_are_recognized() -> None:
    assert certclock.openssl_date_failure(Exception(
        "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: certificate is not yet valid"))
    assert certclock.openssl_date_failure(Exception("sslv3 alert certificate expired"))
    assert not certclock.openssl_date_failure(Exception("self-signed certificate in chain"))
    wrapped = OSError("x")
    wrapped.__cause__ = certclock.CertDateError(certclock.EXPIRED, "x", 0, 1, 2)
    assert certclock.date_error(wrapped) is wrapped.__cause__
