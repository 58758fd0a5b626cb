"""Errors a user can cause, each with a stable code and a message in zh-CN and English."""

from __future__ import annotations

from typing import Any, ClassVar

# code -> (zh-CN, en). Messages are str.format templates over the error's params.
MESSAGES: dict[str, tuple[str, str]] = {
    "bad_request": ("请求无效", "Bad request"),
    "invalid_json": ("请求体不是有效的 JSON", "The request body is not valid JSON"),
    "validation": ("提交的数据有误", "Some fields are invalid"),
    "control_characters": (
        "提交的文字含有不可见的控制字符，请删除后重试",
        "The text contains invisible control characters; remove them and try again",
    ),
    "too_deep": ("提交的数据嵌套层数过多", "The data is nested too deeply"),
    "halls.where": (
        "请给出服务点（site_id）或坐标（lat、lng）",
        "Give a service point (site_id) or a coordinate (lat and lng)",
    ),
    "eligibility.nothing_to_accept": (
        "该居民符合此事项的条件，无需确认受理",
        "The resident meets the item's rules; there is nothing to accept",
    ),
    "eligibility.already_accepted": (
        "已确认受理过此办件的条件不符",
        "The eligibility mismatch of this case was already accepted",
    ),
    "alert.state": (
        "该预警当前为{status}状态，不能这样处理",
        "The alert is {status}; it cannot be handled this way",
    ),
    "planning.too_many_points": (
        "一次规划的地点过多（{n} 个，上限 {max} 个）",
        "Too many places in one plan ({n}; the limit is {max})",
    ),
    "planning.road_needs_lat_lon": (
        "按道路计算行程需要每个地点的经纬度",
        "Road travel times need a latitude and longitude for every place",
    ),
    "planning.router_unavailable": (
        "道路行程服务暂时不可用（{reason}），请稍后重试",
        "The road travel-time service is unavailable ({reason}); try again later",
    ),
    "planning.problem": ("规划数据有误：{reason}", "The planning problem is invalid: {reason}"),
    "body_too_large": (
        "请求体过大（上限 {limit} 字节）",
        "Request body too large (limit {limit} bytes)",
    ),
    "unsupported_media_type": ("请以 application/json 提交", "Send the body as application/json"),
    "not_found": ("{what}不存在", "{what_en} not found"),
    "route_not_found": ("接口不存在", "No such endpoint"),
    "method_not_allowed": ("不支持该请求方法", "Method not allowed"),
    "unauthenticated": ("请先登录", "Please log in"),
    "session_expired": ("登录已过期，请重新登录", "Your session has expired; please log in again"),
    "bad_credentials": ("用户名或密码错误", "Wrong username or password"),
    "rate_limited": (
        "尝试次数过多，请 {retry_after} 秒后再试",
        "Too many attempts; try again in {retry_after} seconds",
    ),
    "csrf": (
        "请求校验失败，请刷新页面后重试",
        "Request check failed; reload the page and try again",
    ),
    "forbidden_origin": ("不允许来自该来源的请求", "Requests from this origin are not allowed"),
    "forbidden_role": ("您的角色无权执行此操作", "Your role may not do this"),
    "forbidden_site": ("该站点不在您的服务范围内", "This site is outside your area"),
    "conflict": ("{what}已存在", "{what_en} already exists"),
    "id_number.length": (
        "身份证号应为 18 位，当前为 {length} 位",
        "An ID number has 18 characters; this one has {length}",
    ),
    "id_number.chars": (
        "身份证号前 17 位只能是数字，最后一位是数字或 X",
        "The first 17 characters must be digits and the last a digit or X",
    ),
    "id_number.region": (
        "身份证号前两位 {region} 不是有效的省级行政区代码",
        "The first two digits {region} are not a valid province code",
    ),
    "id_number.birth_date": (
        "身份证号中的出生日期 {birth} 无效",
        "The birth date {birth} in the ID number is not a real date",
    ),
    "id_number.birth_future": (
        "身份证号中的出生日期 {birth} 晚于今天",
        "The birth date {birth} in the ID number is in the future",
    ),
    "id_number.checksum": (
        "身份证号校验位错误：最后一位应为 {expected}，实际为 {got}",
        "Wrong check digit: the last character should be {expected}, not {got}",
    ),
    "phone.invalid": (
        "电话号码格式有误：请填写 11 位手机号或带区号的固定电话",
        "Invalid phone number: give an 11-digit mobile or a landline with area code",
    ),
    "password.too_short": ("密码至少 {min} 位", "A password needs at least {min} characters"),
    "item.not_in_bundle": (
        "事项 {item} 不属于该联办套餐",
        "Item {item} is not part of this bundle",
    ),
    "site.not_point": ("{site} 不是社区服务点", "{site} is not a community service point"),
    "queue.no_lines": ("您未被分配到任何窗口", "You are not assigned to any window line"),
    "queue.busy": (
        "请先办结当前号码 {number}",
        "Finish your current ticket {number} first",
    ),
    "queue.consent": (
        "需先取得居民同意后才能代为取号",
        "The resident's consent is required to take a ticket for them",
    ),
    "queue.remote_only": ("该事项须到现场办理", "This item must be handled in person"),
    "queue.line_mismatch": (
        "窗口 {line} 不办理事项 {item}",
        "Window line {line} does not handle item {item}",
    ),
    "ticket.state": (
        "号码 {number} 当前状态为 {status}，不能{action}",
        "Ticket {number} is {status}; cannot {action_en}",
    ),
    "appointment.past": ("预约时间须晚于现在", "An appointment must be in the future"),
    "appointment.full": ("该时段已约满，请选择其他时段", "This slot is full; choose another"),
    "appointment.state": ("该预约当前状态为 {status}", "This appointment is {status}"),
    "appointment.line": ("预约的窗口与取号窗口不一致", "The appointment is for another line"),
    "appointment.window": (
        "尚未到预约签到时间（{starts} 前 30 分钟起可签到）",
        "Check-in opens 30 minutes before the slot at {starts}",
    ),
    "ticket.not_yours": ("该号码不是由您呼叫的", "You did not call this ticket"),
    "ticket.reason_required": ("退回须填写原因", "A reason is required when returning a case"),
    "call.not_participant": ("您不在该通话中", "You are not in this call"),
    "call.target": ("对方不在该通话中", "That participant is not in this call"),
    "call.ended": ("通话已结束", "The call has ended"),
    "call.full": ("通话人数已满（最多 {max} 方）", "The call is full (at most {max} parties)"),
    "call.resume": ("无法恢复通话：凭证无效或已超时", "Cannot rejoin: token invalid or expired"),
    "invite.taken": (
        "该邀请已被其他专家接受或已失效",
        "Another expert took this invite, or it expired",
    ),
    "invite.skill": ("您不具备技能 {skill}", "You do not have the skill {skill}"),
    "socket.unknown_event": ("未知事件 {event}", "Unknown event {event}"),
    "case.not_finished": (
        "办件尚未办结，办结后才能评价",
        "The case is not finished yet; it can be rated once it is",
    ),
    "case.rated": ("该办件已评价", "This case has already been rated"),
    "recording.disabled": ("本节点未启用录像", "Recording is not enabled on this node"),
    "recording.busy": (
        "录像通道已满，本次通话的录像出现缺口（已记录）",
        "No recording slot is free; the gap is noted in the case",
    ),
    "recording.no_media": ("录像请求中没有音视频", "The recording offer carries no media"),
    "recording.bad_offer": ("录像请求无效：{error}", "The recording offer is invalid: {error}"),
    "recording.no_video": (
        "本节点没有该参与方的录像视频，无法截图",
        "This node is not recording that participant's video; no snapshot",
    ),
    "recording.snapshot_failed": ("截图失败：{error}", "The snapshot failed: {error}"),
    "recording.stopped": (
        "窗口人员已停止本次通话的录像",
        "A clerk stopped recording this call",
    ),
    "recording.required": (
        "该事项或站点要求全程录像，不能停止",
        "Recording is required for this item or site and cannot be stopped",
    ),
    "case.closed": (
        "办件已办结，不能再修改材料",
        "The case is closed; its materials cannot change",
    ),
    "case.materials_incomplete": (
        "以下必需材料尚未收齐或未通过审核：{names}",
        "These required materials are missing or not yet accepted: {names}",
    ),
    "material.spec": ("该材料不属于本办件事项", "This material is not on the case's checklist"),
    "material.type": (
        "“{name}”只接受 {accepted}，收到的文件是 {found}",
        "“{name}” accepts {accepted} only; this file is {found}",
    ),
    "material.reviewed": (
        "该材料已审核（{status}），不能再次审核",
        "This material was already reviewed ({status})",
    ),
    "material.reason_required": ("退回材料须填写原因", "A reason is required to reject a material"),
    "material.consent": (
        "复用以往材料须先征得居民同意",
        "Reusing an earlier document needs the resident's consent",
    ),
    "material.not_reusable": (
        "该材料不能复用（须为同一居民已审核通过且未过期的同类材料）",
        "This document cannot be reused (it must be the same resident's accepted, unexpired "
        "document of the same kind)",
    ),
    "upload.too_large": (
        "文件过大：{size} 字节，上限 {limit} 字节",
        "The file is too large: {size} bytes, limit {limit} bytes",
    ),
    "upload.empty": ("文件为空", "The file is empty"),
    "upload.use_multipart": (
        "超过 {limit} 字节的文件请分片上传",
        "Files over {limit} bytes must be sent as a multipart upload",
    ),
    "upload.type_not_allowed": (
        "不接受该类型的文件（{found}）：请上传 JPEG、PNG、HEIC 照片或 PDF",
        "This kind of file is not accepted ({found}): upload a JPEG, PNG or HEIC photo, or a PDF",
    ),
    "upload.type_mismatch": (
        "文件内容是 {found}，与声明的 {declared} 不符",
        "The file's content is {found}, not the declared {declared}",
    ),
    "upload.image_too_large": (
        "照片像素过多（{pixels}，上限 {limit}）",
        "The photo has too many pixels ({pixels}; limit {limit})",
    ),
    "upload.image_unreadable": ("照片已损坏，无法读取", "The photo is damaged and cannot be read"),
    "upload.not_received": (
        "尚未收到文件，请先上传再确认",
        "No file has arrived yet; upload it before confirming",
    ),
    "upload.incomplete": (
        "分片不完整：缺少第 {missing} 片",
        "The multipart upload is incomplete: part(s) {missing} missing",
    ),
    "upload.state": ("该上传已{state_zh}", "This upload is already {state}"),
    "upload.expired": ("上传时限已过，请重新上传", "This upload has expired; start again"),
    "upload.not_multipart": ("该上传不是分片上传", "This is not a multipart upload"),
    "upload.part_number": (
        "分片序号须在 1 到 {parts} 之间",
        "Part numbers run from 1 to {parts}",
    ),
    "upload.part_mismatch": (
        "第 {parts} 片的内容与收到时不符，请重新上传该分片",
        "Part(s) {parts} no longer match what was received; send them again",
    ),
    "upload.interrupted": (
        "上传中断，文件未完整送达，请重新上传",
        "The upload was interrupted before the whole file arrived; send it again",
    ),
    "storage.bad_signature": (
        "链接无效（签名不符）",
        "The link is invalid (its signature does not match)",
    ),
    "storage.link_expired": ("链接已过期，请重新获取", "The link has expired; ask for a new one"),
    "storage.bad_key": ("链接无效", "The link is invalid"),
    "storage.unavailable": (
        "文件存储暂时不可用，请稍后重试",
        "File storage is unavailable for a moment; try again shortly",
    ),
    "internal": ("服务器内部错误，请稍后再试", "Internal server error; please try again later"),
    "not_ready": ("服务尚未就绪", "Service not ready"),
}


