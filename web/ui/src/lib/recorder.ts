// The send-only connection to the node's recorder (docs/recording.md): the same local tracks
// that go to the other participants also go, over one more RTCPeerConnection, to the recorder.
// It never holds up or breaks the call: a failure is shown and retried once, nothing more.
import { call, SocketError } from './socket'

// The recorder does not trickle, so the offer carries its candidates: sent when gathering is
// complete or after this long (host candidates come at once; a STUN or TURN server that does
// not answer must not hold the recording up).
const GATHER_MS = 1500
// One retry, this long after a failure: long enough for a slot to free or a node to come back.
const RETRY_MS = 4000
// A recorder connection "disconnected" this long counts as failed (Chrome reports brief
// losses that heal by themselves; see DISCONNECTED_GRACE_MS in call/resume.ts).
const DISCONNECTED_MS = 5000
// Refusals another try cannot change.
const FINAL = new Set(['recording.disabled', 'recording.no_media', 'call.ended', 'call.not_participant', 'forbidden_role'])

/** idle: not started yet; connecting; sending; failed: not reaching the recorder; off: stopped. */
export type RecorderStatus = 'idle' | 'connecting' | 'sending' | 'failed' | 'off'

export class RecorderLink {
  private pc: RTCPeerConnection | null = null
  private stream: MediaStream | null = null
  private piece = 0
  private retried = false
  private retryTimer: number | null = null
  private lossTimer: number | null = null
  private halted = false

  constructor(
    private callId: () => number,
    private config: () => RTCConfiguration,
    private report: (status: RecorderStatus, code?: string) => void,
  ) {}

  get connection(): RTCPeerConnection | null {
    return this.pc
  }

  /** Start a new piece of the recording: a new connection and a complete offer. The server
   * closes the previous piece when the new offer arrives. */
  async start(stream: MediaStream | null, retry = false): Promise<void> {
    if (this.halted) return
    if (!retry) this.retried = false
    this.clearTimers()
    const piece = ++this.piece
    this.closePc()
    this.stream = stream
    const tracks = stream?.getTracks().filter((t) => t.readyState === 'live') ?? []
    if (!stream || !tracks.length) {
      this.report('failed', 'recording.no_media') // the camera and microphone are off: nothing to send
      return
    }
    this.report('connecting')
    const pc = new RTCPeerConnection({ ...this.config(), bundlePolicy: 'max-bundle' })
    this.pc = pc
    try {
      for (const track of tracks) {
        const t = pc.addTransceiver(track, { direction: 'sendonly', streams: [stream] })
        if (track.kind === 'video') preferVp8(t)
      }
      await pc.setLocalDescription(await pc.createOffer())
      await gathered(pc, GATHER_MS)
      if (piece !== this.piece) return
      const res = await call<{ sdp: string }>('recorder:offer', {
        call_id: this.callId(),
        sdp: pc.localDescription?.sdp ?? '',
      })
      if (piece !== this.piece) return
      pc.onconnectionstatechange = () => this.watch(pc, piece)
      await pc.setRemoteDescription({ type: 'answer', sdp: res.sdp })
      this.watch(pc, piece)
    } catch (e) {
      if (piece === this.piece) this.fail(e instanceof SocketError ? e.code : 'error')
    }
  }

  /** A failure: say so, and try once more a little later (unless that cannot help). */
  fail(code: string): void {
    if (this.halted) return
    this.closePc()
    this.report('failed', code)
    if (this.retried || FINAL.has(code)) return
    this.retried = true
    this.retryTimer = window.setTimeout(() => {
      this.retryTimer = null
      void this.start(this.stream, true)
    }, RETRY_MS)
  }

  /** The server ended this piece on purpose (call over, node stopping): close quietly. */
  end(): void {
    this.clearTimers()
    this.piece++
    this.closePc()
    this.report('off')
  }

  /** The clerk stopped the recording: no new pieces for this call from this page. */
  halt(): void {
    this.halted = true
    this.end()
  }

  close(): void {
    this.halted = true
    this.clearTimers()
    this.piece++
    this.closePc()
  }

  private watch(pc: RTCPeerConnection, piece: number): void {
    if (piece !== this.piece) return
    const s = pc.connectionState
    if (s === 'connected') {
      if (this.lossTimer) clearTimeout(this.lossTimer)
      this.lossTimer = null
      this.report('sending')
    } else if (s === 'failed') {
      this.fail('connection')
    } else if (s === 'disconnected' && this.lossTimer === null) {
      this.lossTimer = window.setTimeout(() => {
        this.lossTimer = null
        if (piece === this.piece && pc.connectionState !== 'connected') this.fail('connection')
      }, DISCONNECTED_MS)
    }
  }

  private clearTimers(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer)
    if (this.lossTimer) clearTimeout(this.lossTimer)
    this.retryTimer = this.lossTimer = null
  }

  private closePc(): void {
    if (!this.pc) return
    this.pc.onconnectionstatechange = null
    this.pc.close()
    this.pc = null
  }
}

/** Resolves when ICE gathering is complete, or after `ms` with the candidates found so far. */
function gathered(pc: RTCPeerConnection, ms: number): Promise<void> {
  if (pc.iceGatheringState === 'complete') return Promise.resolve()
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer)
      pc.removeEventListener('icegatheringstatechange', check)
      resolve()
    }
    const check = () => pc.iceGatheringState === 'complete' && done()
    const timer = window.setTimeout(done, ms)
    pc.addEventListener('icegatheringstatechange', check)
  })
}

/** VP8 first: the recorder stores VP8 as WebM, which browsers play back; H264 would become
 * MPEG-TS, which they do not. Chrome puts VP8 first already; this keeps it so. */
function preferVp8(t: RTCRtpTransceiver): void {
  if (typeof t.setCodecPreferences !== 'function') return
  const isVp8 = (c: RTCRtpCodec) => c.mimeType.toLowerCase() === 'video/vp8'
  for (const caps of [RTCRtpReceiver.getCapabilities?.('video'), RTCRtpSender.getCapabilities?.('video')]) {
    if (!caps?.codecs.some(isVp8)) continue
    try {
      t.setCodecPreferences([...caps.codecs.filter(isVp8), ...caps.codecs.filter((c) => !isVp8(c))])
      return
    } catch {
      /* this browser checks against the other list */
    }
  }
}
