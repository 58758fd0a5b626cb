// Appointment calendars (scheduler/calendars.py, docs/appointments.md): a line's days and
// slots with their remaining places, booking, a resident's appointments, cancelling.
import { get, post } from './api'

export interface Slot {
  starts_at: string
  ends_at: string
  capacity: number
  remaining: number
}

export interface CalendarDay {
  date: string
  open: boolean
  reason: '' | 'holiday' | 'closed' | 'adjusted_workday' | 'beyond_horizon'
  holiday: string
  calendar_known: boolean
  hours: string[]
  slots: Slot[]
}

export interface LineCalendar {
  line_id: number
  line_name: string
  site_name: string
  slot_minutes: number
  capacity: number
  horizon_days: number
  days: CalendarDay[]
}

export type AppointmentStatus = 'booked' | 'checked_in' | 'cancelled' | 'no_show'

export interface Appointment {
  id: number
  resident_id: number
  line_id: number
  item_id: number
  starts_at: string
  ends_at: string
  status: AppointmentStatus
  ticket_id: number | null
  line_name: string
  site_name: string
  site_address: string
  item_code: string
  item_name: string
  item_name_en: string
}

export const lineSlots = (lineId: number, days = 14, from?: string) =>
  get<LineCalendar>(`/lines/${lineId}/slots`, { days, from })

export const bookSlot = (body: { line_id: number; item_code: string; starts_at: string; resident_id?: number }) =>
  post<Appointment>('/appointments', body)

export const appointmentsOf = (residentId?: number) =>
  get<Appointment[]>('/appointments', residentId ? { resident_id: residentId } : undefined)

export const cancelAppointment = (id: number) => post<Appointment>(`/appointments/${id}/cancel`)

const TZ = 'Asia/Shanghai' // the district's wall clock (settings.timezone)

export function slotTime(iso: string, lang: string): string {
  return new Date(iso).toLocaleTimeString(lang === 'en' ? 'en-GB' : 'zh-CN', { hour: '2-digit', minute: '2-digit', timeZone: TZ })
}

export function dayLabel(date: string, lang: string): string {
  const d = new Date(`${date}T12:00:00+08:00`)
  return d.toLocaleDateString(lang === 'en' ? 'en-GB' : 'zh-CN', { month: 'short', day: 'numeric', weekday: 'short', timeZone: TZ })
}

export function whenText(iso: string, lang: string): string {
  const d = new Date(iso)
  const day = d.toLocaleDateString(lang === 'en' ? 'en-GB' : 'zh-CN', { month: 'long', day: 'numeric', weekday: 'short', timeZone: TZ })
  return `${day} ${slotTime(iso, lang)}`
}
