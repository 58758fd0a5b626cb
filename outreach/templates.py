"""SMS templates: what each kind of message says, and the parameters it takes.

Carriers send only registered templates: a sign name (the 【云窗口】 in front), a template code,
and the parameters. So every message is a `Template` here, named by the `kind` callers pass to
`SmsGateway.send`. The text decides what goes into a message (PIPL Art. 28: nothing beyond what
the template needs); a parameter the template does not name is refused, not silently dropped.

The text uses `{name}` placeholders. Register it with Aliyun as `${name}` and with Tencent as
`{1}`, `{2}`, ... in the order of `params` (`Template.registration_text` prints both). The
codes the carriers assign come from the settings (`sms_aliyun_template_codes`,
`sms_tencent_template_codes`), since each deployment registers its own; `codes` here holds
defaults for a deployment that ships them in code.

To add a message, append a `Template(...)` to `TEMPLATES` below; tests check that its text
names exactly its parameters.
"""

from __future__ import annotations

import datetime as dt
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

CARRIERS = ("aliyun", "tencent")
SECRET_MASK = "******"


class TemplateError(ValueError):
    """A message that does not fit its template: a programming error, caught by tests."""


@dataclass(frozen=True)
class Template:
    name: str  # the `kind` callers pass
    text: str  # zh-CN, with {param} placeholders, without the sign name
    params: tuple[str, ...]  # the parameters, in Tencent's {1}, {2}, ... order
    # Not worth sending after this long (a login code outlives its validity): the outbox gives
    # up and marks the message expired. None: retried until it goes out.
    ttl: dt.timedelta | None = None
    # The parameters are secrets (a login code): the stored text shows them masked, and they
    # are erased from the outbox once the message is sent or given up.
    secret: bool = False
    codes: Mapping[str, str] = field(default_factory=dict)  # carrier -> registered code

    def placeholders(self) -> tuple[str, ...]:
        """The names the text uses, in order of first appearance."""
        seen: list[str] = []
        for _, name, spec, conv in string.Formatter().parse(self.text):
            if name is None:
                continue
            if not name.isidentifier() or spec or conv:
                raise TemplateError(f"template {self.name}: bad placeholder {{{name}}}")
            if name not in seen:
                seen.append(name)
        return tuple(seen)

    def check(self, params: Mapping[str, object] | None) -> dict[str, str]:
        """The parameters as text, or TemplateError when one is missing or unknown."""
        given = dict(params or {})
        missing = [p for p in self.params if p not in given]
        extra = sorted(set(given) - set(self.params))
        if missing or extra:
            raise TemplateError(
                f"template {self.name}: missing {missing or 'none'}, unknown {extra or 'none'}"
            )
        return {p: str(given[p]) for p in self.params}

    def render(self, params: Mapping[str, str], *, sign: str, masked: bool = False) -> str:
        """The text a resident reads, 【sign】 first; secrets masked when asked."""
        values = {p: SECRET_MASK for p in self.params} if masked and self.secret else params
        return f"【{sign}】{self.text.format(**values)}"

    def registration_text(self, carrier: str) -> str:
        """The text to register with a carrier, in its placeholder syntax."""
        if carrier == "aliyun":
            return self.text.format(**{p: "${" + p + "}" for p in self.params})
        if carrier == "tencent":
            return self.text.format(**{p: "{" + str(i) + "}" for i, p in enumerate(self.params, 1)})
        raise ValueError(f"unknown carrier {carrier}")


def _index(*templates: Template) -> Mapping[str, Template]:
    out: dict[str, Template] = {}
    for t in templates:
        if t.name in out:
            raise TemplateError(f"template {t.name} declared twice")
        out[t.name] = t
    return MappingProxyType(out)


