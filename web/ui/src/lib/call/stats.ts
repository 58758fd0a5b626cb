// What the call reports to the server: call:state once per milestone, call:stats every few
// seconds (docs/protocol.md step 5), and the first decoded video.
import { send } from '../socket'
import type { CallContext } from './context'
import { firstFrame, mark } from './hooks'
import type { PeerMesh } from './peers'

// Cheap, and enough for the call log.
const STATS_EVERY_MS = 5000
const FIRST_MEDIA_POLL_MS = 250

export class CallStats {
  private statsTimer: number | null = null
  private firstMediaTimer: number | null = null
  private lastBytes = new Map<string, { bytes: number; at: number }>()
  private reported = new Set<string>()

  constructor(
    private ctx: CallContext,
    private mesh: PeerMesh,
    private onFirstMedia: () => void,
  ) {}

  start(): void {
    this.statsTimer = window.setInterval(() => void this.report(), STATS_EVERY_MS)
    this.firstMediaTimer = window.setInterval(() => void this.checkFirstMedia(), FIRST_MEDIA_POLL_MS)
  }

  stop(): void {
    if (this.statsTimer) clearInterval(this.statsTimer)
    if (this.firstMediaTimer) clearInterval(this.firstMediaTimer)
  }

  reportOnce(state: 'connected' | 'first_media'): void {
    if (this.reported.has(state)) return
    this.reported.add(state)
    if (state === 'connected') this.ctx.state.connectedOnce = true
    send('call:state', { call_id: this.ctx.callId, state })
  }

  /** Frames decoded from every remote peer that sends video. */
  async framesDecoded(): Promise<number[]> {
    const out: number[] = []
    for (const peer of this.mesh.all()) {
      let frames = 0
      const stats = await peer.pc.getStats()
      stats.forEach((r) => {
        if (r.type === 'inbound-rtp' && r.kind === 'video') frames += r.framesDecoded ?? 0
      })
      out.push(frames)
    }
    return out
  }

  private async checkFirstMedia(): Promise<void> {
    const frames = await this.framesDecoded()
    if (frames.some((f) => f > 0)) {
      if (!this.ctx.state.firstMedia) {
        this.ctx.state.firstMedia = true
        firstFrame()
        mark('first_frame')
        this.reportOnce('first_media')
        this.onFirstMedia()
      }
      if (this.firstMediaTimer) clearInterval(this.firstMediaTimer)
      this.firstMediaTimer = null
    }
  }

  private async report(): Promise<void> {
    for (const peer of this.mesh.all()) {
      const stats = await peer.pc.getStats()
      const out: Record<string, number | string | null> = { call_id: this.ctx.callId }
      let lost = 0
      let received = 0
      let localCandidateId = ''
      const candidates = new Map<string, string>()
      stats.forEach((r) => {
        if (r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded') {
          if (r.currentRoundTripTime !== undefined) out.rtt_ms = r.currentRoundTripTime * 1000
          localCandidateId = r.localCandidateId
        }
        if (r.type === 'local-candidate') candidates.set(r.id, r.candidateType)
        if (r.type === 'inbound-rtp') {
          lost += r.packetsLost ?? 0
          received += r.packetsReceived ?? 0
          if (r.kind === 'video') {
            out.frames_decoded = r.framesDecoded ?? 0
            if (r.framesPerSecond !== undefined) out.fps = r.framesPerSecond
            if (r.jitter !== undefined) out.jitter_ms = r.jitter * 1000
            const prev = this.lastBytes.get(`${peer.pid}`)
            const now = r.timestamp as number
            if (prev && now > prev.at) {
              out.bitrate_kbps = Math.max(0, ((r.bytesReceived - prev.bytes) * 8) / (now - prev.at))
            }
            this.lastBytes.set(`${peer.pid}`, { bytes: r.bytesReceived ?? 0, at: now })
          }
        }
      })
      if (received + lost > 0) out.packet_loss_pct = (100 * Math.max(0, lost)) / (received + Math.max(0, lost))
      const type = candidates.get(localCandidateId)
      if (type && ['host', 'srflx', 'prflx', 'relay'].includes(type)) out.candidate_type = type
      if (peer.pc.connectionState === 'connected') send('call:stats', out)
    }
  }
}