class AppError(Exception):
    """An error to show the user; never a traceback."""

    status: ClassVar[int] = 400
    default_code: ClassVar[str] = "bad_request"
    # Set by a service when the refusal itself must be kept (a failed login is counted, an
    # expired session deleted): the unit of work then commits before answering the error.
    keep_changes: bool = False

    def kept(self) -> AppError:
        """This error, marked so the unit of work commits what was written before it."""
        self.keep_changes = True
        return self

    def __init__(
        self,
        code: str | None = None,
        /,
        *,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        **params: Any,
    ) -> None:
        self.code = code or self.default_code
        self.params = params
        self.details = details or []
        self.headers = headers or {}
        super().__init__(self.message("en"))

    def message(self, lang: str = "zh") -> str:
        zh, en = MESSAGES.get(self.code, MESSAGES[self.default_code])
        template = en if lang == "en" else zh
        try:
            return template.format(**self.params)
        except (KeyError, IndexError):
            return template

    def to_dict(self, lang: str = "zh") -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message(lang)}
        if self.details:
            body["details"] = self.details
        return body


class Invalid(AppError):
    status = 422
    default_code = "validation"


class Unauthenticated(AppError):
    status = 401
    default_code = "unauthenticated"


class Forbidden(AppError):
    status = 403
    default_code = "forbidden_role"


class NotFound(AppError):
    status = 404
    default_code = "not_found"

    def __init__(self, what: str, what_en: str, **kw: Any) -> None:
        super().__init__("not_found", what=what, what_en=what_en, **kw)


class Conflict(AppError):
    status = 409
    default_code = "conflict"


class TooLarge(AppError):
    status = 413
    default_code = "body_too_large"


class UnsupportedMediaType(AppError):
    status = 415
    default_code = "unsupported_media_type"


class RateLimited(AppError):
    status = 429
    default_code = "rate_limited"

    def __init__(self, retry_after: int) -> None:
        super().__init__(retry_after=retry_after, headers={"Retry-After": str(retry_after)})


class Unavailable(AppError):
    """Something outside the project that the request needs is down; retrying later helps."""

    status = 503
    default_code = "planning.router_unavailable"
