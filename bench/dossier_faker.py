"""Realistic birth registrations for the benchmarks: Faker `vi_VN`, seeded, as a commune takes them."""

from __future__ import annotations

import logging
import random
from datetime import date, timedelta
from typing import Any

from faker import Faker

log = logging.getLogger(__name__)

VILLAGES = ("Nà Khá", "Khuổi Phầy", "Bản Tát", "Nà Mỏ", "Khuôn Khiển", "Phiêng Mơ", "Nà Chác",
            "Bản Va", "Khau Làn", "Nặm Đăm", "Thôm Mẻ", "Nà Lầu")
ETHNICITIES = ("Tày",) * 5 + ("Dao",) * 3 + ("Kinh",) * 2 + ("H'Mông", "Nùng", "Sán Chay")
MIDDLE_MALE = ("Văn", "Văn", "Đức", "Minh", "Hữu", "Quang", "Công", "Xuân", "Thành")
MIDDLE_FEMALE = ("Thị", "Thị", "Thị", "Ngọc", "Thu", "Thanh", "Hồng", "Kim")
PHONE_PREFIXES = ("032", "033", "034", "035", "036", "037", "038", "039", "070", "076", "077",
                  "078", "079", "081", "082", "083", "084", "085", "086", "088", "089", "090",
                  "091", "093", "094", "096", "097", "098")


class DossierFaker:
    """Birth-registration bodies (CONTRACT §7 POST /api/dossiers) for a mountain commune."""

    def __init__(self, seed: int, commune: str = "Côn Lôn", province_code: str = "008") -> None:
        self.fake = Faker("vi_VN")
        self.fake.seed_instance(seed)
        self.rng = random.Random(seed)
        self.commune = commune
        self.province_code = province_code

    def person(self, male: bool, family: str | None = None) -> str:
        """A Vietnamese full name: family, middle, given."""
        middle = self.rng.choice(MIDDLE_MALE if male else MIDDLE_FEMALE)
        given = self.fake.first_name_male() if male else self.fake.first_name_female()
        return f"{family or self.fake.last_name()} {middle} {given}"

    def citizen_id(self, birth_year: int, male: bool) -> str:
        """A 12-digit personal ID: province, century/sex digit, year, serial."""
        century = (birth_year // 100 - 19) * 2 + (0 if male else 1)
        serial = self.rng.randrange(1_000_000)
        return f"{self.province_code}{century}{birth_year % 100:02d}{serial:06d}"

    def phone(self) -> str:
        """A Vietnamese mobile number."""
        return self.rng.choice(PHONE_PREFIXES) + f"{self.rng.randrange(10_000_000):07d}"

    def address(self) -> str:
        """A village address in the commune."""
        return f"Thôn {self.rng.choice(VILLAGES)}, xã {self.commune}, tỉnh Tuyên Quang"

    def birth(self, today: date | None = None) -> dict[str, Any]:
        """One birth registration filed by the father or the mother."""
        today = today or date.today()
        father_year = self.rng.randint(1980, 2004)
        mother_year = self.rng.randint(1985, 2006)
        family = self.fake.last_name()
        father = self.person(True, family)
        mother = self.person(False)
        by_father = self.rng.random() < 0.6
        male_child = self.rng.random() < 0.51
        born = today - timedelta(days=self.rng.randint(1, 60))
        ethnicity = self.rng.choice(ETHNICITIES)
        return {
            "procedure_code": "1.001193",
            "applicant": {
                "full_name": father if by_father else mother,
                "citizen_id": self.citizen_id(father_year if by_father else mother_year,
                                              by_father),
                "phone": self.phone(),
                "address": self.address(),
            },
            "fields": {
                "relationship": "Cha" if by_father else "Mẹ",
                "child_full_name": self.person(male_child, family),
                "child_birth_date": born.isoformat(),
                "child_sex": "Nam" if male_child else "Nữ",
                "child_ethnicity": ethnicity,
                "child_nationality": "Việt Nam",
                "child_birth_place": self.rng.choice(
                    (f"Trạm y tế xã {self.commune}", "Bệnh viện Đa khoa khu vực Na Hang",
                     "Bệnh viện Đa khoa tỉnh Tuyên Quang", "Tại nhà")),
                "mother_full_name": mother,
                "mother_birth_year": str(mother_year),
                "father_full_name": father,
                "father_birth_year": str(father_year),
            },
        }
