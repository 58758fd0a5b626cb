"""Resident ID numbers (GB 11643-1999) and phone numbers: what users type, what they get back."""

from __future__ import annotations

import datetime as dt

import pytest

from core.errors import Invalid
from core.idnumber import IdNumber, check_char, mask, normalize_phone, parse

# Textbook example of GB 11643-1999. Check by hand: the first 17 digits 11010519491231002
# weighted by 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2 sum to
# 7+9+0+5+0+20+2+9+24+27+7+18+30+5+0+0+4 = 167; 167 mod 11 = 2 -> "10X98765432"[2] = "X".
# Beijing Chaoyang (110105), born 1949-12-31, sequence 002 (17th digit 2, even: female).
TEXTBOOK = "11010519491231002X"
TODAY = dt.date(2024, 6, 15)


def make(region: str = "330206", birth: str = "19850704", seq: str = "123") -> str:
    """A valid 18-character ID number with the right check character."""
    first17 = region + birth + seq
    assert len(first17) == 17
    return first17 + check_char(first17)


def with_x_check() -> str:
    """A valid number whose check character is X."""
    for n in range(1000):
        number = make(seq=f"{n:03d}")
        if number.endswith("X"):
            return number
    raise AssertionError("no sequence number gives check character X")


def wrong_check(number: str) -> tuple[str, str]:
    """The same number with a wrong check character, and that character."""
    bad = "0" if number[17] != "0" else "1"
    return number[:17] + bad, bad


def raises_invalid(raw: str, **kw: dt.date) -> Invalid:
    with pytest.raises(Invalid) as info:
        parse(raw, **kw)
    return info.value


# -- valid numbers


def test_textbook_example_is_valid() -> None:
    assert check_char("11010519491231002") == "X"
    got = parse(TEXTBOOK, today=TODAY)
    assert got == IdNumber(number=TEXTBOOK, birth_date=dt.date(1949, 12, 31), sex="female")


def test_valid_number_gives_birth_date_and_sex() -> None:
    number = make(birth="19850704", seq="123")  # 17th digit 3: odd, male
    got = parse(number, today=TODAY)
    assert got.number == number
    assert got.birth_date == dt.date(1985, 7, 4)
    assert got.sex == "male"


@pytest.mark.parametrize(
    ("digit", "sex"),
    [("0", "female"), ("1", "male"), ("2", "female"), ("7", "male"), ("8", "female")],
)
def test_sex_follows_parity_of_17th_digit(digit: str, sex: str) -> None:
    assert parse(make(seq="12" + digit), today=TODAY).sex == sex


def test_lowercase_x_is_accepted_and_normalized() -> None:
    number = with_x_check()
    got = parse(number.lower(), today=TODAY)
    assert got.number == number
    assert got.number.endswith("X")


def test_spaces_are_stripped() -> None:
    number = make()
    spaced = f"  {number[:6]} {number[6:14]} {number[14:]}  "
    assert parse(spaced, today=TODAY).number == number


def test_birth_date_today_is_not_future() -> None:
    number = make(birth="20240615")
    assert parse(number, today=TODAY).birth_date == TODAY


@pytest.mark.parametrize("region", ["11", "33", "65", "71", "81", "82", "83"])
def test_all_province_kinds_accepted(region: str) -> None:
    assert parse(make(region=region + "0101"), today=TODAY).number.startswith(region)


# -- errors


@pytest.mark.parametrize("raw", ["", "3302", make()[:17], make() + "1"])
def test_wrong_length(raw: str) -> None:
    err = raises_invalid(raw)
    assert err.code == "id_number.length"
    assert err.params == {"length": len(raw)}
    assert str(len(raw)) in err.message("en")
    assert f"当前为 {len(raw)} 位" in err.message("zh")


@pytest.mark.parametrize(
    "raw",
    [
        "3302A6198507041231",  # letter among the first 17
        "33020619850704123Y",  # last character neither digit nor X
        "X30206198507041231",  # X anywhere but last
        "３30206198507041231",  # full-width digit among the first 17
        make()[:17] + "１",  # full-width check character
    ],
)
def test_bad_characters(raw: str) -> None:
    assert len(raw) == 18
    err = raises_invalid(raw)
    assert err.code == "id_number.chars"
    assert err.params == {}
    assert "X" in err.message("zh")


@pytest.mark.parametrize("region", ["99", "00", "10", "66", "84"])
def test_unknown_province(region: str) -> None:
    err = raises_invalid(make(region=region + "0101"))
    assert err.code == "id_number.region"
    assert err.params == {"region": region}
    assert region in err.message("zh")
    assert region in err.message("en")


