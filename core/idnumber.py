"""Resident ID numbers (GB 11643-1999) and phone numbers: validation and what they tell."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from core.errors import Invalid

# GB 11643-1999: weights of the first 17 digits; (sum mod 11) indexes the check character.
WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK_CHARS = "10X98765432"
# GB/T 2260 province-level codes (71 Taiwan, 81 Hong Kong, 82 Macao, 83 residence permits).
PROVINCES = frozenset(
    "11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 "
    "50 51 52 53 54 61 62 63 64 65 71 81 82 83".split()
)
MOBILE = re.compile(r"^1[3-9]\d{9}$")
LANDLINE = re.compile(r"^0\d{2,3}-?\d{7,8}$")


@dataclass(frozen=True)
class IdNumber:
    number: str
    birth_date: dt.date
    sex: str  # "male" | "female"

    @property
    def masked(self) -> str:
        return mask(self.number)

    def age_on(self, day: dt.date) -> int:
        b = self.birth_date
        return day.year - b.year - ((day.month, day.day) < (b.month, b.day))


def check_char(first17: str) -> str:
    return CHECK_CHARS[sum(int(c) * w for c, w in zip(first17, WEIGHTS, strict=True)) % 11]


def parse(raw: str, *, today: dt.date | None = None) -> IdNumber:
    """Validate an 18-character ID number; the error says exactly what is wrong."""
    number = raw.strip().replace(" ", "").upper()
    if len(number) != 18:
        raise Invalid("id_number.length", length=len(number))
    if not (number[:17].isdecimal() and number[:17].isascii()) or number[17] not in "0123456789X":
        raise Invalid("id_number.chars")
    if number[:2] not in PROVINCES:
        raise Invalid("id_number.region", region=number[:2])
    birth_s = number[6:14]
    try:
        birth = dt.datetime.strptime(birth_s, "%Y%m%d").date()
    except ValueError:
        raise Invalid("id_number.birth_date", birth=birth_s) from None
    if birth.year < 1900:
        raise Invalid("id_number.birth_date", birth=birth_s)
    if birth > (today or dt.date.today()):
        raise Invalid("id_number.birth_future", birth=birth.isoformat())
    expected = check_char(number[:17])
    if number[17] != expected:
        raise Invalid("id_number.checksum", expected=expected, got=number[17])
    sex = "male" if int(number[16]) % 2 else "female"
    return IdNumber(number=number, birth_date=birth, sex=sex)


def mask(number: str) -> str:
    """Show only the first 4 and last 4 characters: 3302**********1234."""
    return number[:4] + "*" * (len(number) - 8) + number[-4:]


def normalize_phone(raw: str) -> str:
    """A mainland mobile (13800138000) or landline (0574-87654321), else Invalid.

    Accepts what people type: spaces, dashes or brackets, and a +86 / 0086 prefix (after
    which a landline's leading 0 is dropped, as in +86 574 8765 4321).
    """
    phone = re.sub(r"[\s()（）]", "", raw)
    international = phone.startswith(("+86", "0086"))
    if international:
        phone = phone[3:] if phone.startswith("+86") else phone[4:]
        phone = phone.lstrip("-")
    digits = phone.replace("-", "")
    if MOBILE.match(digits):
        return digits
    if international and not phone.startswith("0"):
        phone = "0" + phone
    if LANDLINE.match(phone) and phone.count("-") <= 1:
        return phone
    raise Invalid("phone.invalid")
