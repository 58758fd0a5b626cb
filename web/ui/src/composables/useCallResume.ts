// Back into the call after a page reload: the call and its resume token are kept for the tab.
import { call, type CallJoin } from '../lib/socket'

const KEY = 'cw.call'

interface SavedCall {
  call_id: number
  resume_token: string
}

export function useCallResume() {
  /** Keep the call for a reload of this tab. */
  function remember(join: CallJoin): void {
    sessionStorage.setItem(KEY, JSON.stringify({ call_id: join.call_id, resume_token: join.resume_token }))
  }

  function forget(): void {
    sessionStorage.removeItem(KEY)
  }

  /** Rejoin the kept call if it is among `live` and start it; false if there is none or it failed. */
  async function resume(live: { call_id: number }[], start: (join: CallJoin) => Promise<void>): Promise<boolean> {
    const saved = JSON.parse(sessionStorage.getItem(KEY) ?? 'null') as SavedCall | null
    if (!saved || !live.some((c) => c.call_id === saved.call_id)) return false
    try {
      await start(await call<CallJoin>('call:rejoin', saved))
      return true
    } catch {
      forget()
      return false
    }
  }

  return { remember, forget, resume }
}
