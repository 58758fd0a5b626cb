"""Templates: each names exactly its parameters, and a message that does not fit is refused."""

from __future__ import annotations

import pytest

from outreach import templates
from outreach.templates import TEMPLATES, Template, TemplateError


@pytest.mark.parametrize("kind", list(TEMPLATES))
def test_text_names_exactly_the_declared_parameters(kind: str) -> None:
    t = TEMPLATES[kind]
    assert t.name == kind
    assert len(set(t.params)) == len(t.params), "a parameter declared twice"
    assert set(t.placeholders()) == set(t.params)
    assert not t.text.startswith("【"), "the sign name is added by the gateway"
    rendered = t.render(t.check({p: "x" for p in t.params}), sign="云窗口")
    assert rendered.startswith("【云窗口】") and "{" not in rendered
    assert len(t.registration_text("aliyun")) < 500


def test_missing_or_unknown_parameters_are_programming_errors() -> None:
    t = templates.get("login.code")
    with pytest.raises(TemplateError, match="missing"):
        t.check({})
    with pytest.raises(TemplateError, match="unknown"):
        t.check({"code": "123456", "id_number": "330203195001011234"})
    with pytest.raises(TemplateError, match="no SMS template"):
        templates.get("login_code")
    assert t.check({"code": 123456}) == {"code": "123456"}


def test_registration_text_in_each_carriers_syntax() -> None:
    t = templates.get("alert.wait")
    assert t.registration_text("aliyun") == (
        "${line}的${number}号（${item}）已等待${minutes}分钟，请及时安排办理。"
    )
    assert t.registration_text("tencent") == "{1}的{2}号（{3}）已等待{4}分钟，请及时安排办理。"


def test_secrets_are_masked_in_the_stored_text() -> None:
    t = templates.get("login.code")
    assert t.secret and t.ttl is not None
    assert "123456" not in t.render({"code": "123456"}, sign="云窗口", masked=True)
    assert "123456" in t.render({"code": "123456"}, sign="云窗口")


def test_bad_placeholders_are_caught() -> None:
    with pytest.raises(TemplateError):
        Template(name="x", text="{code!r}", params=("code",)).placeholders()


def test_codes_come_from_settings_and_every_kind_needs_one() -> None:
    every = ",".join(f"{k}=SMS_{i}" for i, k in enumerate(TEMPLATES))
    codes = templates.codes_for("aliyun", every)
    assert set(codes) == set(TEMPLATES)
    with pytest.raises(ValueError, match=r"no aliyun template code for: .*login\.code"):
        templates.codes_for("aliyun", "alert.wait=SMS_1")
    with pytest.raises(ValueError, match="unknown kinds: nope"):
        templates.codes_for("aliyun", every + ",nope=SMS_9")
    with pytest.raises(ValueError, match="kind=code"):
        templates.parse_codes("login.code")
