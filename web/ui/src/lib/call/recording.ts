// Recording during the call (docs/recording.md): the policy from the join ack, who is being
// recorded (recording:state), and my own recorder connection, started once the call is set up.
import { call, link, type RecordingPolicy, type RecordingState } from '../socket'
import type { Material } from '../api'
import { RecorderLink } from '../recorder'
import type { CallContext } from './context'

// The recorder connection starts once the call is set up (first video, or at most this long
// after the offer/answer), so its offer, ICE and second video encoder never slow the set-up.
const RECORDER_AFTER_NEGOTIATION_MS = 3000
// ...and this long after my first video frame: the other side's first frame usually comes
// within a few hundred ms of mine (bench/call_setup.py steps), and the recorder's offer, the
// node's answer and a second video encoder must not compete with it.
const RECORDER_SETTLE_MS = 1000
// A participant alone in the call (the clerk while the point rings) starts it after this long.
const RECORDER_ALONE_MS = 5000
// Restarts of several peer connections at once (a network change) make one new piece.
const RECORDER_RESTART_DEBOUNCE_MS = 1000

const sleep = (ms: number) => new Promise<void>((resolve) => window.setTimeout(resolve, ms))

export class CallRecording {
  private recorder: RecorderLink
  private started = false
  private restartTimer: number | null = null

  constructor(private ctx: CallContext) {
    this.applyPolicy(ctx.join.recording)
    this.recorder = new RecorderLink(
      () => ctx.callId,
      () => ctx.config(),
      (status, code) => {
        ctx.state.recorder = status
        ctx.state.recorderError = status === 'failed' ? (code ?? '') : ''
      },
    )
  }

  /** My recorder connection, for tests. */
  get connection(): RTCPeerConnection | null {
    return this.recorder.connection
  }

  async startWhenSetUp(negotiated: Promise<void>, firstMedia: Promise<void>): Promise<void> {
    if (!this.ctx.state.recording.enabled) return
    await Promise.race([negotiated, sleep(RECORDER_ALONE_MS)])
    await Promise.race([firstMedia, sleep(RECORDER_AFTER_NEGOTIATION_MS)])
    await sleep(RECORDER_SETTLE_MS)
    if (this.ctx.closed || this.started) return
    this.started = true
    if (!link.connected) return // the socket is away: rejoining starts the recorder
    await this.recorder.start(this.ctx.state.local)
  }

  /** A new piece of the recording (after a rejoin, an ICE restart, new media). */
  restart(): void {
    const { closed, state } = this.ctx
    if (closed || !state.recording.enabled || state.recHalted) return
    if (!this.started) return // the first piece is still to come, with these tracks
    if (this.restartTimer) clearTimeout(this.restartTimer)
    this.restartTimer = window.setTimeout(() => {
      this.restartTimer = null
      if (!this.ctx.closed && link.connected) void this.recorder.start(this.ctx.state.local)
    }, RECORDER_RESTART_DEBOUNCE_MS)
  }

  onState(d: RecordingState): void {
    const state = this.ctx.state
    state.recActive = { ...state.recActive, [d.participant_id]: d.active }
    if (d.active) {
      state.recStopReason = ''
    } else if (d.reason !== 'replaced') {
      state.recStopReason = d.reason ?? ''
    }
    if (d.reason === 'stopped_by_clerk') {
      state.recHalted = true
      this.recorder.halt()
    } else if (d.participant_id === state.me && !d.active && d.reason !== 'replaced') {
      // My piece ended on the server: a recorder error is retried once; the rest is on purpose.
      if (d.reason === 'error') this.recorder.fail('error')
      else this.recorder.end()
    }
  }

  /** The join ack's recording policy. A call a clerk stopped stays stopped: show it as such. */
  applyPolicy(policy: RecordingPolicy | null | undefined): void {
    const stopped = !!policy?.stopped
    this.ctx.state.recording = { enabled: !!policy?.enabled || stopped, required: !!policy?.required }
    if (stopped) {
      this.ctx.state.recHalted = true
      this.ctx.state.recStopReason = 'stopped_by_clerk'
    }
  }

  /** Recording stops for everyone (only where the item and site do not require it). */
  async stop(): Promise<void> {
    await call('recording:stop', { call_id: this.ctx.callId })
  }

  /** A still of a participant's video, taken by the recorder, kept as a material of the case. */
  async capture(pid: number): Promise<Material> {
    return await call<Material>('recorder:snapshot', { call_id: this.ctx.callId, participant_id: pid }, 20000)
  }

  close(): void {
    if (this.restartTimer) clearTimeout(this.restartTimer)
    this.recorder.close()
  }
}