TEMPLATES: Mapping[str, Template] = _index(
    Template(
        name="login.code",
        text="您的登录验证码为{code}，5分钟内有效。如非本人操作请忽略。",
        params=("code",),
        ttl=dt.timedelta(minutes=5),
        secret=True,
    ),
    Template(
        name="alert.wait",
        text="{line}的{number}号（{item}）已等待{minutes}分钟，请及时安排办理。",
        params=("line", "number", "item", "minutes"),
        ttl=dt.timedelta(hours=2),
    ),
    Template(
        name="alert.line",
        text="{line}{level}预警：{measure}{value}（阈值{threshold}），请及时调配窗口。",
        params=("line", "level", "measure", "value", "threshold"),
        ttl=dt.timedelta(hours=2),
    ),
    # a bad-rating follow-up past its deadline, to the line's department heads
    Template(
        name="followup.overdue",
        text="{line}办件{case}（{item}）的差评回访已超过{due}的整改时限，请尽快回访并整改。",
        params=("line", "case", "item", "due"),
        ttl=dt.timedelta(days=1),
    ),
    # home service (上门服务): each step of a request, to the resident with a sign-in link to
    # its status page; the staff member who took the request gets home.staff. Only the item,
    # the step and the visit's time and staff: never the basis, the address or the notes.
    Template(
        name="home.requested",
        text="您的上门服务申请（{item}）已收到，工作人员会尽快处理。查看进度：{link}",
        params=("item", "link"),
    ),
    Template(
        name="home.needs_info",
        text="您的上门服务申请（{item}）需要补充一些信息，请打开链接查看：{link}",
        params=("item", "link"),
    ),
    Template(
        name="home.accepted",
        text="您的上门服务申请（{item}）已受理，工作人员会与您约定上门时间。查看进度：{link}",
        params=("item", "link"),
    ),
    Template(
        name="home.declined",
        text="您的上门服务申请（{item}）未能受理，原因和其他办理方式请查看：{link}",
        params=("item", "link"),
    ),
    Template(
        name="home.scheduled",
        text="工作人员{staff}将于{time}上门为您办理{item}，请留意来电。查看详情：{link}",
        params=("staff", "time", "item", "link"),
    ),
    Template(
        name="home.visited",
        text="工作人员已上门为您办理{item}，办理结果会另行通知。查看进度：{link}",
        params=("item", "link"),
    ),
    Template(
        name="home.handled",
        text="您的{item}已办理完成，结果将送到您手中。查看进度：{link}",
        params=("item", "link"),
    ),
    Template(
        name="home.delivered",
        text="您的{item}办理结果已送达。查看详情：{link}",
        params=("item", "link"),
    ),
    Template(
        name="home.cancelled",
        text="您的上门服务申请（{item}）已取消。查看详情：{link}",
        params=("item", "link"),
    ),
    Template(
        name="home.staff",
        text="您登记的第{number}号上门服务申请（{item}）{step}。",
        params=("number", "item", "step"),
    ),
    # licence-expiry reminders (outreach/reminders.py): the licence's kind, its expiry date,
    # how far that is ("还有30天到期", "已过期1天") and a sign-in link to renew it; no name, no
    # licence or ID number. 回复TD退订 is the carriers' unsubscribe keyword (outreach/sms.py).
    Template(
        name="reminder.expiry",
        text="您的{licence}有效期至{date}，{when}。办理续期请点：{link} 回复TD退订",
        params=("licence", "date", "when", "link"),
        ttl=dt.timedelta(days=2),
    ),
    # appointments (scheduler/calendars.py): the hall, the line, the item and the time; no
    # name or ID number. The reminder goes the day before and is useless after the slot.
    Template(
        name="appointment.booked",
        text="您已预约{time}在{hall}{line}办理{item}，请携带相关材料按时到达。",
        params=("time", "hall", "line", "item"),
    ),
    Template(
        name="appointment.reminder",
        text="温馨提示：您预约了明天{time}在{hall}{line}办理{item}，如不能前往请提前取消。",
        params=("time", "hall", "line", "item"),
        ttl=dt.timedelta(days=1),
    ),
    # courier delivery of a licence (scheduler/deliveries.py): the licence's kind, the
    # courier's name, the day, and a sign-in link to follow it; the code at dispatch is the
    # resident's authorisation at the door (secret). Never the address.
    Template(
        name="delivery.created",
        text="您的{licence}将由证照速递员送到家中，预计{day}配送。查看进度：{link}",
        params=("licence", "day", "link"),
    ),
    Template(
        name="delivery.code",
        text="速递员{courier}今天为您送{licence}，签收验证码{code}，请当面告知速递员"
        "（请人代收时转告代收人）。查看进度：{link}",
        params=("courier", "licence", "code", "link"),
        ttl=dt.timedelta(hours=12),
        secret=True,
    ),
    Template(
        name="delivery.failed",
        text="今天未能为您送达{licence}（{reason}），将于{day}再次配送。查看进度：{link}",
        params=("licence", "reason", "day", "link"),
    ),
    Template(
        name="delivery.delivered",
        text="您的{licence}已由{who}签收。查看详情：{link}",
        params=("licence", "who", "link"),
    ),
)


def get(kind: str) -> Template:
    """The template named `kind`; TemplateError for a kind nobody declared."""
    try:
        return TEMPLATES[kind]
    except KeyError:
        raise TemplateError(f"no SMS template {kind!r}; add it to outreach/templates.py") from None


def parse_codes(raw: str) -> dict[str, str]:
    """`kind=code,kind=code` (a setting) as a mapping; ValueError on a malformed entry."""
    out: dict[str, str] = {}
    for part in raw.split(","):
        if not part.strip():
            continue
        kind, sep, code = part.partition("=")
        if not sep or not kind.strip() or not code.strip():
            raise ValueError(f"template codes: expected kind=code, got {part.strip()!r}")
        out[kind.strip()] = code.strip()
    return out


def codes_for(carrier: str, overrides: str) -> dict[str, str]:
    """Every template's code at `carrier`: the setting's first, then the template's own.

    Raises ValueError naming the kinds without a code (or an unknown kind in the setting), so a
    node configured for a carrier refuses to start instead of failing each message.
    """
    given = parse_codes(overrides)
    unknown = sorted(set(given) - set(TEMPLATES))
    if unknown:
        raise ValueError(f"{carrier} template codes for unknown kinds: {', '.join(unknown)}")
    codes = {name: given.get(name) or t.codes.get(carrier, "") for name, t in TEMPLATES.items()}
    missing = sorted(name for name, code in codes.items() if not code)
    if missing:
        raise ValueError(
            f"no {carrier} template code for: {', '.join(missing)} "
            f"(set CLOUDWINDOW_SMS_{carrier.upper()}_TEMPLATE_CODES)"
        )
    return codes
