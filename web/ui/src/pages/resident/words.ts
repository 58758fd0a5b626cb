// Plain words for what the server answers: errors, statuses and waits as a resident reads them.
import { ApiError } from '../../lib/api'
import { SocketError } from '../../lib/socket'
import { errorText } from '../../lib/errors'
import { i18n } from '../../i18n'

const t = (k: string, p?: Record<string, unknown>) => (p ? i18n.global.t(k, p) : i18n.global.t(k))

const code = (e: unknown) => (e instanceof ApiError || e instanceof SocketError ? e.code : '')

function waitFor(e: unknown): string {
  const seconds = e instanceof ApiError && e.message ? Number(/(\d+)/.exec(e.message)?.[1] ?? 3600) : 3600
  return t('rp.error.too_many', { m: Math.max(1, Math.ceil(seconds / 60)) })
}

/** Asking for a code: which field is wrong, in words that say what to do. */
export function sendError(e: unknown): { field: 'id' | 'phone' | ''; text: string } {
  const c = code(e)
  if (c.startsWith('id_number.')) return { field: 'id', text: errorText(e) }
  if (c === 'phone.invalid') return { field: 'phone', text: t('rp.login.phone_format') }
  if (c === 'rate_limited') return { field: '', text: waitFor(e) }
  if (c.startsWith('resident_link.')) return { field: '', text: errorText(e) }
  return { field: '', text: errorText(e) }
}

/** Signing in with the code. */
export function codeError(e: unknown): string {
  const c = code(e)
  if (c === 'bad_credentials') return t('rp.code.wrong')
  if (c === 'rate_limited') return waitFor(e)
  return errorText(e)
}

/** A case's status as one short phrase and one sentence of what it means for the resident. */
export function statusWords(status: string): { label: string; what: string } {
  const known = ['open', 'in_service', 'completed', 'accepted', 'returned', 'transferred', 'cancelled']
  const s = known.includes(status) ? status : 'open'
  return { label: t(`rp.status.${s}`), what: t(`rp.status_what.${s}`) }
}

/** A moment as a resident says it: "12月1日 18:04" / "1 Dec 18:04" (no seconds, no year). */
export function when(iso: string, lang: string): string {
  const d = new Date(iso)
  const hm = `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`
  if (lang === 'en') return `${d.getDate()} ${d.toLocaleString('en-GB', { month: 'short' })} ${hm}`
  return `${d.getMonth() + 1}月${d.getDate()}日 ${hm}`
}

/** A wait in minutes, or "no data yet" when the line has nothing to go on. */
export function waitWords(seconds: number | null | undefined): string {
  if (seconds == null) return t('rp.ticket.no_data')
  if (seconds < 60) return t('rp.ticket.under_minute')
  return t('rp.ticket.about_minutes', { m: Math.round(seconds / 60) })
}
