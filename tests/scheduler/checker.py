"""An independent check of a plan against its problem: written from the problem format, not
from the solver, so a solver bug cannot hide in both."""

from __future__ import annotations

from typing import Any


def check(problem: dict[str, Any], plan: dict[str, Any], durations, distances) -> list[str]:
    """Every broken rule, as text; [] when the plan keeps them all."""
    bad: list[str] = []
    depot_at = {d["id"]: i for i, d in enumerate(problem["depots"])}
    nd = len(problem["depots"])
    visits = {v["id"]: (nd + i, v) for i, v in enumerate(problem["visits"])}
    staff = {s["id"]: s for s in problem["staff"]}
    seen: dict[str, str] = {}
    used_shifts: set[tuple[str, int]] = set()
    total_distance = 0
    for r in plan["routes"]:
        s = staff.get(r["staff"])
        if s is None:
            bad.append(f"route of unknown staff {r['staff']}")
            continue
        if not 0 <= r["shift"] < len(s["shifts"]):
            bad.append(f"{s['id']}: no shift {r['shift']}")
            continue
        if (s["id"], r["shift"]) in used_shifts:
            bad.append(f"{s['id']}: shift {r['shift']} planned twice")
        used_shifts.add((s["id"], r["shift"]))
        sh = s["shifts"][r["shift"]]
        if r["depot"] != s["depot"]:
            bad.append(f"{s['id']}: route from {r['depot']}, not their depot {s['depot']}")
        home = depot_at[s["depot"]]
        t, here, dist, load = r["start"], home, 0, 0
        if t < clock(sh["start"]):
            bad.append(f"{s['id']}: leaves at {t} before the shift starts")
        if sh.get("max_visits") is not None and len(r["stops"]) > sh["max_visits"]:
            bad.append(f"{s['id']}: {len(r['stops'])} visits, more than {sh['max_visits']}")
        for st in r["stops"]:
            if st["visit"] not in visits:
                bad.append(f"unknown visit {st['visit']}")
                continue
            if st["visit"] in seen:
                bad.append(f"{st['visit']} visited twice")
            seen[st["visit"]] = s["id"]
            p, v = visits[st["visit"]]
            missing = set(v.get("skills", [])) - set(s.get("skills", []))
            if missing:
                bad.append(f"{st['visit']}: {s['id']} lacks {sorted(missing)}")
            arrive = t + durations[here][p]
            dist += distances[here][p]
            if st["arrival"] < arrive:
                bad.append(f"{st['visit']}: arrives at {st['arrival']}, cannot before {arrive}")
            w = v["windows"][st["window"]]
            if st["start"] < max(st["arrival"], clock(w["start"])):
                bad.append(f"{st['visit']}: starts before it arrives or before its window")
            if st["end"] != st["start"] + v["duration"]:
                bad.append(f"{st['visit']}: lasts {st['end'] - st['start']}, not {v['duration']}")
            if st["end"] > clock(w["end"]):
                bad.append(f"{st['visit']}: ends at {st['end']}, after its window")
            load += v.get("load", 0)
            t, here = st["end"], p
        back = t + durations[here][home]
        dist += distances[here][home]
        if r["end"] < back:
            bad.append(f"{s['id']}: back at {back}, route says {r['end']}")
        if max(back, r["end"]) > clock(sh["end"]):
            bad.append(f"{s['id']}: back at {back}, after the shift ends {clock(sh['end'])}")
        if s.get("capacity") is not None and load > s["capacity"]:
            bad.append(f"{s['id']}: load {load} over capacity {s['capacity']}")
        if r["distance"] != dist:
            bad.append(f"{s['id']}: distance {r['distance']}, the matrix says {dist}")
        total_distance += dist
    out = {u["visit"] for u in plan["unserved"]}
    for vid, (_, v) in visits.items():
        if (vid in seen) == (vid in out):
            bad.append(f"{vid}: {'both served and unserved' if vid in seen else 'missing'}")
        if v.get("required") and vid in out:
            u = next(u for u in plan["unserved"] if u["visit"] == vid)
            if not u["required"]:
                bad.append(f"{vid}: required, but not marked so among the unserved")
    if plan["totals"]["distance"] != total_distance:
        bad.append(f"total distance {plan['totals']['distance']}, routes add to {total_distance}")
    if plan["totals"]["served"] != len(seen):
        bad.append("served count is wrong")
    return bad


def clock(v: int | str) -> int:
    if isinstance(v, int):
        return v
    h, m, *s = (int(x) for x in v.split(":"))
    return h * 3600 + m * 60 + (s[0] if s else 0)
