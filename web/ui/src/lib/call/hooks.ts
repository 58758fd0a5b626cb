// A handle for tests and benchmarks (tests/e2e, bench/call_setup.py), only in `vite build
// --mode e2e`: elsewhere __TEST_HOOKS__ is false and all of this is left out of the bundle.
import type { CallSession } from './session'

interface TestHooks {
  session: CallSession | null
  pcs: () => RTCPeerConnection[]
  firstFrameAt: number | null
  callNextAt: number | null
  marks: Record<string, number>
}

declare global {
  interface Window {
    __cw?: TestHooks
  }
}

function hooks(): TestHooks {
  return (window.__cw ??= { session: null, pcs: () => [], firstFrameAt: null, callNextAt: null, marks: {} })
}

/** Wall-clock marks of the set-up steps, read by bench/call_setup.py. */
export function mark(name: string): void {
  if (__TEST_HOOKS__) hooks().marks[name] = Date.now()
}

/** The call now under test, and its peer connections. */
export function exposeSession(s: CallSession): void {
  if (!__TEST_HOOKS__) return
  const h = hooks()
  h.session = s
  h.firstFrameAt = null
  h.pcs = () => window.__cw?.session?.peerConnections() ?? []
}

export function sessionClosed(s: CallSession): void {
  if (__TEST_HOOKS__ && window.__cw?.session === s) window.__cw.session = null
}

export function firstFrame(): void {
  if (__TEST_HOOKS__ && window.__cw && window.__cw.firstFrameAt === null) window.__cw.firstFrameAt = performance.now()
}
