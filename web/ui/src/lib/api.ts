// HTTP API client: JSON in and out, session cookie, CSRF header on writes, localized errors.
import { reactive } from 'vue'
import type { PhotoPrep } from './photo'

export type Role =
  | 'community_worker'
  | 'clerk'
  | 'expert'
  | 'supervisor'
  | 'coordinator'
  | 'courier'
  | 'operator'
  | 'field_staff'
  | 'admin'
  | 'resident'

export interface Me {
  id: number
  username: string
  display_name: string
  role: Role
  site_ids: number[]
  line_ids: number[]
  skills: string[]
  csrf_token: string
}

export interface ErrorDetail {
  loc: (string | number)[]
  msg: string
  type: string
}

export class ApiError extends Error {
  constructor(
    public status: number,
    public code: string,
    message: string,
    public details: unknown = null,
  ) {
    super(message)
  }
}

export const session = reactive<{ me: Me | null; checked: boolean; lang: string }>({
  me: null,
  checked: false,
  lang: 'zh-CN',
})

export async function api<T = unknown>(
  method: string,
  path: string,
  body?: unknown,
  query?: Record<string, string | number | boolean | undefined>,
): Promise<T> {
  let url = `/api/v1${path}`
  if (query) {
    const qs = new URLSearchParams()
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== '') qs.set(k, String(v))
    const s = qs.toString()
    if (s) url += `?${s}`
  }
  const headers: Record<string, string> = { 'Accept-Language': session.lang, Accept: 'application/json' }
  if (method !== 'GET') {
    headers['Content-Type'] = 'application/json'
    if (session.me) headers['X-CSRF-Token'] = session.me.csrf_token
  }
  let resp: Response
  try {
    resp = await fetch(url, {
      method,
      headers,
      credentials: 'same-origin',
      body: method === 'GET' ? undefined : JSON.stringify(body ?? {}),
    })
  } catch {
    throw new ApiError(0, 'network', '')
  }
  const text = await resp.text()
  let data: unknown = null
  try {
    data = text ? JSON.parse(text) : null
  } catch {
    data = null
  }
  if (!resp.ok) {
    const err = (data as { error?: { code?: string; message?: string; details?: unknown } })?.error
    throw new ApiError(resp.status, err?.code ?? `http.${resp.status}`, err?.message ?? '', err?.details)
  }
  return data as T
}

export const get = <T>(path: string, query?: Record<string, string | number | boolean | undefined>) =>
  api<T>('GET', path, undefined, query)
export const post = <T>(path: string, body?: unknown) => api<T>('POST', path, body)

export async function loadMe(): Promise<Me | null> {
  try {
    session.me = await get<Me>('/auth/me')
  } catch {
    session.me = null
  }
  session.checked = true
  return session.me
}

export function homeFor(role: Role | undefined): string {
  switch (role) {
    case 'community_worker':
      return '/point'
    case 'clerk':
      return '/clerk'
    case 'expert':
      return '/expert'
    case 'supervisor':
      return '/supervisor'
    case 'operator':
      return '/operator'
    case 'coordinator':
      return '/coordinator'
    case 'field_staff':
      return '/field'
    case 'courier':
      return '/courier'
    case 'resident':
      return '/resident'
    case undefined:
      return '/login'
    default:
      return '/'
  }
}

// ---- shapes used by the pages (see /api/v1/openapi.json and docs/protocol.md)

export interface MaterialSpec {
  id: number
  name: string
  required: boolean
  accepted_types: string[]
  note: string
}

export interface Item {
  id: number
  code: string
  name: string
  name_en: string
  department: string
  department_name: string
  level: string
  keywords: string[]
  remote_capable: boolean
  description: string
  materials: MaterialSpec[]
  eligibility?: { min_age: number | null; max_age: number | null; disability: boolean; local_residence: boolean }
}

/** 一事联办: several items applied for as one case, each document given once. */
export interface Bundle {
  id: number
  code: string
  name: string
  name_en: string
  description: string
  lead_department: string
  items: Item[]
  materials: string[]
  documents_saved: number
}

export interface EligibilityProblem {
  code: string
  message: string
  message_en: string
}

export interface Eligibility {
  item_code: string
  resident_id: number
  eligible: boolean
  problems: EligibilityProblem[]
  remote_capable: boolean
}

export interface HallOption {
  site: Site
  line_id: number
  line_name: string
  distance_km: number
  travel_minutes: number
  waiting: number
  clerks_online: number
  wait_seconds: number | null
  total_minutes: number | null
}