@pytest.mark.parametrize("birth", ["20230230", "19851301", "19850100", "18991231"])
def test_impossible_birth_date(birth: str) -> None:
    err = raises_invalid(make(birth=birth), today=TODAY)
    assert err.code == "id_number.birth_date"
    assert err.params == {"birth": birth}
    assert birth in err.message("zh")


def test_birth_in_the_future() -> None:
    err = raises_invalid(make(birth="20240616"), today=TODAY)
    assert err.code == "id_number.birth_future"
    assert err.params == {"birth": "2024-06-16"}
    assert "2024-06-16" in err.message("en")


def test_future_is_relative_to_today_argument() -> None:
    number = make(birth="20240616")
    assert parse(number, today=dt.date(2024, 6, 16)).birth_date == dt.date(2024, 6, 16)


def test_wrong_check_character() -> None:
    number = make()
    bad, got = wrong_check(number)
    err = raises_invalid(bad, today=TODAY)
    assert err.code == "id_number.checksum"
    assert err.params == {"expected": number[17], "got": got}
    zh = err.message("zh")
    assert f"最后一位应为 {number[17]}" in zh
    assert f"实际为 {got}" in zh
    assert f"should be {number[17]}, not {got}" in err.message("en")


def test_textbook_with_digit_instead_of_x() -> None:
    err = raises_invalid(TEXTBOOK[:17] + "0", today=TODAY)
    assert err.code == "id_number.checksum"
    assert err.params == {"expected": "X", "got": "0"}
    assert "应为 X" in err.message("zh")


def test_invalid_is_a_422_error() -> None:
    err = raises_invalid("123")
    assert err.status == 422
    assert err.to_dict("en") == {
        "code": "id_number.length",
        "message": "An ID number has 18 characters; this one has 3",
    }


# -- masking and age


def test_mask_keeps_first_four_and_last_four() -> None:
    assert mask(TEXTBOOK) == "1101" + "*" * 10 + "002X"
    assert len(mask(TEXTBOOK)) == 18


def test_masked_property_hides_birth_date() -> None:
    got = parse(make(birth="19850704"), today=TODAY)
    assert got.masked == got.number[:4] + "**********" + got.number[-4:]
    assert "19850704" not in got.masked


@pytest.mark.parametrize(
    ("day", "age"),
    [
        (dt.date(2024, 7, 3), 38),  # day before the birthday
        (dt.date(2024, 7, 4), 39),  # the birthday itself
        (dt.date(2024, 7, 5), 39),
        (dt.date(2025, 1, 1), 39),
        (dt.date(1985, 7, 4), 0),
    ],
)
def test_age_on_around_birthday(day: dt.date, age: int) -> None:
    assert parse(make(birth="19850704"), today=TODAY).age_on(day) == age


def test_age_of_leap_day_birth() -> None:
    person = parse(make(birth="20000229"), today=TODAY)
    assert person.age_on(dt.date(2023, 2, 28)) == 22
    assert person.age_on(dt.date(2023, 3, 1)) == 23


# -- phone numbers


@pytest.mark.parametrize(
    ("raw", "phone"),
    [
        ("13800138000", "13800138000"),
        ("19912345678", "19912345678"),
        (" 138 0013 8000 ", "13800138000"),
        ("+8613800138000", "13800138000"),
        ("+86 138 0013 8000", "13800138000"),
        ("008613800138000", "13800138000"),
        ("0086 13800138000", "13800138000"),
        ("0574-87654321", "0574-87654321"),
        ("057487654321", "057487654321"),
        ("010-1234567", "010-1234567"),
        ("(0574) 87654321", "057487654321"),
        ("138-0013-8000", "13800138000"),  # how people write mobiles
        ("+86 574 8765 4321", "057487654321"),  # international form drops the trunk 0
        ("（0574）87654321", "057487654321"),  # full-width brackets from a Chinese IME
    ],
)
def test_normalize_phone_accepts(raw: str, phone: str) -> None:
    assert normalize_phone(raw) == phone


@pytest.mark.parametrize(
    "raw",
    [
        "138001380001",  # 12-digit mobile
        "1380013800",  # one digit short
        "12800138000",  # no mobile network starts 12
        "1380013800a",
        "phone",
        "",
        "574-87654321",  # landline without the leading 0
        "0574-876543",  # local number too short
        "0574--87654321",
        "+86 12 3456",
    ],
)
def test_normalize_phone_rejects(raw: str) -> None:
    with pytest.raises(Invalid) as info:
        normalize_phone(raw)
    assert info.value.code == "phone.invalid"
    assert "11 位手机号" in info.value.message("zh")
