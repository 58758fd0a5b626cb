"""The aiohttp application factory: every resource lives in a cleanup context under an AppKey."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

import coreapi
from core.db import Database
from core.jobs import Jobs
from core.pii import PiiCipher
from core.settings import Settings
from core.staff import Passwords
from httpapi import keys
from httpapi.api import Api
from httpapi.observability import Metrics, healthz, metrics_view, observe, readyz
from media import retention
from media import views as media_views
from media.service import Recordings
from outreach import home_views, licence_views, reminders, sms_views
from outreach.sms import build_gateway, sending
from scheduler import calendars, deliveries, delivery_views
from scheduler import views as scheduler_views
from scheduler.planning.worker import Planner
from signaling import views as signaling_views
from signaling.server import Signaling
from supervision import rollup
from supervision import views as supervision_views
from supervision.sweeps import alert_loop
from supervision.tidal_sweeps import tidal_loop
from uploads import views as upload_views
from uploads.service import Materials
from uploads.storage import build_store

log = logging.getLogger("cloudwindow.app")
UI_DIST = Path(__file__).parent / "ui" / "dist"
# The node's periodic jobs (core/jobs.py): a domain adds its own in create_app.
JOBS: web.AppKey[Jobs] = web.AppKey("jobs", Jobs)


def build_api() -> Api:
    api = Api()
    coreapi.register(api)
    home_views.register(api)
    licence_views.register(api)
    sms_views.register(api)
    scheduler_views.register(api)
    supervision_views.register(api)
    upload_views.register(api)
    signaling_views.register(api)
    media_views.register(api)
    return api


def create_app(settings: Settings) -> web.Application:
    """A fully wired app; nothing is connected until it starts."""
    app = web.Application(
        middlewares=[observe],
        client_max_size=settings.max_json_body_bytes,
        # Uploads to the local store stream through here: read the socket in 1 MiB pieces, not
        # aiohttp's default 64 KiB, so a large body costs fewer loop iterations.
        handler_args={"read_bufsize": 1 << 20},
    )
    app[keys.SETTINGS] = settings
    app[keys.METRICS] = Metrics()
    app[keys.API] = build_api()
    # Constructing these opens no connection (engines and Redis connect on first use), so
    # they can be built here, where routes may still be added; cleanup contexts close them.
    db = Database(
        settings.effective_database_url,
        echo=settings.database_echo,
        pool_size=settings.database_pool_size,
    )
    app[keys.DB] = db
    signaling = Signaling(settings, db)
    signaling.attach(app)
    app[signaling_views.SIGNALING] = signaling
    app[keys.DELIVER] = signaling.deliver
    app[keys.SMS] = build_gateway(settings)
    jobs = Jobs(
        db,
        node_id=signaling.node_id,
        poll_seconds=settings.job_poll_seconds,
        history=dt.timedelta(days=settings.job_history_days),
    )
    reminders.register_jobs(jobs, settings=settings, sms=lambda: app[keys.SMS])
    rollup.register_jobs(jobs, settings=settings)  # statistics (supervision/rollup.py)
    calendars.register_jobs(jobs, settings=settings, sms=lambda: app[keys.SMS])  # no-shows
    deliveries.register_jobs(
        jobs, settings=settings, cipher=lambda: app[keys.CIPHER], sms=lambda: app[keys.SMS]
    )  # courier delivery orders from completed cases (scheduler/deliveries.py)
    app[JOBS] = jobs
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_secrets)
    app.cleanup_ctx.append(_signaling)
    app.on_shutdown.append(_drain_signaling)
    app.cleanup_ctx.append(_materials)
    app.cleanup_ctx.append(_supervision)
    app.cleanup_ctx.append(_planner)
    app.cleanup_ctx.append(_sms)
    app.cleanup_ctx.append(_jobs)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_view)
    app[keys.API].install(app)
    upload_views.install_object_routes(app)
    _install_ui(app)
    return app


async def _database(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[keys.DB].dispose()


async def _signaling(app: web.Application) -> AsyncIterator[None]:
    await app[signaling_views.SIGNALING].start()
    yield
    await app[signaling_views.SIGNALING].stop()


async def _drain_signaling(app: web.Application) -> None:
    """On shutdown, before aiohttp waits for open connections: sockets move to other nodes."""
    await app[signaling_views.SIGNALING].drain()


async def _materials(app: web.Application) -> AsyncIterator[None]:
    """The object store (after the secrets: local links are signed), its sweep, and the
    recorder peers that write into it."""
    s = app[keys.SETTINGS]
    store = build_store(s, await asyncio.to_thread(s.load_secret_key))
    await store.start()
    signaling = app[signaling_views.SIGNALING]
    materials = Materials(
        s,
        store,
        app[keys.DB],
        deliver=app[keys.DELIVER],
        live_keys=[retention.segment_keys, deliveries.proof_keys],
        expiries=[retention.segment_expiry(app[keys.DB], store)],
    )
    app[upload_views.MATERIALS] = materials
    app[delivery_views.DELIVERY_FILES] = store  # photos and signatures of delivery proofs
    recordings = Recordings(s, app[keys.DB], store, signaling.node_id, app[keys.DELIVER])
    app[media_views.RECORDINGS] = recordings
    signaling.attach_media(recorder=recordings, snapshots=materials)
    await materials.apply_retention_rules()
    sweeper = asyncio.create_task(_sweep_forever(materials, s.material_sweep_interval_seconds))
    yield
    sweeper.cancel()
    await asyncio.gather(sweeper, return_exceptions=True)
    signaling.attach_media(recorder=None, snapshots=None)
    await recordings.close()  # finish and upload what is being recorded
    await store.close()


async def _supervision(app: web.Application) -> AsyncIterator[None]:
    """The wait-alert sweep; every node runs it, the alert rows keep each alert to one."""
    task = asyncio.create_task(
        alert_loop(
            db=app[keys.DB],
            settings=app[keys.SETTINGS],
            sms=app[keys.SMS],
            deliver=app[keys.DELIVER],
            node_id=app[signaling_views.SIGNALING].node_id,
        )
    )
    # tidal windows: shortfall per window and the end of moves at their time (own loop)
    tidal = asyncio.create_task(
        tidal_loop(
            db=app[keys.DB],
            settings=app[keys.SETTINGS],
            deliver=app[keys.DELIVER],
            node_id=app[signaling_views.SIGNALING].node_id,
        )
    )
    yield
    tidal.cancel()
    await asyncio.gather(tidal, return_exceptions=True)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def _jobs(app: web.Application) -> AsyncIterator[None]:
    """The periodic jobs, once per period across nodes (last: they use what the others start)."""
    task = asyncio.create_task(app[JOBS].run_forever(), name="jobs")
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def _sms(app: web.Application) -> AsyncIterator[None]:
    """This node's SMS sender: the outbox, through the configured carrier (none: recording)."""
    s, node_id = app[keys.SETTINGS], app[signaling_views.SIGNALING].node_id
    async with sending(app[keys.SMS], db=app[keys.DB], settings=s, node_id=node_id):
        yield