export interface CaseEligibility {
  case_id: number
  checked: boolean
  problems: (EligibilityProblem & { item_code: string })[]
  accepted: { at: string; actor_id: number | null; reason: string; rules: string[] } | null
}

export interface PastCase {
  id: number
  number: string
  item_code: string
  item_name: string
  status: string
  created_at: string
  closed_at: string | null
}

/** The resident of a case, as the staff serving it see them (GET /cases/{id}/resident). */
export interface ResidentSummary {
  id: number
  name: string
  id_masked: string
  age: number
  sex: string
  phone_masked: string
  address_masked: string
  community_id: number | null
  community_name: string | null
  elderly: boolean
  priority: boolean
  disabled: boolean
  earlier_cases: PastCase[]
}

export interface ReuseCandidate {
  spec_id: number
  name: string
  material: Material
  from_case_number: string
  from_case_at: string
}

export interface Site {
  id: number
  code: string
  kind: string
  parent_id: number | null
  name: string
  name_en: string
  address: string
}

export interface Line {
  id: number
  code: string
  site_id: number
  site_name: string
  department: string
  department_name: string
  name: string
  ticket_prefix: string
  active: boolean
}

export interface Resident {
  id: number
  name: string
  id_masked: string
  birth_date: string
  age: number
  sex: string
  phone: string
  address: string
  disabled: boolean
  pregnant: boolean
  elderly: boolean
  priority: boolean
}

/** What a lookup by ID number answers: enough to take a number. */
export interface ResidentFound {
  id: number
  name: string
  id_masked: string
  age: number
  phone_masked: string
  elderly: boolean
  priority: boolean
}

export interface IdCheck {
  valid: boolean
  masked: string | null
  birth_date: string | null
  sex: string | null
  age: number | null
}

export interface CaseEvent {
  id: number
  at: string
  kind: string
  actor_id: number | null
  data: Record<string, unknown>
}

export interface Case {
  id: number
  number: string
  item_code: string
  item_name: string
  bundle_id?: number | null
  resident_id?: number | null
  resident_name: string | null
  resident_id_masked: string | null
  site_id: number
  line_id: number | null
  status: string
  created_at: string
  updated_at: string
  closed_at: string | null
  note: string
  rating?: Rating | null
  timeline: CaseEvent[]
}

export interface Rating {
  case_id: number
  score: number
  comment: string
  rated_at: string
}

export interface Material {
  id: number
  case_id: number
  spec_id: number | null
  status: 'pending' | 'accepted' | 'rejected' | 'superseded' | 'deleted'
  source: 'upload' | 'reuse' | 'snapshot'
  content_type: string
  size: number
  sha256: string
  width: number | null
  height: number | null
  filename: string
  has_thumbnail: boolean
  reason: string
  uploaded_at: string
  reviewed_at: string | null
}

export interface ChecklistItem {
  spec_id: number
  name: string
  required: boolean
  accepted_types: string[]
  note: string
  state: 'missing' | 'requested' | 'uploaded' | 'accepted' | 'rejected'
  reason: string
  request_note?: string
  materials: Material[]
}

export interface Checklist {
  case_id: number
  complete: boolean
  missing: string[]
  items: ChecklistItem[]
  extras: Material[]
  /** How the device prepares photos (the server's photo_max_side and photo_quality). */
  photo?: PhotoPrep
}

export interface RecordingSegment {
  id: number
  index: number
  content_type: string
  size: number
  duration: number
  started_at: string
  ended_at: string
}

export interface Recording {
  id: number
  call_id: number
  case_id: number | null
  participant_id: number
  role: string
  status: 'recording' | 'finished' | 'failed'
  codecs: string[]
  started_at: string
  ended_at: string | null
  duration: number
  error: string
  segments: RecordingSegment[]
}

// ---- supervision: yellow/red line alerts and alert counts per period

export type AlertLevel = 'yellow' | 'red'

export interface LineAlert {
  id: number
  line_id: number
  line_name: string
  measure: 'waiting' | 'taken'
  level: AlertLevel
  value: number
  threshold: number
  window_minutes: number
  status: 'raised' | 'acknowledged' | 'resolved'
  raised_at: string
  red_at: string | null
  acknowledged_at: string | null
  acknowledged_by: number | null
  note: string
  resolved_at: string | null
  resolution: string
}

export type AlertPeriod = 'day' | 'week' | 'month' | 'custom'

export interface AlertCounts {
  start: string
  end: string
  yellow: number
  red: number
  wait: number
  tidal: number | null
  note: string
}
