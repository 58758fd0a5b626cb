// Turn API and socket errors into one sentence for the user.
import { ApiError } from './api'
import { SocketError } from './socket'
import { i18n } from '../i18n'

export function errorText(e: unknown): string {
  const t = i18n.global.t
  if (e instanceof ApiError || e instanceof SocketError) {
    if (e.code === 'network' || e.code === 'timeout') return t('error.network')
    if (e instanceof ApiError && e.status === 404 && !e.message) return t('error.not_available')
    return e.message || t('error.generic', { code: e.code })
  }
  return t('error.generic', { code: String((e as Error)?.message ?? e) })
}

/**
 * Errors that belong to a form field, by field name: from `details[].loc` (["name"] or
 * ["body","name"]) or from a code that names the field (`phone.invalid`). The words say what
 * to do; `labels` gives each field's label for them. Empty when the error belongs to no field.
 */
export function fieldErrors(e: unknown, fields: string[], labels: Record<string, string>): Record<string, string> {
  const t = i18n.global.t
  const out: Record<string, string> = {}
  if (!(e instanceof ApiError || e instanceof SocketError)) return out
  const details = Array.isArray(e.details) ? (e.details as { loc?: unknown[]; type?: string; msg?: string }[]) : []
  for (const d of details) {
    const field = (d.loc ?? []).map(String).find((x) => fields.includes(x))
    if (!field || out[field]) continue
    const label = labels[field] ?? field
    if (d.type === 'string_too_short' || d.type === 'missing') out[field] = t('field.required', { field: label })
    else if (d.type === 'string_too_long') out[field] = t('field.too_long', { field: label })
    else if (e.code !== 'validation' && e.message) out[field] = e.message
    else out[field] = t('field.invalid', { field: label })
  }
  const prefix = e.code.split('.')[0]
  if (!Object.keys(out).length && fields.includes(prefix) && e.message) out[prefix] = e.message
  return out
}