async def _planner(app: web.Application) -> AsyncIterator[None]:
    """The node's planning worker process, started on the first solve."""
    planner = Planner(app[keys.SETTINGS].planner_workers)
    app[scheduler_views.PLANNER] = planner
    yield
    await asyncio.to_thread(planner.close)


async def _sweep_forever(materials: Materials, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            report = await materials.sweep()
            if report.expired or report.abandoned or report.orphans or report.errors:
                log.info("materials sweep: %s", report)
        except Exception:
            log.exception("materials sweep failed")


async def _secrets(app: web.Application) -> AsyncIterator[None]:
    s = app[keys.SETTINGS]
    master = await asyncio.to_thread(s.load_secret_key)
    app[keys.CIPHER] = PiiCipher(master)
    app[keys.PASSWORDS] = await asyncio.to_thread(Passwords, s)
    yield


def _install_ui(app: web.Application) -> None:
    """Serve the built single-page app when web/ui/dist exists (make run builds it)."""
    dist = app[keys.SETTINGS].ui_dir or UI_DIST
    index = dist / "index.html"

    async def spa(_request: web.Request) -> web.StreamResponse:
        if index.exists():
            return web.FileResponse(index, headers={"Cache-Control": "no-cache"})
        return web.Response(
            text=(
                "<!doctype html><html lang='zh-CN'><meta charset='utf-8'><title>云窗口</title>"
                "<h1>云窗口 CloudWindow</h1><p>界面尚未构建：请运行 <code>make run</code>。"
                "</p><p>The web UI is not built: run <code>make run</code>. "
                "API: <a href='/api/v1/openapi.json'>/api/v1/openapi.json</a></p></html>"
            ),
            content_type="text/html",
        )

    if (dist / "assets").is_dir():
        app.router.add_static("/assets", dist / "assets")
    app.router.add_get("/", spa)
    for page in (
        "point",
        "clerk",
        "expert",
        "supervisor",
        "admin",
        "login",
        "resident",
        "operator",
        "coordinator",
        "courier",
        "field",
        "licences",
    ):
        app.router.add_get(f"/{page}", spa)
        app.router.add_get(f"/{page}/{{tail:.*}}", spa)
