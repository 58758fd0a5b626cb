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
