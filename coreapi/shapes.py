"""Shapes shared by the shared domain's HTTP handlers."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from core.access import Principal
from core.models import Role

V1 = "/api/v1"
MAX_OFFSET = 1_000_000  # deeper paging than this is a forged or broken request


class Query(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=200)


class MeRead(BaseModel):
    id: int
    username: str
    display_name: str
    role: Role
    site_ids: list[int]
    line_ids: list[int]
    skills: list[str]
    csrf_token: str


def me_read(p: Principal, csrf: str) -> MeRead:
    return MeRead(
        id=p.staff_id,
        username=p.username,
        display_name=p.display_name,
        role=p.role,
        site_ids=sorted(p.site_ids),
        line_ids=sorted(p.line_ids),
        skills=list(p.skills),
        csrf_token=csrf,
    )
