// Back into the call after a drop: an ICE restart when a connection fails, and a rejoin with
// the resume token when the socket comes back.
import { call, SocketError, type CallJoin, type RecordingPolicy } from '../socket'
import type { CallContext } from './context'
import type { Peer } from './peers'

// A peer whose ICE stays "disconnected" this long gets an ICE restart: Chrome reports
// "disconnected" for brief losses that heal on their own within a few seconds.
const DISCONNECTED_GRACE_MS = 4000

/** On an ICE state change: restart at once when it failed, after the grace when disconnected. */
export function watchIce(peer: Peer, restart: (peer: Peer) => void): void {
  const pc = peer.pc
  if (pc.iceConnectionState === 'failed') restart(peer)
  if (pc.iceConnectionState === 'disconnected' && peer.restartTimer === null) {
    peer.restartTimer = window.setTimeout(() => {
      peer.restartTimer = null
      if (pc.iceConnectionState === 'disconnected') restart(peer)
    }, DISCONNECTED_GRACE_MS)
  }
}

/** What a rejoin asks of the session. */
export interface RejoinSteps {
  applyPolicy(policy: RecordingPolicy): void
  /** Offer again, with an ICE restart. */
  offer(pid: number): Promise<void>
  close(reason: string): void
  restartRecorder(): void
}

/** The socket came back: rejoin with the resume token, then offer again with an ICE restart. */
export async function rejoin(ctx: CallContext, steps: RejoinSteps): Promise<void> {
  if (ctx.closed) return
  ctx.state.rejoining = true
  let rejoined = false
  try {
    const join = await call<CallJoin>('call:rejoin', {
      call_id: ctx.callId,
      resume_token: ctx.join.resume_token,
    })
    ctx.join = { ...join, resume_token: join.resume_token || ctx.join.resume_token }
    rejoined = true
    if (join.recording) steps.applyPolicy(join.recording)
    ctx.state.me = join.participant_id
    for (const p of join.participants) ctx.participants.set(p.id, p)
    for (const p of join.participants) {
      if (p.id === join.participant_id || !p.connected) continue
      await steps.offer(p.id)
    }
  } catch (e) {
    if (e instanceof SocketError && (e.code === 'call.ended' || e.code === 'call.resume')) {
      steps.close(e.code)
    }
  } finally {
    ctx.state.rejoining = false
    // Back in the call: the recorder gets a new offer, a new piece of my recording
    // (docs/recording.md), even if an offer to a peer went wrong.
    if (rejoined) steps.restartRecorder()
  }
}
