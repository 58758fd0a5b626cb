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
    # supervision: tidal windows
    "tidal.stale": (
        "该调配建议已不再成立（窗口情况已变化），请刷新后再试",
        "This suggestion no longer holds (the lines have changed); refresh and try again",
    ),
    "tidal.busy": (
        "{name} 已在潮汐调配中，请先结束当前调配",
        "{name} is already on a tidal move; end it first",
    ),
    "tidal.until": (
        "结束时间须在 {min} 到 {max} 分钟之后",
        "The end time must be {min} to {max} minutes from now",
    ),
    "tidal.ended": ("该潮汐调配已结束", "This tidal move has already ended"),
    # supervision: alert thresholds and bad-rating follow-ups
    "threshold.order": (
        "{measure}的红色阈值（{red}）不能低于黄色阈值（{yellow}）",
        "The red threshold of {measure_en} ({red}) cannot be below its yellow one ({yellow})",
    ),
    "followup.closed": ("该差评回访已办结，不能再修改", "This follow-up is closed already"),
    "followup.incomplete": (
        "办结前须先记录{missing}",
        "Record {missing_en} before closing the follow-up",
    ),
    "followup.callback_note": (
        "已联系上居民时，请记下居民的意见",
        "The resident was reached: write down what they said",
    ),
    "followup.nothing": (
        "请填写回访情况或整改说明",
        "Record the call-back or the rectification",
    ),
    "followup.no_phone": ("该居民没有留下电话号码", "The resident left no phone number"),
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
    # visit plans and the visit day (scheduler/plans.py, scheduler/field.py)
    "plans.not_latest": (
        "该方案已有更新的版本（第 {latest} 版），请在最新版本上修改",
        "A newer version of this plan exists (version {latest}); change the latest one",
    ),
    "plans.published": ("该版本已发布", "This version is already published"),
    "plans.race": (
        "另一位协调员同时修改了该方案，请刷新后再试",
        "Another coordinator changed this plan at the same time; refresh and try again",
    ),
    "plans.no_staff": (
        "该区域没有可派的上门服务人员",
        "There are no field staff to send in this area",
    ),
    "plans.staff": (
        "所选人员不是该区域的上门服务人员",
        "Someone chosen is not field staff of this area",
    ),
    "plans.no_visit": ("方案中没有该上门服务：{visit}", "The plan has no visit {visit}"),
    "plans.move": ("无法这样调整：{reasons}", "This move is not possible: {reasons_en}"),
    "plans.stale": (
        "申请 {number} 已有变化（{status}），请重新规划后再发布",
        "Request {number} has changed ({status_en}); re-plan before publishing",
    ),
    "plans.drops_scheduled": (
        "该版本漏掉了已通知居民的上门安排（申请 {numbers}），请先调整",
        "This version leaves out visits residents were told of (requests {numbers}); "
        "change it first",
    ),
    "plans.day": (
        "规划日期须在今天到 {days} 天之内",
        "The day planned must be between today and {days} days from now",
    ),
    "plans.too_many": (
        "待规划的上门服务过多（{n} 个，上限 {max} 个）",
        "Too many visits to plan at once ({n}; the limit is {max})",
    ),
    "field.checked_in": ("该上门服务已签到", "This visit is already checked in"),
    "field.not_today": ("只能在上门当天签到", "Check in on the day of the visit"),
    "field.visit_state": (
        "该上门服务当前不能办理（{status}）",
        "This visit cannot be served now ({status_en})",
    ),
    "field.check_in_first": (
        "请先在居民家门口签到，再取号",
        "Check in at the resident's door before taking a number",
    ),
    # home service (上门服务)
    "home.not_at_home": (
        "“{item}”不能上门办理，请选择其他办理方式",
        "“{item_en}” cannot be handled at home; choose another way to apply",
    ),
    "home.not_eligible": (
        "该居民不符合上门服务条件：{reasons}",
        "The resident does not qualify for a home visit: {reasons_en}",
    ),
    "home.resident_required": ("请先找到要办理的居民", "Find the resident first"),
    "home.no_community": (
        "该居民没有登记所在社区，请选择居民所在的社区",
        "The resident has no community on record; choose where they live",
    ),
    "home.address_required": (
        "请填写上门地址（该居民没有登记住址）",
        "Give the address to visit (the resident has none on record)",
    ),
    "home.due_date": (
        "预产期须在今天到 {days} 天之内",
        "The expected date must be between today and {days} days from now",
    ),
    "home.preferred": (
        "希望上门的日期须在今天到 {days} 天之内",
        "Preferred days must be between today and {days} days from now",
    ),
    "home.duplicate": (
        "该居民已有一份未办结的同一事项上门服务申请（第 {id} 号）",
        "The resident already has an open home-visit request for this item (no. {id})",
    ),
    "home.state": (
        "该申请当前为“{status}”，不能{action}",
        "The request is {status_en}; it cannot be {action_en}",
    ),
    "home.visit_time": (
        "上门时间须晚于现在，且在 {days} 天之内",
        "The visit must be in the future and within {days} days",
    ),
    "home.staff": (
        "所选人员不是负责该社区的上门服务人员",
        "The person chosen is not field staff serving this community",
    ),
    "home.staff_busy": (
        "{name}在这段时间已有上门安排，请换个时间或人员",
        "{name} has another visit at that time; choose another time or person",
    ),
    "home.find_what": ("请输入身份证号或手机号", "Enter an ID number or a phone number"),
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
    # appointment calendars (scheduler/calendars.py)
    "appointment.not_a_slot": (
        "{at} 不是该窗口的可预约时段，请从可选时段中选择",
        "{at} is not a slot of this line; pick one of the offered slots",
    ),
    "appointment.closed": ("该日不办公（{reason}），请选择其他日期", "Closed that day ({reason})"),
    "appointment.horizon": (
        "最多可预约 {days} 天内的时段",
        "Slots can be booked at most {days} days ahead",
    ),
    "appointment.limit": (
        "每人最多同时保留 {limit} 个预约，请先取消或办理已有预约",
        "At most {limit} open appointments per resident; cancel or use one first",
    ),
    "appointment.no_shows": (
        "近 {days} 天内已有 {count} 次预约未到，暂不能预约，可直接现场取号",
        "{count} missed appointments in {days} days: booking is paused; take a number on site",
    ),
    "appointment.same_slot": ("该居民已预约了这个时段", "This resident already booked this slot"),
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
    "resident_link.invalid": (
        "这个链接打不开（可能不完整）。请用身份证号和手机号登录",
        "This link does not work (it may be incomplete). Sign in with your ID number and phone",
    ),
    "resident_link.expired": (
        "这个链接已过期。请用身份证号和手机号登录",
        "This link has expired. Sign in with your ID number and phone",
    ),
    "resident_link.used": (
        "这个链接已经用过了，每个链接只能用一次。请用身份证号和手机号登录",
        "This link was already used; each link works once. Sign in with your ID number and phone",
    ),
    "sms.callback_token": (
        "短信回调凭证无效",
        "The SMS callback token is missing or wrong",
    ),
    # licences: imports of existing licences (row problems are listed in the details)
    "licence_import.unreadable": (
        "无法读取该文件：请上传 CSV（UTF-8 或 GBK 编码）或 Excel（.xlsx）文件",
        "The file cannot be read: upload a CSV (UTF-8 or GBK) or an Excel (.xlsx) file",
    ),
    "licence_import.empty": ("文件中没有证照数据", "The file holds no licences"),
    "licence_import.too_large": (
        "文件过大：{size} 字节，上限 {limit} 字节",
        "The file is too large: {size} bytes, limit {limit} bytes",
    ),
    "licence_import.bomb": (
        "文件解压后过大（超过 {limit} 字节），不予处理",
        "The file would unpack to more than {limit} bytes; it is refused",
    ),
    "licence_import.too_many_rows": (
        "文件行数过多：一次最多导入 {limit} 行",
        "Too many rows: one import holds at most {limit}",
    ),
    "licence_import.columns": (
        "第一行须是列名；缺少：{missing}（可用的列名：证照编号、证照类型、持证人、身份证号、"
        "手机号、发证日期、到期日期）",
        "The first row must name the columns; missing: {missing_en} (columns: licence_no, "
        "type, holder, id_number, phone, issued_on, expires_on)",
    ),
    "licence_import.column_twice": (
        "列“{column}”出现了两次",
        "The column “{column}” appears twice",
    ),
    "licence_import.rows": (
        "有 {count} 行有问题，没有导入任何证照。请按下面的列表改正后重新导入",
        "{count} row(s) have problems; nothing was imported. Correct them as listed and "
        "import again",
    ),
    "licence_import.required": ("{column}为空", "{column} is empty"),
    "licence_import.too_long": (
        "{column}过长（最多 {max} 个字）",
        "{column} is too long (max {max})",
    ),
    "licence_import.type": (
        "没有名为“{value}”的证照类型",
        "There is no licence type “{value}”",
    ),
    "licence_import.date": (
        "“{value}”不是有效日期（请写成 2026-03-01）",
        "“{value}” is not a date (write it as 2026-03-01)",
    ),
    "licence_import.issued_future": ("发证日期晚于今天", "The issue date is after today"),
    "licence_import.date_order": (
        "到期日期不晚于发证日期",
        "The expiry date is not after the issue date",
    ),
    "licence_import.duplicate": (
        "与第 {row} 行是同一张证照",
        "The same licence as row {row}",
    ),
    "licence_import.registered": (
        "该证照已在登记册中",
        "This licence is already in the register",
    ),
    "licence_import.name_mismatch": (
        "持证人姓名与该身份证号登记的居民不一致",
        "The holder's name differs from the resident registered with this ID number",
    ),
    "licence_import.id_as_number": (
        "身份证号被存成了数字（后几位已丢失）：请把这一列设为“文本”后重新填写",
        "The ID number was stored as a number (its last digits are lost): format the column "
        "as text and enter it again",
    ),
    # courier deliveries (scheduler/deliveries.py)
    "delivery.state": (
        "该配送单{status}，不能这样处理",
        "The delivery is {status_en}; this cannot be done now",
    ),
    "delivery.not_today": (
        "该配送单安排在 {day} 配送，当天才能出发",
        "This delivery is planned for {day}; set out with it on that day",
    ),
    "delivery.last4": (
        "身份证号后四位与居民不符，还可再试 {left} 次",
        "The last 4 ID digits do not match the resident; {left} tries left",
    ),
    "delivery.code": (
        "短信验证码不正确（须为本配送单发给居民的验证码），还可再试 {left} 次",
        "The SMS code is wrong (it must be the code sent to the resident for this delivery); "
        "{left} tries left",
    ),
    "delivery.locked": (
        "核验错误次数过多，该配送单已锁定，已通知主管处理",
        "Too many wrong entries: the delivery is locked and the supervisor has been told",
    ),
    "delivery.code_used": (
        "该验证码已使用过，不能再次签收",
        "This code was used already; it cannot sign for a delivery again",
    ),
    "delivery.code_expired": (
        "验证码已过期，请重新出发配送，居民会收到新的验证码",
        "The code has expired: set out again and the resident gets a new code",
    ),
    "delivery.proxy": (
        "代收须填写代收人姓名和与居民的关系",
        "A proxy needs their name and their relationship to the resident",
    ),
    "delivery.photo": (
        "签收照片无效：须为 JPEG 或 PNG 照片，且不超过 {max_kb} KB",
        "The handover photo is not valid: a JPEG or PNG photo of at most {max_kb} kB",
    ),
    "delivery.signature": (
        "签名无效：请让签收人在签名框内签名",
        "The signature is not valid: have the recipient sign in the box",
    ),
    "delivery.no_licence": (
        "该事项不出证照，无需配送",
        "This item issues no licence; there is nothing to deliver",
    ),
    "delivery.choice_fixed": (
        "上门服务的证照一律送证上门，无需选择",
        "A home-service case's licence is always brought home; there is nothing to choose",
    ),
    "delivery.already_ordered": (
        "已生成配送单，领取方式不能再更改",
        "A delivery order exists already; the choice can no longer be changed",
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
