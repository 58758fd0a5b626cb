"""One settings object for the whole app, read from CLOUDWINDOW_* environment variables."""

from __future__ import annotations

import datetime as dt
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

ENV_PREFIX = "CLOUDWINDOW_"


class Settings(BaseModel):
    """Every knob of CloudWindow; docs/settings.md lists them all (a test checks)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # -- serving
    host: str = Field("127.0.0.1", description="Address the HTTP server binds to.")
    port: int = Field(8080, ge=1, le=65535, description="TCP port the HTTP server listens on.")
    data_dir: Path = Field(
        Path("var"),
        description="Directory for the SQLite file, local objects and the generated secret key.",
    )
    log_level: str = Field("INFO", description="Python log level: DEBUG, INFO, WARNING, ERROR.")
    log_format: str = Field(
        "json",
        pattern="^(json|text)$",
        description="Log line format: json (one object a line) or text.",
    )
    max_json_body_bytes: int = Field(
        1_048_576, ge=1024, description="Largest JSON request body accepted, in bytes (413 above)."
    )
    ui_dir: Path | None = Field(
        None,
        description=(
            "Directory of the built web UI (index.html and assets/). Empty: web/ui/dist, "
            "which make run builds."
        ),
    )
    allowed_origins: str = Field(
        "",
        description=(
            "Comma-separated extra origins (scheme://host:port) allowed to send state-changing "
            "requests; the server's own origin is always allowed."
        ),
    )

    # -- database
    database_url: str = Field(
        "",
        description=(
            "SQLAlchemy async URL, e.g. postgresql+asyncpg://user@host/db. "
            "Empty: a SQLite file <data_dir>/cloudwindow.db."
        ),
    )
    database_pool_size: int = Field(10, ge=1, description="Connections kept per node (PostgreSQL).")
    database_echo: bool = Field(False, description="Log every SQL statement (debugging only).")

    # -- scale-out
    redis_url: str = Field(
        "",
        description=(
            "Redis URL (redis://host:6379/0). Set it on every node to run more than one node: "
            "socket.io rooms and call membership are then shared through Redis."
        ),
    )
    redis_namespace: str = Field(
        "cloudwindow",
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description=(
            "Prefix of CloudWindow's Redis keys and pub/sub channel; deployments sharing one "
            "Redis need different values."
        ),
    )
    node_id: str = Field(
        "", description="Name of this node in logs and presence rows. Empty: host name and pid."
    )

    # -- queue
    timezone: str = Field(
        "Asia/Shanghai", description="Time zone of the working day; ticket numbers restart daily."
    )
    ticket_answer_seconds: int = Field(
        60, ge=5, description="A called ticket not answered within this time is recalled."
    )
    ticket_max_recalls: int = Field(
        1, ge=0, description="Automatic recalls before an unanswered ticket is marked no-show."
    )
    default_handling_seconds: int = Field(
        480,
        ge=30,
        description=(
            "Handling time the tidal sizing assumes until a line has history (never shown as "
            "measured)."
        ),
    )

    wait_alert_minutes: int = Field(
        15,
        ge=1,
        le=24 * 60,
        description=(
            "A resident waiting longer than this alerts the line's department heads (in the "
            "app and by SMS), once per ticket; a line may set its own."
        ),
    )
    alert_sweep_interval_seconds: float = Field(
        10.0,
        gt=0,
        description="How often each node looks for tickets past their wait threshold.",
    )
    line_alert_waiting_yellow: int = Field(
        10, ge=1, description="People waiting on a line that raise its yellow alert (per line too)."
    )
    line_alert_waiting_red: int = Field(
        20, ge=1, description="People waiting on a line that raise its red alert (per line too)."
    )
    line_alert_taken_yellow: int = Field(
        40,
        ge=1,
        description="Tickets taken on a line in the rolling period that raise its yellow alert.",
    )
    line_alert_taken_red: int = Field(
        80,
        ge=1,
        description="Tickets taken on a line in the rolling period that raise its red alert.",
    )
    line_alert_taken_window_minutes: int = Field(
        60, ge=5, le=24 * 60, description="The rolling period over which tickets taken are counted."
    )
    line_alert_hysteresis: float = Field(
        0.2,
        ge=0,
        lt=1,
        description=(
            "A line leaves a level only once its measure drops below threshold x (1 - this), "
            "so a line hovering at a threshold does not flap."
        ),
    )
    # -- tidal windows (docs/supervision.md, "Tidal windows")
    tidal_window_minutes: int = Field(
        30,
        ge=5,
        le=240,
        description=(
            "Length of a tidal window: arrivals are counted over the last window, and a line "
            "must be short in two windows running before a move is suggested."
        ),
    )
    tidal_current_weight: float = Field(
        0.6,
        ge=0,
        le=1,
        description=(
            "Weight of the current window's arrivals in the blend with history (same weekday "
            "and time in past weeks); history gets the rest."
        ),
    )
    tidal_history_weeks: int = Field(
        4, ge=0, le=26, description="Past weeks of the same weekday and time blended in."
    )
    tidal_service_level: float = Field(
        0.8,
        gt=0,
        lt=1,
        description=(
            "Share of residents to call within the line's wait target (its wait-alert "
            "threshold); the tidal rule sizes clerks for it."
        ),
    )
    tidal_min_stay_minutes: int = Field(
        30, ge=1, le=24 * 60, description="Shortest tidal move; a moved clerk stays at least this."
    )
    tidal_default_stay_minutes: int = Field(
        60,
        ge=1,
        le=24 * 60,
        description="Default length of a suggested move (rounded up to a window boundary).",
    )
    tidal_max_stay_minutes: int = Field(
        480, ge=1, le=24 * 60, description="Longest tidal move that may be applied."
    )
    tidal_sweep_interval_seconds: float = Field(
        30.0,
        gt=0,
        description=(
            "How often each node records the lines' shortfall for the window and ends moves "
            "whose time has come."
        ),
    )
    followup_deadline_working_days: int = Field(
        5,
        ge=1,
        le=30,
        description=(
            "Working days (public holidays and adjusted workdays counted) the department heads "
            "have to call back and rectify a bad rating or complaint before it is overdue."
        ),
    )
    # -- statistics (docs/statistics.md)
    stats_rollup_interval_seconds: float = Field(
        60.0,
        gt=0,
        description=(
            "How often the statistics rollups are brought up to date (one node does each "
            "round); figures are as of the last round."
        ),
    )
    demo_history_days: int = Field(
        21,
        ge=0,
        le=400,
        description=(
            "Days of synthetic history `cloudwindow demo` writes for the demo district the first "
            "time, so the statistics have something to show (0: none)."
        ),
    )
    demo_history_per_year: int = Field(
        1_200_000,
        ge=1000,
        le=20_000_000,
        description=(
            "Tickets a year the history of `cloudwindow demo` is scaled to (the deployed district: "
            "about 3,500,000; less keeps the first start quick)."
        ),
    )
    appointment_slot_minutes: int = Field(
        15, ge=5, le=240, description="Length of one appointment slot on a window line."
    )
    appointment_slot_capacity: int = Field(
        2, ge=1, description="Appointments one line accepts for the same slot."
    )
    # appointment calendars (scheduler/calendars.py, docs/appointments.md)
    appointment_horizon_days: int = Field(
        14, ge=1, le=366, description="How many days ahead a slot can be booked (today is day 0)."
    )
    appointment_max_open: int = Field(
        3, ge=1, le=50, description="Open (booked, not yet due) appointments one resident may hold."
    )
    appointment_no_show_limit: int = Field(
        3,
        ge=0,
        le=100,
        description="Missed appointments within appointment_no_show_days that pause a "
        "resident's booking (0: never paused).",
    )
    appointment_no_show_days: int = Field(
        90, ge=1, le=3650, description="The window in days over which missed appointments count."
    )
    appointment_sweep_seconds: int = Field(
        300,
        ge=10,
        le=86400,
        description="How often appointments not checked in by their end are marked no-shows.",
    )
    appointment_reminder_at: dt.time = Field(
        dt.time(10, 0),
        description="Local time of the daily run that sends the SMS reminder for tomorrow's "
        "appointments (quiet hours, reminder_quiet_start/end, hold it back).",
    )

    # -- home-visit planning (docs/planning.md)
    planner_seconds: float = Field(
        20.0, gt=0, le=600, description="Solver time for one home-visit plan, in seconds."
    )
    planner_workers: int = Field(
        1,
        ge=1,
        le=16,
        description="Worker processes per node that solve plans (a solve holds one CPU).",
    )
    planner_speed_kmh: float = Field(
        25.0,
        gt=0,
        le=120,
        description="Travel speed for planning without a road router: urban driving, km/h.",
    )
    planner_detour: float = Field(
        1.3,
        ge=1.0,
        le=3.0,
        description="Road distance over straight-line distance, for planning without a road "
        "router.",
    )
    planner_road_router_url: str = Field(
        "",
        description="Base URL of an OSRM-compatible /table service for road travel times. "
        "Empty: straight-line distance x the detour factor at the planning speed.",
    )
    # -- visit plans and the visit day (docs/planning.md)
    plan_morning: str = Field(
        "09:00-12:00",
        pattern=r"^\d{2}:\d{2}-\d{2}:\d{2}$",
        description="Field staff's morning shift, and the window of a resident who asked for "
        "a morning visit (HH:MM-HH:MM).",
    )
    plan_afternoon: str = Field(
        "14:00-17:30",
        pattern=r"^\d{2}:\d{2}-\d{2}:\d{2}$",
        description="Field staff's afternoon shift (the gap after the morning is lunch), and "
        "the window of a resident who asked for an afternoon visit.",
    )
    plan_max_visits_per_shift: int = Field(
        0, ge=0, le=50, description="Most visits one person makes in a shift (0: no limit)."
    )
    plan_days_ahead: int = Field(
        30, ge=1, le=90, description="How far ahead a coordinator may plan visits, in days."
    )
    map_tile_url: str = Field(
        "",
        description="Map tile URL template for the visit-day map ({z}/{x}/{y}, Leaflet). "
        "Empty, or tiles that cannot be reached: a plain drawing from the coordinates.",
    )
    map_tile_attribution: str = Field(
        "", description="Attribution shown under the map when tiles are used."
    )
    map_nav_url: str = Field(
        "",
        description="Link a field worker taps to navigate to a stop, with {lat}, {lng} and "
        "{name} (a map app's URL scheme). Empty: a geo: link, which the tablet's map app opens.",
    )

    # -- calls
    call_rejoin_grace_seconds: int = Field(
        30, ge=1, description="A participant who drops may rejoin the same call within this time."
    )
    call_max_participants: int = Field(
        4, ge=2, le=8, description="Largest call (a full mesh: every peer sends to every other)."
    )
    expert_invite_seconds: int = Field(
        120, ge=10, description="An expert invitation nobody accepts expires after this time."
    )
    stun_urls: str = Field(
        "", description="Comma-separated STUN URLs given to clients (stun:host:3478)."
    )
    turn_urls: str = Field(
        "",
        description="Comma-separated TURN URLs (turn:host:3478?transport=udp, turns:host:5349).",
    )
    turn_secret: str = Field(
        "", description="coturn static-auth-secret for ephemeral TURN credentials (REST format)."
    )
    turn_ttl_seconds: int = Field(
        3600, ge=60, description="Lifetime of the TURN credentials handed to a client."
    )

    # -- sockets
    socket_events_per_second: float = Field(
        30.0, gt=0, description="Sustained socket events a connection may send per second."
    )
    socket_event_burst: int = Field(
        120, ge=1, description="Socket events a connection may send in a burst above the rate."
    )
    presence_ttl_seconds: int = Field(
        45,
        ge=5,
        description="A clerk counts as online while their node refreshed them this recently.",
    )
    sweep_interval_seconds: float = Field(
        2.0,
        gt=0,
        description="How often each node checks for unanswered tickets and dropped calls.",
    )
    shutdown_drain_seconds: float = Field(
        5.0,
        gt=0,
        le=300,
        description="On SIGTERM a node tells its clients to reconnect elsewhere and finishes "
        "the events in flight within this time, then stops.",
    )

    # -- materials and object storage
    storage_backend: str = Field(
        "local",
        pattern="^(local|s3)$",
        description="Where uploaded documents live: local (a directory) or s3 (any S3 API).",
    )
    storage_dir: Path | None = Field(
        None, description="Directory of the local object store. Empty: <data_dir>/objects."
    )
    s3_endpoint_url: str = Field(
        "", description="S3 API endpoint the server uses (http://127.0.0.1:8333). Empty: AWS."
    )
    s3_public_endpoint_url: str = Field(
        "",
        description=(
            "S3 endpoint as browsers reach it, used in presigned links when it differs from "
            "s3_endpoint_url (e.g. behind a reverse proxy). Empty: s3_endpoint_url."
        ),
    )
    s3_region: str = Field("us-east-1", description="S3 region used for SigV4 signing.")
    s3_bucket: str = Field(
        "cloudwindow",
        pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
        description="Bucket holding the documents (created at start-up if missing).",
    )
    s3_access_key_id: str = Field("", description="S3 access key id.")
    s3_secret_access_key: str = Field("", description="S3 secret access key.")
    s3_path_style: bool = Field(
        True,
        description="Path-style addressing (endpoint/bucket/key); false: virtual-hosted style.",
    )
    s3_max_threads: int = Field(
        8,
        ge=1,
        le=64,
        description="Threads running boto3 calls (they never run on the event loop).",
    )
    photo_max_side: int = Field(
        2048,
        ge=640,
        le=2560,
        description=(
            "Long side, in pixels, a tablet or phone brings a photo down to before uploading it "
            "(2048 px: an A4 page at ~175 dpi; bench/weak_uplink.py measures the time it saves)."
        ),
    )
    photo_quality: float = Field(
        0.82,
        ge=0.5,
        le=0.95,
        description="JPEG quality of a photo prepared on the device before upload.",
    )
    upload_max_bytes: int = Field(
        50 * 1024 * 1024,
        ge=1024,
        description="Largest document uploaded in one request; larger files use multipart upload.",
    )
    upload_multipart_max_bytes: int = Field(
        500 * 1024 * 1024,
        ge=1024,
        description="Largest file accepted through multipart upload (multi-page PDFs, recordings).",
    )
    upload_part_bytes: int = Field(
        8 * 1024 * 1024,
        ge=5 * 1024 * 1024,
        description="Size of each multipart upload part except the last (S3 minimum 5 MiB).",
    )
    upload_url_seconds: int = Field(
        300, ge=30, le=300, description="Lifetime of a presigned upload URL (5 minutes at most)."
    )
    upload_slot_seconds: int = Field(
        24 * 3600,
        ge=300,
        description=(
            "An upload slot not confirmed within this time is abandoned; the sweep deletes its "
            "bytes and aborts its multipart upload."
        ),
    )
    download_url_seconds: int = Field(
        120, ge=10, le=300, description="Lifetime of a link to view a document (5 minutes at most)."
    )
    image_max_pixels: int = Field(
        60_000_000,
        ge=1_000_000,
        description="Largest photo accepted, in pixels (guards against decompression bombs).",
    )
    thumbnail_pixels: int = Field(
        320, ge=64, le=1024, description="Longest side of the checklist thumbnail of a photo."
    )
    material_sweep_interval_seconds: float = Field(
        3600.0,
        gt=0,
        description=(
            "How often a node deletes expired documents and objects left by abandoned uploads."
        ),
    )
    orphan_grace_seconds: int = Field(
        3600,
        ge=60,
        description="Objects younger than this are never treated as orphans (uploads in flight).",
    )

    # -- recording
    recording_enabled: bool = Field(
        True,
        description=(
            "Record calls on this node (each participant also sends to a recorder peer). "
            "False only for nodes without disk or CPU for it; items that require recording then "
            "show a recording gap in their case timeline."
        ),
    )
    recording_segment_seconds: float = Field(
        30.0, ge=2, le=600, description="Length of one recording segment file; a crash loses one."
    )
    recording_max_streams: int = Field(
        40,
        ge=1,
        description="Participants this node records at once; above it new recordings are refused.",
    )
    recording_dir: Path | None = Field(
        None,
        description=(
            "Where segments are written before they go to object storage. "
            "Empty: <data_dir>/recordings."
        ),
    )

    # -- secrets and identity
    secret_key: str = Field(
        "",
        description=(
            "Master secret for resident ID encryption, lookup hashes and tokens. Empty: a random "
            "key is created once in <data_dir>/secret.key. Every node must share the same value."
        ),
    )
    session_cookie_name: str = Field("cw_session", description="Name of the staff session cookie.")
    session_max_age_seconds: int = Field(
        12 * 3600, ge=60, description="A staff session ends this long after login, active or not."
    )
    session_idle_seconds: int = Field(
        2 * 3600, ge=60, description="A staff session ends after this long without a request."
    )
    cookie_secure: bool = Field(
        False, description="Mark cookies Secure (set true whenever the site is served over HTTPS)."
    )
    login_max_failures: int = Field(
        5,
        ge=1,
        description=(
            "Failed logins allowed per username from one client address within "
            "login_window_seconds; beyond 4 times this from all addresses, attempts are slowed."
        ),
    )
    login_max_failures_per_ip: int = Field(
        30,
        ge=1,
        description="Failed logins allowed per client address within login_window_seconds.",
    )
    login_window_seconds: int = Field(
        900, ge=10, description="Window over which failed logins are counted, in seconds."
    )
    resident_lookups_per_hour: int = Field(
        120,
        ge=1,
        description=(
            "Lookups of residents by ID number one staff member may make in an hour, found or "
            "not (a busy service point serves about 40 residents a day); 429 above."
        ),
    )
    public_url: str = Field(
        "",
        max_length=200,
        pattern=r"^$|^https?://[^\s/?#]+(/[^\s?#]*)?$",
        description=(
            "The address residents reach the service at (https://host[/prefix]); links in SMS "
            "start with it. Empty: links are paths only, enough while SMS are recorded, not "
            "sent. Set it whenever a carrier sends SMS."
        ),
    )
    resident_link_ttl_seconds: int = Field(
        24 * 3600,
        ge=300,
        le=7 * 24 * 3600,
        description=(
            "How long a sign-in link sent to a resident by SMS stays valid; it works once, and "
            "the SMS code is still asked for."
        ),
    )
    password_hash_time_cost: int = Field(3, ge=1, description="Argon2id iterations for passwords.")
    password_hash_memory_kib: int = Field(
        65536, ge=8, description="Argon2id memory per password hash, in KiB."
    )
    password_min_length: int = Field(
        10, ge=8, description="Shortest password a staff member may set."
    )

    # -- SMS (docs/sms.md)
    sms_carrier: str = Field(
        "recording",
        pattern="^(recording|aliyun|tencent)$",
        description=(
            "Who sends SMS: recording (kept in the sms_message table, nothing leaves the "
            "machine), aliyun (Aliyun SMS) or tencent (Tencent Cloud SMS), from the outbox."
        ),
    )
    sms_sign_name: str = Field(
        "云窗口",
        max_length=32,
        description="Sign name in front of every message (【云窗口】), as registered.",
    )
    sms_aliyun_endpoint: str = Field(
        "https://dysmsapi.aliyuncs.com",
        description="Aliyun SMS API endpoint, scheme://host[:port].",
    )
    sms_aliyun_access_key_id: str = Field("", description="Aliyun AccessKey ID for SMS.")
    sms_aliyun_access_key_secret: str = Field(
        "", description="Aliyun AccessKey secret for SMS (a secret: set it in the environment)."
    )
    sms_aliyun_sign_name: str = Field(
        "", max_length=32, description="Sign name registered with Aliyun; empty: sms_sign_name."
    )
    sms_aliyun_template_codes: str = Field(
        "",
        description=(
            "Aliyun template code of each message kind, kind=code,kind=code "
            "(login.code=SMS_123456789,...); every kind needs one when sms_carrier=aliyun."
        ),
    )
    sms_tencent_endpoint: str = Field(
        "https://sms.tencentcloudapi.com",
        description="Tencent Cloud SMS API endpoint, scheme://host[:port].",
    )
    sms_tencent_region: str = Field("ap-guangzhou", description="Tencent Cloud SMS region.")
    sms_tencent_secret_id: str = Field("", description="Tencent Cloud SecretId for SMS.")
    sms_tencent_secret_key: str = Field(
        "", description="Tencent Cloud SecretKey for SMS (a secret: set it in the environment)."
    )
    sms_tencent_app_id: str = Field("", description="Tencent Cloud SMS SmsSdkAppId.")
    sms_tencent_sign_name: str = Field(
        "", max_length=32, description="Sign name registered with Tencent; empty: sms_sign_name."
    )
    sms_tencent_template_codes: str = Field(
        "",
        description=(
            "Tencent template id of each message kind, kind=id,kind=id (login.code=1234567,...);"
            " every kind needs one when sms_carrier=tencent."
        ),
    )
    sms_timeout_seconds: float = Field(
        10.0,
        gt=0,
        le=60,
        description="Connect and read timeout of one call to the carrier.",
    )
    sms_lease_seconds: float = Field(
        120.0,
        ge=1,
        description=(
            "How long a node's sender holds a claimed message; must exceed twice the timeout, "
            "since another node re-sends a message whose lease ran out."
        ),
    )
    sms_poll_seconds: float = Field(
        2.0,
        gt=0,
        description=(
            "How often each node's sender looks for due messages (it also wakes at once when "
            "this node queues one)."
        ),
    )
    sms_batch_size: int = Field(20, ge=1, le=500, description="Messages one sender claims at once.")
    sms_concurrency: int = Field(
        4, ge=1, le=32, description="Calls to the carrier one node makes at the same time."
    )
    sms_retry_base_seconds: float = Field(
        10.0,
        gt=0,
        description="First wait before retrying a message the carrier did not take; doubles.",
    )
    sms_retry_max_seconds: float = Field(
        900.0, gt=0, description="Longest wait between two tries of one message."
    )
    sms_webhook_token: str = Field(
        "",
        description=(
            "Shared token in the delivery-report and reply callback URLs (?token=...); the "
            "carriers do not sign their callbacks. Empty: the callbacks answer 404."
        ),
    )

    # -- periodic work (core/jobs.py) and licence-expiry reminders (docs/reminders.md)
    job_poll_seconds: float = Field(
        5.0,
        gt=0,
        le=300,
        description=(
            "How often each node looks for periodic jobs whose period is due; a node that died "
            "mid-run is replaced within its job's lease plus this."
        ),
    )
    job_history_days: int = Field(
        7, ge=1, description="Finished periods of periodic jobs are kept this many days."
    )
    reminder_default_offsets: str = Field(
        "-90,-30,-7,1",
        pattern=r"^\s*-?\d{1,3}(\s*,\s*-?\d{1,3})*\s*$",
        description=(
            "Reminder policy of a licence type that is created without one: days from the "
            "expiry date, negative before it (T-90, T-30, T-7 and T+1)."
        ),
    )
    reminder_run_at: dt.time = Field(
        dt.time(8, 0),
        description=(
            "Local time (timezone) of the daily reminder run, which finds the reminders due "
            "that day and queues them; one node runs it."
        ),
    )
    reminder_quiet_start: dt.time = Field(
        dt.time(21, 0),
        description="Quiet hours begin: no reminder SMS from this local time...",
    )
    reminder_quiet_end: dt.time = Field(
        dt.time(8, 0),
        description="...until this local time; reminders due meanwhile are sent then.",
    )
    reminder_catch_up_days: int = Field(
        3,
        ge=0,
        le=30,
        description=(
            "A reminder whose day passed this many days ago or fewer (the run was missed, the "
            "licence registered late) is still sent; older ones are skipped."
        ),
    )
    reminder_dispatch_seconds: int = Field(
        300,
        ge=10,
        description="How often reminders held over quiet hours (or a failed run) are queued.",
    )
    reminder_batch_size: int = Field(
        500,
        ge=10,
        le=50_000,
        description="Reminders queued per transaction of a run.",
    )
    licence_case_interval_seconds: int = Field(
        60,
        ge=5,
        description=(
            "How often completed cases whose item yields a licence are entered in the licence "
            "register (and renew the holder's older licence of that type)."
        ),
    )
    licence_case_lookback_days: int = Field(
        7,
        ge=1,
        le=366,
        description="Cases completed this long ago or less are checked for a missing licence.",
    )
    licence_import_max_bytes: int = Field(
        5 * 1024 * 1024,
        ge=1024,
        description="Largest CSV or XLSX file of existing licences accepted for import.",
    )
    licence_import_max_unpacked_bytes: int = Field(
        50 * 1024 * 1024,
        ge=1024,
        description=(
            "An XLSX (a zip) that would unpack to more than this is refused before it is read "
            "(a decompression bomb)."
        ),
    )
    licence_import_max_rows: int = Field(
        20_000, ge=1, le=1_000_000, description="Most licences one import file may hold."
    )

    # -- courier deliveries of licences (docs/delivery.md)
    delivery_interval_seconds: int = Field(
        60,
        ge=5,
        description="How often completed cases whose licence is to be delivered get their "
        "delivery order.",
    )
    delivery_lookback_days: int = Field(
        7, ge=1, le=366, description="Cases completed this long ago or less are given an order."
    )
    delivery_last4_tries: int = Field(
        3,
        ge=1,
        le=10,
        description="Wrong last 4 ID digits entered at the door before the delivery locks and "
        "the supervisors are told.",
    )
    delivery_code_tries: int = Field(
        5,
        ge=1,
        le=20,
        description="Wrong SMS codes entered at the door before the delivery locks (a 6-digit "
        "code must not be guessable).",
    )
    delivery_code_hours: int = Field(
        72,
        ge=1,
        le=720,
        description="How long the code sent to the resident at dispatch stays valid.",
    )
    delivery_retry_days: int = Field(
        1, ge=1, le=14, description="Days from a failed attempt to the next one."
    )
    delivery_photo_max_bytes: int = Field(
        800_000,
        ge=10_000,
        description="Largest handover photo accepted (the phone sends it at 1280 px, a few "
        "hundred kB, so a proof fits one JSON body).",
    )
    delivery_proof_retention_days: int = Field(
        1095,
        ge=1,
        le=99_999,
        description="Days the handover photo and signature are kept in the object store.",
    )

    # -- demo
    demo_password: str = Field(
        "cloudwindow-demo",
        description="Password given to every demo staff account by `cloudwindow seed --demo`.",
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Build settings from an environment mapping (os.environ when None) plus overrides."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for name in cls.model_fields:
            key = ENV_PREFIX + name.upper()
            if key in env:
                values[name] = env[key]
        unknown = sorted(k for k in env if k.startswith(ENV_PREFIX) and k not in env_names())
        if unknown:
            raise ValueError(f"unknown settings in the environment: {', '.join(unknown)}")
        values.update(overrides)
        return cls.model_validate(values)

    @property
    def effective_database_url(self) -> str:
        """The configured URL, or the embedded SQLite file."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'cloudwindow.db').resolve()}"

    @property
    def origins(self) -> frozenset[str]:
        return frozenset(
            o.strip().rstrip("/") for o in self.allowed_origins.split(",") if o.strip()
        )

    @property
    def recordings_dir(self) -> Path:
        return (
            self.recording_dir if self.recording_dir is not None else self.data_dir / "recordings"
        )

    @property
    def objects_dir(self) -> Path:
        return self.storage_dir if self.storage_dir is not None else self.data_dir / "objects"

    def load_secret_key(self) -> bytes:
        """The master secret; creates <data_dir>/secret.key (mode 0600) the first time if unset."""
        if self.secret_key:
            return self.secret_key.encode()
        path = self.data_dir / "secret.key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(48))
        return path.read_text().strip().encode()


def env_names() -> list[str]:
    """Every environment variable the settings read, in declaration order."""
    return [ENV_PREFIX + name.upper() for name in Settings.model_fields]
