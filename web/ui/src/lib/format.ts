// Small display helpers shared by the pages.
import { i18n } from '../i18n'
export function minutes(seconds: number | null | undefined): number {
  return Math.max(0, Math.round((seconds ?? 0) / 60))
}

export function since(iso: string | null | undefined, now = Date.now()): number {
  if (!iso) return 0
  return Math.max(0, Math.floor((now - Date.parse(iso)) / 1000))
}

export function clock(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds))
  const m = Math.floor(s / 60)
  const r = s % 60
  return `${m}:${String(r).padStart(2, '0')}`
}

export function dateTime(iso: string | null | undefined, lang: string): string {
  if (!iso) return ''
  return new Date(iso).toLocaleString(lang === 'en' ? 'en-GB' : 'zh-CN', {
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
  })
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} B`
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(0)} KB`
  return `${(n / 1024 / 1024).toFixed(1)} MB`
}

/** A time of day as 10:42 (for "last updated"). */
export function hhmm(ms: number): string {
  const d = new Date(ms)
  return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`
}

/** A wait in words that cannot be read as a time of day: "20 分钟" / "20 min", "不到 1 分钟". */
export function waitText(seconds: number): string {
  const t = i18n.global.t
  if (seconds < 60) return t('common.under_minute')
  const m = Math.floor(seconds / 60)
  if (m < 60) return t('common.minutes', { m })
  return t('common.hours_minutes', { h: Math.floor(m / 60), m: m % 60 })
}
