"""The statistics as files: the figures table (one row per line, hall, department, item, clerk
or day, then the total) as CSV, and the same plus the daily series as XLSX (openpyxl).

Building a file is CPU work; the views run these functions in a thread.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

from openpyxl import Workbook

from supervision.stats_models import RowFigures, StatsRead

CSV_TYPE = "text/csv; charset=utf-8"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _min(s: float | None) -> float | None:
    return None if s is None else round(s / 60, 1)


def _pct(x: float | None) -> float | None:
    return None if x is None else round(100 * x, 1)


def _r(x: float | None, n: int = 2) -> float | None:
    return None if x is None else round(x, n)


LEVEL_NAMES = (
    (5, "非常满意", "very satisfied"),
    (4, "满意", "satisfied"),
    (3, "基本满意", "fairly satisfied"),
    (2, "不满意", "dissatisfied"),
    (1, "非常不满意", "very dissatisfied"),
)


def _level(i: int) -> Callable[[RowFigures], int]:
    return lambda f: f.levels[i]


# (zh, en, value of a table row's figures)
COLUMNS: tuple[tuple[str, str, Callable[[RowFigures], Any]], ...] = (
    ("取号", "taken", lambda f: f.taken),
    ("办结", "served", lambda f: f.served),
    ("过号", "no-shows", lambda f: f.no_shows),
    ("取消", "cancelled", lambda f: f.cancelled),
    ("转办", "transferred", lambda f: f.transferred),
    ("平均等候(分)", "wait mean (min)", lambda f: _min(f.wait_mean_s)),
    ("等候中位数(分)", "wait p50 (min)", lambda f: _min(f.wait_p50_s)),
    ("等候P90(分)", "wait p90 (min)", lambda f: _min(f.wait_p90_s)),
    ("平均办理(分)", "handling mean (min)", lambda f: _min(f.handling_mean_s)),
    ("服务水平(%)", "service level (%)", lambda f: _pct(f.service_level)),
    ("视频通话", "calls", lambda f: f.calls),
    ("接通率(%)", "connected (%)", lambda f: _pct(f.connected_rate)),
    ("质量差(%)", "poor calls (%)", lambda f: _pct(f.poor_rate)),
    ("评价数", "ratings", lambda f: f.rated),
    ("平均分", "mean score", lambda f: _r(f.mean_score)),
    ("满意率(%)", "satisfied (%)", lambda f: _pct(f.satisfied_rate)),
    *((zh, en, _level(i)) for i, (_k, zh, en) in enumerate(LEVEL_NAMES)),
)

# (zh, en, the series' list, how a value is written)
DAILY: tuple[tuple[str, str, str, Callable[[Any], Any]], ...] = (
    ("日期", "day", "day", lambda d: d.isoformat()),
    ("取号", "taken", "taken", lambda v: v),
    ("办结", "served", "served", lambda v: v),
    ("过号", "no-shows", "no_shows", lambda v: v),
    ("取消", "cancelled", "cancelled", lambda v: v),
    ("平均等候(分)", "wait mean (min)", "wait_mean_s", _min),
    ("等候P90(分)", "wait p90 (min)", "wait_p90_s", _min),
    ("服务水平(%)", "service level (%)", "service_level", _pct),
    ("平均办理(分)", "handling mean (min)", "handling_mean_s", _min),
    ("评价数", "ratings", "rated", lambda v: v),
    ("满意率(%)", "satisfied (%)", "satisfied_rate", _pct),
)
BY = {
    "line": ("窗口", "line"),
    "hall": ("服务大厅", "hall"),
    "department": ("部门", "department"),
    "item": ("事项", "item"),
    "clerk": ("工作人员", "clerk"),
    "day": ("日期", "day"),
}


def table(stats: StatsRead, lang: str) -> list[list[Any]]:
    """The figures table: a header, a row per breakdown row, the total."""
    en = lang == "en"
    by = BY[str(stats.by)]
    head = [by[1] if en else by[0], "part of" if en else "所属"]
    head += [c[1] if en else c[0] for c in COLUMNS]
    rows: list[list[Any]] = [head]
    for r in stats.breakdown:
        name = (r.name_en or r.name) if en else r.name
        rows.append([name, r.parent, *(c[2](r.figures) for c in COLUMNS)])
    rows.append(["total" if en else "合计", "", *(c[2](stats.total_row) for c in COLUMNS)])
    return rows


def daily(stats: StatsRead, lang: str) -> list[list[Any]]:
    en = lang == "en"
    series = stats.daily
    rows: list[list[Any]] = [[c[1] if en else c[0] for c in DAILY]]
    for i in range(len(series.day)):
        rows.append([write(getattr(series, name)[i]) for _zh, _en, name, write in DAILY])
    return rows


def _period(stats: StatsRead, lang: str) -> str:
    p = stats.period
    word = "period" if lang == "en" else "统计期间"
    return f"{word}: {p.first_day.isoformat()} – {p.last_day.isoformat()}"


def to_csv(stats: StatsRead, lang: str) -> bytes:
    """UTF-8 with a byte-order mark, so spreadsheet programs read the Chinese right."""
    out = io.StringIO()
    w = csv.writer(out)
    for row in table(stats, lang):
        w.writerow(["" if v is None else v for v in row])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def to_xlsx(stats: StatsRead, lang: str) -> bytes:
    en = lang == "en"
    book = Workbook(write_only=True)
    sheet = book.create_sheet("figures" if en else "统计")
    sheet.append([_period(stats, lang)])
    for row in table(stats, lang):
        sheet.append(row)
    days = book.create_sheet("daily" if en else "每日")
    for row in daily(stats, lang):
        days.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def filename(stats: StatsRead, ext: str) -> str:
    p = stats.period
    return f"statistics-{p.first_day.isoformat()}-{p.last_day.isoformat()}-{stats.by}.{ext}"
